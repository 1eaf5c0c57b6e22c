package source

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/timeline"
)

// audioPacket is one audio packet: as read by a Source, or as ffmpeg sees
// it (PTS from ffprobe, size and MD5 of the raw AAC frame from a stream
// copy into framemd5).
type audioPacket struct {
	PTS  int64
	Size int
	MD5  string
}

// ffAudioPackets lists the packets of the first audio stream of path.
func ffAudioPackets(t testing.TB, path string) []audioPacket {
	t.Helper()
	out := strings.TrimSpace(string(mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "a:0",
		"-show_entries", "packet=pts", "-of", "csv=p=0", path)))
	var pk []audioPacket
	for _, line := range strings.Split(out, "\n") {
		line = strings.Trim(strings.TrimSpace(line), ",")
		if line == "" {
			continue
		}
		v, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			t.Fatalf("ffprobe pts %q", line)
		}
		pk = append(pk, audioPacket{PTS: v})
	}
	args := []string{"-i", path, "-map", "0:a:0", "-c", "copy"}
	if strings.HasSuffix(path, ".ts") {
		args = append(args, "-bsf:a", "aac_adtstoasc") // raw frames, as in MP4
	}
	md := mediatest.FFmpeg(t, append(args, "-f", "framemd5", "-")...)
	i := 0
	for _, line := range strings.Split(string(md), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if i < len(pk) {
			pk[i].Size, _ = strconv.Atoi(strings.TrimSpace(f[4]))
			pk[i].MD5 = strings.TrimSpace(f[5])
		}
		i++
	}
	if i != len(pk) {
		t.Fatalf("ffprobe lists %d audio packets, framemd5 %d", len(pk), i)
	}
	return pk
}

// readPackets reads every packet of src, copying the data.
func readPackets(t testing.TB, src Source) (video []chunker.Sample, audio []chunker.AudioSample) {
	t.Helper()
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			return video, audio
		}
		if err != nil {
			t.Fatalf("packet %d: %v", len(video)+len(audio), err)
		}
		switch p.Kind {
		case KindVideo:
			p.Video.NALUs = accessunit.Clone(p.Video.NALUs)
			video = append(video, p.Video)
		case KindAudio:
			p.Audio.Data = bytes.Clone(p.Audio.Data)
			audio = append(audio, p.Audio)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func md5hex(b []byte) string {
	h := md5.Sum(b)
	return hex.EncodeToString(h[:])
}

var audioFixtures = []fixture{
	{"av.mp4", committed("av.mp4"), false},
	{"av.ts", committed("av.ts"), true},
	{"av_frag.mp4", gen("av_frag.mp4"), false},
	{"av_mono.mov", gen("av_mono.mov"), false},
	{"audio.mp4", gen("audio.mp4"), false},
	{"frag_av.mp4", gen("frag_av.mp4"), false},
	{"onlyaudio.mp4", gen("onlyaudio.mp4"), false},
	{"onlyaudio.ts", gen("onlyaudio.ts"), true},
	{"onlyaudio_frag.mp4", gen("onlyaudio_frag.mp4"), false},
}

// TestAudioMatchesFFprobe compares the audio frames of every fixture with
// audio with ffmpeg's packets of the same file: count, PTS (MP4: exactly,
// edit list applied by both; TS: relative, modulo 2^33), size and the MD5
// of the raw frame. The video read along stays as TestMatchesFFprobe
// checks it, and Next still returns the video alone.
func TestAudioMatchesFFprobe(t *testing.T) {
	for _, fx := range audioFixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := fx.path(t)
			want := ffAudioPackets(t, path)
			f, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info := f.Info()
			video, audio := readPackets(t, f)
			ai := info.Audio
			if ai == nil || ai.Codec != "mp4a.40.2" || ai.SampleRate == 0 || ai.Channels == 0 {
				t.Fatalf("audio info %+v", ai)
			}
			only := strings.HasPrefix(fx.name, "onlyaudio")
			if info.NoVideo != only || only && len(video) > 0 {
				t.Fatalf("NoVideo %v with %d video samples", info.NoVideo, len(video))
			}
			if len(audio) != len(want) {
				t.Fatalf("%d audio frames, ffmpeg has %d packets", len(audio), len(want))
			}
			for i, a := range audio {
				w := want[i]
				g, wp := a.PTS, w.PTS
				if fx.wrap {
					m := func(v int64) int64 { return timeline.Wrap(v, timeline.WrapBitsTS) }
					g, wp = m(g-audio[0].PTS), m(wp-want[0].PTS)
				}
				// MPEG-TS: frames after the first of a PES are timed by
				// interpolation, which ffmpeg rounds its own way.
				tol := int64(0)
				if fx.wrap {
					tol = 1
				}
				if g-wp > tol || wp-g > tol || len(a.Data) != w.Size || md5hex(a.Data) != w.MD5 {
					t.Fatalf("frame %d: pts %d size %d md5 %s, ffmpeg %d %d %s", i, g, len(a.Data), md5hex(a.Data), wp, w.Size, w.MD5)
				}
			}
			if !only {
				if v := mediatest.Packets(t, path); len(video) != len(v) {
					t.Fatalf("%d video samples, ffprobe has %d", len(video), len(v))
				}
				// Next alone yields the same video.
				g, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				if n := len(readAll(t, g)); n != len(video) {
					t.Fatalf("Next: %d samples, NextPacket %d", n, len(video))
				}
			} else if _, err := f.Next(); err != io.EOF {
				t.Fatalf("Next on audio only: %v", err)
			}
		})
	}
}

