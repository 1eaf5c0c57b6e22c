package chunker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// avItem is one demuxed access unit of either track, in file order.
type avItem struct {
	video *chunker.Sample
	audio *chunker.AudioSample
}

// demuxAV reads the H.264 and AAC tracks of an MPEG-TS file with
// mediacommon, in file order, and returns the AudioSpecificConfig.
func demuxAV(t testing.TB, path string) ([]avItem, []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &mpegts.Reader{R: f}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	var out []avItem
	var asc []byte
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				var nalus [][]byte
				for _, n := range au {
					nalus = append(nalus, bytes.Clone(n))
				}
				out = append(out, avItem{video: &chunker.Sample{DTS: dts, PTS: pts, NALUs: nalus}})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			asc, err = c.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			rate := int64(c.Config.SampleRate)
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					p := (pts + int64(i)*1024*90000/rate) & (1<<33 - 1)
					out = append(out, avItem{audio: &chunker.AudioSample{PTS: p, Data: bytes.Clone(au)}})
				}
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
	}
	return out, asc
}

// avInput encodes an MPEG-TS input with ffmpeg: 4 s of 320x240 30 fps
// H.264 with B-frames and an IDR every second, and AAC at the given rate
// and channel count. Extra arguments go before the output name.
func avInput(t testing.TB, rate, channels int, extra ...string) string {
	t.Helper()
	mediatest.RequireTool(t, "ffmpeg")
	p := filepath.Join(t.TempDir(), "av.ts")
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=4",
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=4", rate),
		"-c:v", "libx264", "-preset", "veryfast", "-x264-params", "keyint=30:min-keyint=30:scenecut=0:bframes=3",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-ac", fmt.Sprint(channels)}
	args = append(args, extra...)
	args = append(args, "-f", "mpegts", p)
	mediatest.FFmpeg(t, args...)
	return p
}

// audioOnlyInput encodes an MPEG-TS with AAC only.
func audioOnlyInput(t testing.TB, seconds int) string {
	t.Helper()
	mediatest.RequireTool(t, "ffmpeg")
	p := filepath.Join(t.TempDir(), "a.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", seconds),
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", p)
	return p
}

// writeAV writes the items into a new chunker in the given order.
func writeAV(t *testing.T, cfg chunker.Config, items []avItem) *collector {
	t.Helper()
	out := &collector{}
	c, err := chunker.New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, it := range items {
		var err error
		if it.video != nil {
			err = c.Write(ctx, *it.video)
		} else {
			err = c.WriteAudio(ctx, *it.audio)
		}
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out.stats = c.Stats()
	return out
}

// audioHashes decodes the first audio stream of input with ffmpeg and
// returns the MD5 of every decoded frame.
func audioHashes(t testing.TB, input string) []string {
	t.Helper()
	out := mediatest.FFmpeg(t, "-i", input, "-map", "0:a:0", "-f", "framemd5", "-")
	var hashes []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		hashes = append(hashes, strings.TrimSpace(f[len(f)-1]))
	}
	return hashes
}

// outputFile concatenates the chunker's output into one file ffmpeg reads:
// TS segments, or the (single) init and its fMP4 segments.
func outputFile(t *testing.T, f chunker.Format, out *collector) string {
	t.Helper()
	var parts [][]byte
	name := "all.ts"
	if f == chunker.FMP4 {
		if len(out.inits) != 1 {
			t.Fatalf("%d inits", len(out.inits))
		}
		parts = append(parts, out.inits[0].Data)
		name = "all.mp4"
	}
	for _, s := range out.segs {
		parts = append(parts, s.Data)
	}
	return mediatest.ConcatFiles(t, name, parts...)
}