// TestAudioInterleave: NextPacket yields both tracks in time order for
// progressive files (video by DTS, audio by PTS, each within one frame of
// the other's timeline), and the audio keeps its offset to the video.
func TestAudioInterleave(t *testing.T) {
	f, err := Open(mediatest.Testdata("av.mp4"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info := f.Info()
	last := -1.0
	first := map[Kind]float64{}
	for {
		p, err := f.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var at float64
		if p.Kind == KindVideo {
			at = float64(p.Video.DTS) / float64(info.Timescale)
		} else {
			at = float64(p.Audio.PTS) / float64(info.Audio.Timescale)
		}
		if _, ok := first[p.Kind]; !ok {
			first[p.Kind] = at
		}
		if at < last {
			t.Fatalf("packet at %.4f s after one at %.4f s", at, last)
		}
		last = at
	}
	// ffmpeg's AAC priming: the first frame 1024 samples before time 0.
	if got := first[KindAudio]; got != -1024.0/44100 {
		t.Errorf("first audio frame at %.5f s, want -1024/44100", got)
	}
}

// TestChunksAudio reads a sequence of MP4 chunks with audio (each starting
// at 0, each with its encoder priming): audio PTS increase, each chunk's
// audio keeps its offset to the chunk's video, and only frames that would
// overlap the previous chunk's audio are dropped.
func TestChunksAudio(t *testing.T) {
	paths, total := mediatest.AVChunks(t, 3, 48000)
	c, err := OpenChunks(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info := c.Info()
	if info.Audio == nil || info.Audio.Timescale != 48000 {
		t.Fatalf("audio %+v", info.Audio)
	}
	video, audio := readPackets(t, c)
	if len(video) != 180 {
		t.Errorf("%d video samples", len(video))
	}
	for i := 1; i < len(audio); i++ {
		if audio[i].PTS <= audio[i-1].PTS {
			t.Fatalf("audio frame %d at %d after %d", i, audio[i].PTS, audio[i-1].PTS)
		}
	}
	if got := int64(len(audio)) + c.AudioDropped(); got != int64(total) || c.AudioDropped() > 2 {
		t.Errorf("%d audio frames + %d dropped, the chunks have %d", len(audio), c.AudioDropped(), total)
	}
	// Chunk 1 starts at video time 2 s: its first kept audio frame is
	// within two frames of 2 s (its priming frame overlaps chunk 0).
	for _, a := range audio {
		if a.PTS >= 2*48000-2048 {
			if a.PTS > 2*48000+1024 {
				t.Errorf("chunk 1 audio starts at %d, want about %d", a.PTS, 2*48000)
			}
			break
		}
	}
}

// TestLoopAudio replays a clip with audio twice: the second pass's
// pictures follow the first pass's at the frame step, its audio moves with
// them (both tracks shifted by the same time), and its audio frames are the
// first pass's byte for byte (it reads into the first pass's buffers) but
// those that overlap the first pass's tail (its priming frame, which the
// clip's edit list hides, lands on the first pass's last frame).
func TestLoopAudio(t *testing.T) {
	open := func() (Source, error) { return Open(mediatest.Testdata("av.mp4"), Options{}) }
	one, err := open()
	if err != nil {
		t.Fatal(err)
	}
	v1, a1 := readPackets(t, one)
	src, err := Loop(open, 2)
	if err != nil {
		t.Fatal(err)
	}
	v2, a2 := readPackets(t, src)
	dropped := 2*len(a1) - len(a2)
	if len(v2) != 2*len(v1) || dropped < 1 || dropped > 2 {
		t.Fatalf("%d video and %d audio, want %d and %d less the overlap (a frame or two)", len(v2), len(a2), 2*len(v1), 2*len(a1))
	}
	for i, v := range v1 {
		if !slices.EqualFunc(v2[len(v1)+i].NALUs, v.NALUs, bytes.Equal) {
			t.Fatalf("second pass: video sample %d differs", i)
		}
	}
	for i, a := range a1[dropped:] {
		if !bytes.Equal(a2[len(a1)+i].Data, a.Data) {
			t.Fatalf("second pass: audio frame %d differs", i+dropped)
		}
	}
	step := v1[1].DTS - v1[0].DTS
	if join := v2[len(v1)].DTS - v2[len(v1)-1].DTS; join != step {
		t.Errorf("the second pass's first picture follows the first pass's last by %d ticks, the frame step is %d", join, step)
	}
	for i := 1; i < len(a2); i++ {
		if a2[i].PTS <= a2[i-1].PTS {
			t.Fatalf("audio frame %d at %d after %d", i, a2[i].PTS, a2[i-1].PTS)
		}
	}
	// Both tracks of the second pass are shifted by the same time.
	info := src.Info()
	dv := float64(v2[len(v1)].DTS-v1[0].DTS) / float64(info.Timescale)
	da := float64(a2[len(a1)].PTS-a1[dropped].PTS) / float64(info.Audio.Timescale)
	if d := dv - da; d > 1e-4 || d < -1e-4 {
		t.Errorf("second pass: video shifted %.5f s, audio %.5f s", dv, da)
	}
}

// TestAudioBadConfig: an audio track that livechunk cannot segment (AAC
// Main) is ignored next to video, and rejected alone.
func TestAudioBadConfig(t *testing.T) {
	b := readFile(t, mediatest.Testdata("av.mp4"))
	// ffmpeg's ASC: AAC-LC 44.1 kHz stereo, explicit "no SBR".
	i := bytes.Index(b, []byte{0x12, 0x10, 0x56, 0xe5, 0x00})
	if i < 0 {
		t.Fatal("no ASC in av.mp4")
	}
	c := bytes.Clone(b)
	c[i] = 0x0a // AAC Main
	m, err := NewMP4(bytes.NewReader(c), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Audio != nil {
		t.Errorf("AAC Main track not ignored")
	}
	if _, a := readPackets(t, m); len(a) != 0 {
		t.Errorf("%d audio frames from an ignored track", len(a))
	}
	ob := readFile(t, generated(t, "onlyaudio.mp4"))
	i = bytes.Index(ob, []byte{0x12, 0x08, 0x56, 0xe5, 0x00}) // 44.1 kHz mono
	if i < 0 {
		t.Fatal("no ASC in onlyaudio.mp4")
	}
	oc := bytes.Clone(ob)
	oc[i] = 0x0a
	if _, err := NewMP4(bytes.NewReader(oc), Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("audio-only with AAC Main: %v, want ErrUnsupported", err)
	}
}

// TestIgnoredAudio checks that audio livechunk does not record is named in
// Info.IgnoredAudio (the command line tells the user), for MPEG-TS and MP4
// inputs made by ffmpeg, and that the video is still read.
func TestIgnoredAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	for _, c := range []struct {
		name, format, ext, want string
		audio                   bool     // an AAC track is read
		args                    []string // how the audio is made from the sine
	}{
		{"ac3", "mpegts", "ts", "AC-3", false, []string{"-c:a", "ac3"}},
		{"mp2", "mpegts", "ts", "MPEG-1 audio (MP2/MP3)", false, []string{"-c:a", "mp2"}},
		{"mp3", "mp4", "mp4", "MP3", false, []string{"-c:a", "libmp3lame"}},
		{"ac3", "mp4", "mp4", "AC-3", false, []string{"-c:a", "ac3"}},
		{"aac", "mp4", "mp4", "", true, []string{"-c:a", "aac"}},
		{"aac-main", "mp4", "mp4", "AAC Main", false, []string{"-c:a", "aac", "-profile:a", "aac_main"}},
		{"aac-main", "mpegts", "ts", "AAC Main", false, []string{"-c:a", "aac", "-profile:a", "aac_main"}},
		{"aac+ac3", "mp4", "mp4", "AC-3", true, []string{"-map", "1:a", "-c:a:0", "aac", "-c:a:1", "ac3"}},
		{"aac+aac", "mp4", "mp4", "AAC", true, []string{"-map", "1:a", "-c:a", "aac"}},
		{"aac+aac", "mpegts", "ts", "AAC", true, []string{"-map", "1:a", "-c:a", "aac"}},
	} {
		t.Run(c.name+"/"+c.format, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "in."+c.ext)
			args := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1",
				"-f", "lavfi", "-i", "sine=duration=1", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
				"-pix_fmt", "yuv420p"}
			args = append(append(args, c.args...), "-f", c.format, p)
			mediatest.FFmpeg(t, args...)
			src, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			info := src.Info()
			got := strings.Join(info.IgnoredAudio, ",")
			if got != c.want || c.audio != (info.Audio != nil) {
				t.Errorf("IgnoredAudio %q, audio %v; want %q", got, info.Audio != nil, c.want)
			}
			n := 0
			for {
				if _, err := src.Next(); err != nil {
					break
				}
				n++
			}
			if n != 25 {
				t.Errorf("%d pictures, want 25", n)
			}
		})
	}
}