// TestAudioDecodesIdentically writes real A/V input (audio at two rates and
// channel layouts, and with PTS that wrap) into both formats; ffmpeg must
// decode the same audio and video frames as from the input, every segment
// must decode alone with both tracks, and the audio metadata must add up.
func TestAudioDecodesIdentically(t *testing.T) {
	cases := []struct {
		name     string
		rate, ch int
		extra    []string
	}{
		{"44k1-stereo", 44100, 2, nil},
		{"48k-mono", 48000, 1, nil},
		{"48k-5.1", 48000, 6, nil},
		{"wrap", 44100, 2, []string{"-output_ts_offset", "95442"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := avInput(t, tc.rate, tc.ch, tc.extra...)
			items, asc := demuxAV(t, in)
			nAudio := 0
			for _, it := range items {
				if it.audio != nil {
					nAudio++
				}
			}
			wantAudio, wantVideo := audioHashes(t, in), mediatest.FrameHashes(t, in)
			for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
				t.Run(format.String(), func(t *testing.T) {
					cfg := chunker.Config{Format: format, TargetDuration: time.Second, WrapBits: 33,
						Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
					out := writeAV(t, cfg, items)
					in0 := out.inits[0]
					if in0.AudioCodec != "mp4a.40.2" || in0.SampleRate != tc.rate || in0.Channels != tc.ch ||
						in0.AudioTimescale != uint32(tc.rate) {
						t.Errorf("init: audio %q %d Hz %d channels, timescale %d", in0.AudioCodec, in0.SampleRate, in0.Channels, in0.AudioTimescale)
					}
					if got := in0.Codecs(); len(got) != 2 || got[1] != "mp4a.40.2" {
						t.Errorf("codecs %v", got)
					}
					frames := 0
					for i, s := range out.segs {
						frames += s.AudioFrames
						if s.AudioFrames == 0 {
							t.Errorf("segment %d has no audio", i)
							continue
						}
						if i > 0 {
							p := out.segs[i-1]
							if p.AudioPTS+p.AudioDuration != s.AudioPTS {
								t.Errorf("segment %d audio starts at %d, previous ends at %d", i, s.AudioPTS, p.AudioPTS+p.AudioDuration)
							}
						}
						// The segment's audio starts within one frame after
						// its first picture's presentation time.
						vs := float64(s.FirstPTS) / float64(s.Timescale)
						as := float64(s.AudioPTS) / float64(in0.AudioTimescale)
						if fr := 1024 / float64(tc.rate); i > 0 && (as < vs || as >= vs+fr) {
							t.Errorf("segment %d: audio starts at %.4f s, video at %.4f s", i, as, vs)
						}
						checkAVSegmentAlone(t, format, in0, s)
					}
					if frames != nAudio {
						t.Errorf("%d audio frames in segments, input has %d", frames, nAudio)
					}
					file := outputFile(t, format, out)
					if d := mediatest.EqualHashes(wantAudio, audioHashes(t, file)); d != "" {
						t.Errorf("audio: %s", d)
					}
					if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, file)); d != "" {
						t.Errorf("video: %s", d)
					}
				})
			}
		})
	}
}

// checkAVSegmentAlone has ffprobe read one segment (with its init): both
// streams, as many packets as the metadata says; TS segments start with
// PAT and PMT.
func checkAVSegmentAlone(t *testing.T, f chunker.Format, in *chunker.Init, s *chunker.Segment) {
	t.Helper()
	parts := [][]byte{s.Data}
	name := "seg.ts"
	if f == chunker.FMP4 {
		parts = [][]byte{in.Data, s.Data}
		name = "seg.mp4"
	} else {
		checkTSTables(t, s)
	}
	p := mediatest.ConcatFiles(t, name, parts...)
	out := strings.TrimSpace(string(mediatest.Run(t, "ffprobe", "-v", "error", "-count_packets",
		"-show_entries", "stream=codec_type,nb_read_packets", "-of", "csv=p=0", p)))
	var v, a int
	for _, line := range strings.Split(out, "\n") {
		kind, n, _ := strings.Cut(strings.TrimSpace(line), ",")
		var k int
		fmt.Sscan(n, &k)
		switch kind {
		case "video":
			v = k
		case "audio":
			a = k
		}
	}
	if v != s.Frames || a != s.AudioFrames {
		t.Errorf("segment %d: ffprobe counts %d video and %d audio packets, metadata says %d and %d", s.Seq, v, a, s.Frames, s.AudioFrames)
	}
}

// checkTSTables checks that a TS segment starts with PAT (PID 0) and PMT.
func checkTSTables(t *testing.T, s *chunker.Segment) {
	t.Helper()
	d := s.Data
	if len(d) < 2*188 || len(d)%188 != 0 {
		t.Fatalf("segment %d: %d bytes", s.Seq, len(d))
	}
	pid := func(i int) int { return int(d[i*188+1]&0x1f)<<8 | int(d[i*188+2]) }
	// The PMT section follows the pointer field: table_id 2.
	if pid(0) != 0 || d[188+1]&0x40 == 0 || d[188+4+1+int(d[188+4])] != 2 {
		t.Errorf("segment %d does not start with PAT and PMT (PIDs %d, %d)", s.Seq, pid(0), pid(1))
	}
}