// TestTSLargePictures: MPEG-TS whose first audio packet comes after more
// than 1 MiB of pictures (noise coded losslessly, 350 KB a picture; a 4K
// stream's keyframes are as large) is read with its audio track: stream
// discovery does not give up after 1 MiB. Every picture and audio frame
// ffprobe counts comes out, and the pictures are the input's.
func TestTSLargePictures(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	p := mediatest.LargePictures(t, ".ts")
	before := 0
	for _, pk := range mediatest.Packets(t, p)[:5] {
		before += pk.Size
	}
	if before <= 1<<20 {
		t.Fatalf("first pictures of %d bytes: the test needs more than 1 MiB", before)
	}
	src, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Info().Audio == nil {
		t.Fatal("no audio track found")
	}
	video, audio := readPackets(t, src)
	if want := mediatest.PacketCount(t, p, "video"); len(video) != want {
		t.Errorf("%d pictures, ffprobe counts %d", len(video), want)
	}
	if want := mediatest.PacketCount(t, p, "audio"); len(audio) != want {
		t.Errorf("%d audio frames, ffprobe counts %d", len(audio), want)
	}
	if d := mediatest.EqualHashes(mediatest.FrameHashes(t, p), mediatest.FrameHashes(t, writeAnnexB(t, video))); d != "" {
		t.Errorf("pictures differ from the input's: %s", d)
	}
}

// TestTSScrambled: a stream whose video packets turn scrambled (encrypted)
// part-way is reported as ErrUnsupported, after the samples before.
func TestTSScrambled(t *testing.T) {
	in, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	in = slices.Clone(in)
	for i := len(in) / 2 / 188 * 188; i+188 <= len(in); i += 188 {
		if pid := int(in[i+1]&0x1f)<<8 | int(in[i+2]); pid == 0x100 {
			in[i+3] |= 0x80 // transport_scrambling_control: scrambled
		}
	}
	src, err := NewTS(bytes.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err = src.NextPacket()
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, ErrUnsupported) || n == 0 {
		t.Errorf("after %d packets: %v, want ErrUnsupported", n, err)
	}
}