// TestAudioLateAndEarly writes the same A/V stream with the audio delayed
// by 0.7 s in write order (as ffmpeg's MPEG-TS muxer buffers it), and
// advanced by 0.5 s: every audio frame must land in the same segment.
func TestAudioLateAndEarly(t *testing.T) {
	items, asc := demuxAV(t, avInput(t, 48000, 2))
	// Rebuild the stream in strict time order first.
	var video, audio []avItem
	for _, it := range items {
		if it.video != nil {
			video = append(video, it)
		} else {
			audio = append(audio, it)
		}
	}
	interleave := func(shift int64) []avItem {
		var out []avItem
		i, j := 0, 0
		for i < len(video) || j < len(audio) {
			if j >= len(audio) || i < len(video) && video[i].video.DTS <= audio[j].audio.PTS+shift {
				out = append(out, video[i])
				i++
			} else {
				out = append(out, audio[j])
				j++
			}
		}
		return out
	}
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		cfg := chunker.Config{Format: format, TargetDuration: time.Second,
			Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
		want := writeAV(t, cfg, interleave(0))
		for _, shift := range []int64{63000, -45000} {
			got := writeAV(t, cfg, interleave(shift))
			if len(got.segs) != len(want.segs) {
				t.Fatalf("%v shift %d: %d segments, want %d", format, shift, len(got.segs), len(want.segs))
			}
			for i := range got.segs {
				g, w := got.segs[i], want.segs[i]
				if g.AudioFrames != w.AudioFrames || g.AudioPTS != w.AudioPTS || g.Frames != w.Frames {
					t.Errorf("%v shift %d segment %d: %d audio frames at %d, want %d at %d", format, shift, i,
						g.AudioFrames, g.AudioPTS, w.AudioFrames, w.AudioPTS)
				}
				if format == chunker.FMP4 && !bytes.Equal(g.Data, w.Data) {
					t.Errorf("%v shift %d segment %d differs", format, shift, i)
				}
			}
		}
	}
}

// TestAudioOnly segments an audio-only stream: cuts on frame boundaries at
// the target, segments that decode alone, TS segments that start with PAT
// and PMT, and the input's decoded audio.
func TestAudioOnly(t *testing.T) {
	in := audioOnlyInput(t, 5)
	items, asc := demuxAV(t, in)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			cfg := chunker.Config{Format: format, TargetDuration: time.Second, NoVideo: true, WrapBits: 33,
				Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
			out := writeAV(t, cfg, items)
			// 5 s of sine is 5.03 s of AAC (priming and padding).
			if len(out.segs) != 6 {
				t.Errorf("%d segments, want 6", len(out.segs))
			}
			in0 := out.inits[0]
			if in0.Codec != "" || in0.AudioCodec != "mp4a.40.2" || in0.Timescale != 48000 {
				t.Errorf("init %+v", in0)
			}
			total := 0
			for i, s := range out.segs {
				total += s.AudioFrames
				if s.Timescale != 48000 || s.Duration != s.AudioDuration || s.Duration%1024 != 0 {
					t.Errorf("segment %d: timescale %d duration %d audio %d", i, s.Timescale, s.Duration, s.AudioDuration)
				}
				if i < len(out.segs)-1 && (s.Duration < 48000 || s.Duration >= 48000+1024) {
					t.Errorf("segment %d lasts %d ticks, want the first frame boundary at or after 1 s", i, s.Duration)
				}
				if i > 0 && out.segs[i-1].FirstPTS+out.segs[i-1].Duration != s.FirstPTS {
					t.Errorf("segment %d starts at %d, previous ends at %d", i, s.FirstPTS, out.segs[i-1].FirstPTS+out.segs[i-1].Duration)
				}
				checkAVSegmentAlone(t, format, in0, s)
			}
			if total != len(items) {
				t.Errorf("%d frames written, input has %d", total, len(items))
			}
			if d := mediatest.EqualHashes(audioHashes(t, in), audioHashes(t, outputFile(t, format, out))); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestAudioBeforeKeyframe: audio before the first keyframe is kept when the
// stream starts with one (encoder priming precedes the first picture), and
// dropped and counted when pictures before the keyframe were dropped.
func TestAudioBeforeKeyframe(t *testing.T) {
	items, asc := demuxAV(t, avInput(t, 48000, 2))
	cfg := chunker.Config{TargetDuration: time.Second, Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
	var firstV *chunker.Sample
	nAudio := 0
	for _, it := range items {
		if it.video != nil && firstV == nil {
			firstV = it.video
		}
		if it.audio != nil {
			nAudio++
		}
	}
	c, err := chunker.New(cfg, &collector{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Priming audio 30 ms before the first picture, then the stream.
	if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: firstV.PTS - 2700 - 1920, Data: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.video != nil {
			err = c.Write(ctx, *it.video)
		} else if it.audio.PTS >= firstV.PTS-2700 {
			err = c.WriteAudio(ctx, *it.audio)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.AudioDropped != 0 || st.AudioSamples < 2 {
		t.Errorf("starting at a keyframe: %+v", st)
	}

	// Start in the middle of the first GOP: the audio written before the
	// second keyframe's presentation time is dropped with the pictures.
	c, _ = chunker.New(cfg, &collector{})
	started := false
	var idr *chunker.Sample
	var written []*chunker.AudioSample
	for _, it := range items {
		if it.video != nil && it.video.DTS >= firstV.DTS+15*3000 {
			started = true
		}
		if !started {
			continue
		}
		if it.video != nil {
			if idr == nil && chunker.IsIDR(it.video.NALUs) {
				idr = it.video
			}
			err = c.Write(ctx, *it.video)
		} else {
			written = append(written, it.audio)
			err = c.WriteAudio(ctx, *it.audio)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, a := range written {
		if a.PTS+1920 <= idr.PTS {
			want++
		}
	}
	st := c.Stats()
	if st.DroppedNoKey != 15 || st.AudioDropped != int64(want) || want == 0 || st.AudioSamples != int64(len(written)-want) {
		t.Errorf("mid-GOP start: %+v, want %d audio frames dropped", st, want)
	}
}

func TestAudioErrors(t *testing.T) {
	ctx := context.Background()
	lc := []byte{0x12, 0x10} // AAC-LC 44.1 kHz stereo
	if _, err := chunker.New(chunker.Config{Audio: &chunker.AudioConfig{ASC: []byte{0x0a, 0x10}}}, &collector{}); !errors.Is(err, chunker.ErrBadAudioConfig) {
		t.Errorf("AAC Main: %v", err)
	}
	if _, err := chunker.New(chunker.Config{Audio: &chunker.AudioConfig{ASC: nil}}, &collector{}); !errors.Is(err, chunker.ErrBadAudioConfig) {
		t.Errorf("empty ASC: %v", err)
	}
	if _, err := chunker.New(chunker.Config{NoVideo: true}, &collector{}); err == nil {
		t.Error("NoVideo without audio accepted")
	}
	pce := pceASC(t)
	if _, err := chunker.New(chunker.Config{Format: chunker.TS, Audio: &chunker.AudioConfig{ASC: pce}}, &collector{}); !errors.Is(err, chunker.ErrBadAudioConfig) {
		t.Errorf("TS with a PCE: %v", err)
	}
	c, _ := chunker.New(chunker.Config{}, &collector{})
	if err := c.WriteAudio(ctx, chunker.AudioSample{Data: []byte{1}}); !errors.Is(err, chunker.ErrNoTrack) {
		t.Errorf("WriteAudio without audio: %v", err)
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		c, err := chunker.New(chunker.Config{Format: f, NoVideo: true, Audio: &chunker.AudioConfig{ASC: lc}}, &collector{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, chunker.Sample{NALUs: [][]byte{{0x65}}}); !errors.Is(err, chunker.ErrNoTrack) {
			t.Errorf("Write on audio only: %v", err)
		}
		var se *chunker.SampleError
		if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: 0}); !errors.Is(err, chunker.ErrInvalidSample) || !errors.As(err, &se) || !se.Audio {
			t.Errorf("empty frame: %v", err)
		}
		if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: 0, Data: make([]byte, 9000)}); !errors.Is(err, chunker.ErrInvalidSample) {
			t.Errorf("huge frame: %v", err)
		}
		for i := int64(0); i < 5; i++ {
			if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: i * 1024, Data: []byte{0x21, 0x10}}); err != nil {
				t.Fatal(err)
			}
		}
		err = c.WriteAudio(ctx, chunker.AudioSample{PTS: 3 * 1024, Data: []byte{1}})
		if !errors.Is(err, chunker.ErrNonMonotonicDTS) || !errors.As(err, &se) || !se.Audio || se.Index != 7 {
			t.Errorf("backwards PTS: %v", err)
		}
		// The stream goes on.
		if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: 5 * 1024, Data: []byte{0x21, 0x10}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.AudioSamples != 6 || st.Segments != 1 {
			t.Errorf("%v: %+v", f, st)
		}
	}
}

// pceASC returns an AAC-LC 48 kHz AudioSpecificConfig with channel
// configuration 0 and a program config element for 5.1 (C, L+R, Ls+Rs,
// LFE).
func pceASC(t testing.TB) []byte {
	var bits []byte
	put := func(v uint64, n int) {
		for i := n - 1; i >= 0; i-- {
			bits = append(bits, byte(v>>uint(i)&1))
		}
	}
	put(2, 5)  // AAC-LC
	put(3, 4)  // 48 kHz
	put(0, 4)  // channel configuration 0
	put(0, 3)  // frameLength, dependsOnCoreCoder, extension
	put(0, 4)  // element_instance_tag
	put(1, 2)  // object_type
	put(3, 4)  // sampling_frequency_index
	put(2, 4)  // front: SCE + CPE
	put(0, 4)  // side
	put(1, 4)  // back: CPE
	put(1, 2)  // lfe
	put(0, 3)  // assoc
	put(0, 4)  // cc
	put(0, 3)  // no mixdowns
	put(0, 5)  // front 1: SCE
	put(16, 5) // front 2: CPE
	put(16, 5) // back: CPE
	put(0, 4)  // lfe tag
	for len(bits)%8 != 0 {
		bits = append(bits, 0)
	}
	out := make([]byte, len(bits)/8)
	for i, b := range bits {
		out[i/8] |= b << (7 - uint(i%8))
	}
	return out
}

func TestParseAudioSpecificConfig(t *testing.T) {
	marshal := func(c mpeg4audio.AudioSpecificConfig) []byte {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		asc  []byte
		want chunker.AACInfo
	}{
		{"lc-44k1-stereo", []byte{0x12, 0x10}, chunker.AACInfo{ObjectType: 2, SampleRate: 44100, CoreSampleRate: 44100, ChannelConfig: 2, Channels: 2, FrameSamples: 1024, Codec: "mp4a.40.2"}},
		{"lc-48k-mono", []byte{0x11, 0x88}, chunker.AACInfo{ObjectType: 2, SampleRate: 48000, CoreSampleRate: 48000, ChannelConfig: 1, Channels: 1, FrameSamples: 1024, Codec: "mp4a.40.2"}},
		{"lc-48k-5.1", []byte{0x11, 0xb0}, chunker.AACInfo{ObjectType: 2, SampleRate: 48000, CoreSampleRate: 48000, ChannelConfig: 6, Channels: 6, FrameSamples: 1024, Codec: "mp4a.40.2"}},
		{"lc-7.1", marshal(mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 7}), chunker.AACInfo{ObjectType: 2, SampleRate: 48000, CoreSampleRate: 48000, ChannelConfig: 7, Channels: 8, FrameSamples: 1024, Codec: "mp4a.40.2"}},
		{"lc-960", marshal(mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2, FrameLengthFlag: true}), chunker.AACInfo{ObjectType: 2, SampleRate: 48000, CoreSampleRate: 48000, ChannelConfig: 2, Channels: 2, FrameSamples: 960, Codec: "mp4a.40.2"}},
		{"he-aac", marshal(mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 24000, ChannelConfig: 2, ExtensionType: 5, ExtensionSampleRate: 48000}), chunker.AACInfo{ObjectType: 5, SampleRate: 48000, CoreSampleRate: 24000, ChannelConfig: 2, Channels: 2, FrameSamples: 2048, Codec: "mp4a.40.5"}},
		{"he-aac-v2", marshal(mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 22050, ChannelConfig: 1, ExtensionType: 29, ExtensionSampleRate: 44100}), chunker.AACInfo{ObjectType: 29, SampleRate: 44100, CoreSampleRate: 22050, ChannelConfig: 1, Channels: 2, FrameSamples: 2048, Codec: "mp4a.40.29"}},
		{"pce-5.1", pceASC(t), chunker.AACInfo{ObjectType: 2, SampleRate: 48000, CoreSampleRate: 48000, ChannelConfig: 0, Channels: 6, FrameSamples: 1024, Codec: "mp4a.40.2"}},
		// ffmpeg's: AAC-LC with an explicit "no SBR" sync extension.
		{"lc-sync-ext", []byte{0x12, 0x10, 0x56, 0xe5, 0x00}, chunker.AACInfo{ObjectType: 2, SampleRate: 44100, CoreSampleRate: 44100, ChannelConfig: 2, Channels: 2, FrameSamples: 1024, Codec: "mp4a.40.2"}},
	}
	for _, tc := range cases {
		got, err := chunker.ParseAudioSpecificConfig(tc.asc)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	for name, asc := range map[string][]byte{
		"empty":        nil,
		"one byte":     {0x12},
		"aac main":     {0x0a, 0x10},
		"reserved idx": {0x16, 0x90},
		"rate 0":       {0x17, 0x80, 0, 0, 0x10},
		"channels 8":   {0x12, 0x40},
		"truncated":    {0x17, 0x80, 0x00},
	} {
		if _, err := chunker.ParseAudioSpecificConfig(asc); !errors.Is(err, chunker.ErrBadAudioConfig) {
			t.Errorf("%s: %v, want ErrBadAudioConfig", name, err)
		}
	}
}

// TestInitCarriesExactASC: the fMP4 init's esds holds the stream's ASC
// bytes, and the sample entry the real channel count (mp4ff's
// SetAACDescriptor would say 2 channels for a mono phone or a 5.1 camera).
func TestInitCarriesExactASC(t *testing.T) {
	for _, asc := range [][]byte{{0x11, 0x88}, {0x11, 0xb0}, {0x12, 0x10, 0x56, 0xe5, 0x00}} {
		for _, video := range []bool{true, false} {
			out := &collector{}
			c, err := chunker.New(chunker.Config{NoVideo: !video, Audio: &chunker.AudioConfig{ASC: asc}}, out)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if video {
				for _, s := range fixtureSamples(t, "baseline.mp4")[:3] {
					if err := c.Write(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
			} else if err := c.WriteAudio(ctx, chunker.AudioSample{Data: []byte{1}}); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			f, err := mp4.DecodeFile(bytes.NewReader(out.inits[0].Data))
			if err != nil {
				t.Fatal(err)
			}
			traks := f.Init.Moov.Traks
			tr := traks[len(traks)-1]
			if want := 2; !video {
				want = 1
				if len(traks) != 1 || tr.Tkhd.TrackID != 1 {
					t.Errorf("audio only: %d tracks", len(traks))
				}
			} else if len(traks) != want || tr.Tkhd.TrackID != 2 {
				t.Errorf("%d tracks, audio track %d", len(traks), tr.Tkhd.TrackID)
			}
			ase := tr.Mdia.Minf.Stbl.Stsd.Children[0].(*mp4.AudioSampleEntryBox)
			info, _ := chunker.ParseAudioSpecificConfig(asc)
			got := ase.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
			if !bytes.Equal(got, asc) || int(ase.ChannelCount) != info.Channels || tr.Mdia.Mdhd.Timescale != uint32(info.SampleRate) {
				t.Errorf("ASC %x channels %d timescale %d, want %x %d %d", got, ase.ChannelCount, tr.Mdia.Mdhd.Timescale, asc, info.Channels, info.SampleRate)
			}
		}
	}
}

// TestAudioTimelineWithJump: a timestamp jump of both tracks rebases the
// audio with the video; the audio stays within a frame of its picture.
func TestAudioTimelineWithJump(t *testing.T) {
	items, asc := demuxAV(t, avInput(t, 48000, 2))
	const jump = 90000 * 600
	var firstV2 *chunker.Sample
	var idrSeen, nAudio int
	for i := range items {
		if items[i].audio != nil {
			nAudio++
		}
		if v := items[i].video; v != nil && chunker.IsIDR(v.NALUs) {
			idrSeen++
			if idrSeen == 3 {
				firstV2 = v
			}
		}
	}
	var shifted []avItem
	for _, it := range items {
		if it.video != nil {
			v := *it.video
			if v.DTS >= firstV2.DTS {
				v.DTS += jump
				v.PTS += jump
			}
			shifted = append(shifted, avItem{video: &v})
		} else {
			a := *it.audio
			if a.PTS >= firstV2.DTS {
				a.PTS += jump
			}
			shifted = append(shifted, avItem{audio: &a})
		}
	}
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		out := writeAV(t, chunker.Config{Format: format, TargetDuration: 5 * time.Second,
			Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}, shifted)
		if len(out.segs) != 2 || !out.segs[1].Discontinuity {
			t.Fatalf("%v: %d segments", format, len(out.segs))
		}
		total := 0
		for _, s := range out.segs {
			total += s.AudioFrames
			vs := float64(s.FirstPTS) / 90000
			as := float64(s.AudioPTS) / 48000
			if as < vs-0.1 || as > vs+0.1 {
				t.Errorf("%v segment %d: audio at %.3f s, video at %.3f s", format, s.Seq, as, vs)
			}
		}
		if total != nAudio {
			t.Errorf("%v: %d audio frames, input has %d", format, total, nAudio)
		}
	}
}

// TestAudioAllocations: in steady state, writing an audio frame allocates
// nothing (the waiting queue and the segment's audio run reuse buffers; the
// MPEG-TS muxer writes packets straight into the segment buffer).
func TestAudioAllocations(t *testing.T) {
	samples := fixtureSamples(t, "baseline.mp4")
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		c, err := chunker.New(chunker.Config{Format: format, TargetDuration: time.Hour,
			Audio: &chunker.AudioConfig{ASC: []byte{0x11, 0x90}, Timescale: 90000}}, &collector{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		frame := make([]byte, 300)
		apts := samples[0].DTS
		i := 0
		step := func() {
			s := samples[i%len(samples)]
			off := int64(i/len(samples)) * (samples[len(samples)-1].DTS - samples[0].DTS + 3000)
			s.DTS += off
			s.PTS += off
			if err := c.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
			for apts <= s.DTS+3000 {
				if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: apts, Data: frame}); err != nil {
					t.Fatal(err)
				}
				apts += 1920
			}
			i++
		}
		for range 2 * len(samples) {
			step()
		}
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: apts, Data: frame}); err != nil {
				t.Fatal(err)
			}
			apts += 1920
		})
		if allocs > 0.1 {
			t.Errorf("%v: %.2f allocations per audio frame", format, allocs)
		}
	}
}

// FuzzWriteAudio feeds arbitrary AudioSpecificConfigs and frames into both
// formats, with and without video: errors are fine, panics are not.
func FuzzWriteAudio(f *testing.F) {
	f.Add([]byte{0x12, 0x10}, []byte{0x21, 0x10, 0x04}, int64(0), int64(1024), byte(0))
	f.Add([]byte{0x11, 0x88}, []byte{0xde, 0x02}, int64(1<<33-100), int64(1920), byte(3))
	f.Add([]byte{0x2b, 0x92, 0x08, 0x00}, []byte{1}, int64(-5), int64(-1), byte(1))
	f.Add([]byte{0x17, 0x80, 0x00, 0x00, 0x10}, []byte{1, 2}, int64(0), int64(0), byte(2))
	f.Fuzz(func(t *testing.T, asc, frame []byte, pts, step int64, mode byte) {
		cfg := chunker.Config{Format: chunker.Format(mode % 2), NoVideo: mode&2 != 0, WrapBits: 33,
			Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
		c, err := chunker.New(cfg, &collector{})
		if err != nil {
			return
		}
		ctx := context.Background()
		idr := [][]byte{{0x67, 0x64, 0, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10}, {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}, {0x65, 0x88}}
		for i := int64(0); i < 6; i++ {
			if !cfg.NoVideo && i%2 == 0 {
				_ = c.Write(ctx, chunker.Sample{DTS: pts + i*3000, PTS: pts + i*3000, NALUs: idr})
			}
			_ = c.WriteAudio(ctx, chunker.AudioSample{PTS: pts + i*step, Data: frame})
		}
		_ = c.Close(ctx)
	})
}

// BenchmarkWriteAV measures one video sample plus the audio frames of its
// duration (48 kHz AAC, about 1.6 per picture at 30 fps) in the steady
// state, written interleaved as a demuxer delivers them.
func BenchmarkWriteAV(b *testing.B) {
	samples := fixtureSamples(b, "bframes.mp4")
	span := samples[len(samples)-1].DTS - samples[0].DTS + 3000
	frame := make([]byte, 250)
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		b.Run(f.String(), func(b *testing.B) {
			c, err := chunker.New(chunker.Config{Format: f, Audio: &chunker.AudioConfig{ASC: []byte{0x11, 0x90}, Timescale: 90000}}, discard{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			apts := samples[0].DTS
			write := func(i int) {
				loop := int64(i / len(samples))
				s := samples[i%len(samples)]
				s.DTS += loop * span
				s.PTS += loop * span
				if err := c.Write(ctx, s); err != nil {
					b.Fatal(err)
				}
				for ; apts <= s.DTS; apts += 1920 {
					if err := c.WriteAudio(ctx, chunker.AudioSample{PTS: apts, Data: frame}); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range len(samples) { // warm up
				write(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				write(i + len(samples))
			}
		})
	}
}

// TestVideoPause: a step of the video's decode times over the jump
// threshold while the audio goes on (a variable frame rate video that
// paused 2 s, as screen recorders do) is a pause: no jump, no
// discontinuity, every picture and audio frame kept. Before, it was taken
// as a jump, and with B-frames, whose step comes after the keyframe in
// decode order, every picture up to the next keyframe was dropped with
// its audio. Without audio nothing tells a pause from a jump in MPEG-TS
// (an MP4's one timeline does: see livechunk.Config.WithSource).
func TestVideoPause(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	for _, c := range []struct {
		from, to float64 // the pause, in seconds of the 10 s input
		noAudio  bool
		bframes  int
	}{
		{4.5, 6.5, false, 3},
		// One picture after the pause, an IDR one: the segment before it
		// ends with the pause, the picture lasts a frame. (Without
		// B-frames: with them, x264 gives a picture after a pause at the
		// end a decode time right after the one before, and the pause
		// shows in its composition offset only.)
		{7.5, 9.95, false, 0},
		{4.5, 6.5, true, 3},
	} {
		in := mediatest.PausedVideoAt(t, ".ts", c.noAudio, c.from, c.to, c.bframes)
		items, asc := demuxAV(t, in)
		want := mediatest.FrameHashes(t, in)
		nAudio := 0
		for _, it := range items {
			if it.audio != nil {
				nAudio++
			}
		}
		for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
			name := fmt.Sprintf("%v, pause %g-%g s, audio %v", f, c.from, c.to, !c.noAudio)
			cfg := chunker.Config{Format: f, TargetDuration: 4 * time.Second, WrapBits: 33}
			if !c.noAudio {
				cfg.Audio = &chunker.AudioConfig{ASC: asc, Timescale: 90000}
			}
			out := writeAV(t, cfg, items)
			st := out.stats
			if c.noAudio {
				if st.TimestampJumps != 1 || st.VideoPauses != 0 {
					t.Errorf("%s: %d jumps, %d pauses; want the step taken as a jump", name, st.TimestampJumps, st.VideoPauses)
				}
				continue
			}
			if st.VideoPauses != 1 || st.TimestampJumps != 0 || st.Discontinuities != 0 {
				t.Errorf("%s: %d pauses, %d jumps, %d discontinuities; want 1, 0, 0", name, st.VideoPauses, st.TimestampJumps, st.Discontinuities)
			}
			if st.Samples != int64(len(want)) || st.AudioSamples != int64(nAudio) || st.DroppedNoKey != 0 {
				t.Errorf("%s: %d pictures of %d, %d audio frames of %d, %d dropped", name, st.Samples, len(want), st.AudioSamples, nAudio, st.DroppedNoKey)
			}
			// The pictures last until the input's end, 10 s after its start.
			if d := float64(st.MediaTicks) / 90000; math.Abs(d-10) > 0.04 {
				t.Errorf("%s: the segments last %.3f s, want 10", name, d)
			}
			if d := mediatest.EqualHashes(want, decodeOutput(t, f, out)); d != "" {
				t.Errorf("%s: %s", name, d)
			}
		}
	}
}
