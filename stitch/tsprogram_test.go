package stitch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/source"
)

// segmentFiles writes every segment to a file.
type segmentFiles struct {
	dir   string
	paths []string
}

func (*segmentFiles) WriteInit(context.Context, *chunker.Init) error { return nil }
func (o *segmentFiles) WriteSegment(_ context.Context, s *chunker.Segment) error {
	p := filepath.Join(o.dir, fmt.Sprintf("own%d.ts", s.Seq))
	o.paths = append(o.paths, p)
	return os.WriteFile(p, s.Data, 0o644)
}

// ownSegment records in as MPEG-TS segments of 1 s with livechunk's muxer
// and returns the second segment's path.
func ownSegment(t *testing.T, in, dir string) string {
	src, err := source.Open(in, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	out := &segmentFiles{dir: dir}
	c, err := chunker.New(chunker.Config{Format: chunker.TS, Timescale: info.Timescale, TargetDuration: time.Second,
		SPS: info.SPS, PPS: info.PPS, Audio: info.Audio.Config()}, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == source.KindAudio {
			err = c.WriteAudio(ctx, p.Audio)
		} else {
			err = c.Write(ctx, p.Video)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(out.paths) < 2 {
		t.Fatalf("%d segments", len(out.paths))
	}
	return out.paths[1]
}

// TestTSProgram holds the fast path of tsPIDs (astits for the program map,
// the depacketizer for the first ADTS header) to mediacommon's Reader on
// real MPEG-TS: the fixtures, ffmpeg's output with 5.1 audio at 48 kHz,
// with the audio stream first, with two audio streams, without audio,
// without video, and segments of livechunk's own muxer. Every one must take
// the fast path, and a head cut before the first audio packet completes
// must not.
func TestTSProgram(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	gen := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		mediatest.FFmpeg(t, append(append([]string{"-y"}, args...), p)...)
		return p
	}
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3"}
	h264 := []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"}
	sine := func(rate string) []string {
		return []string{"-f", "lavfi", "-i", "sine=duration=3:sample_rate=" + rate}
	}
	inputs := []string{
		mediatest.Testdata("av.ts"), mediatest.Testdata("reschange.ts"), mediatest.Testdata("wrap.ts"),
		gen("surround.ts", append(append(append(video, sine("48000")...), h264...), "-c:a", "aac", "-ac", "6")...),
		gen("audiofirst.ts", append(append(append(sine("44100"), video...), "-map", "0:a", "-map", "1:v", "-c:a", "aac"), h264...)...),
		gen("twoaudio.ts", append(append(append(append(video, sine("44100")...), sine("22050")...),
			"-map", "0:v", "-map", "2:a", "-map", "1:a", "-c:a", "aac"), h264...)...),
		gen("videoonly.ts", append(video, h264...)...),
		gen("audioonly.ts", append(sine("32000"), "-c:a", "aac", "-ac", "1")...),
	}
	var mp4In string
	for _, in := range mediatest.AudioInputs(t) {
		if filepath.Ext(in.File) == ".ts" {
			inputs = append(inputs, in.File)
		}
		if in.Name == "mp4-44k1-stereo" {
			mp4In = in.File
		}
	}
	seg := filepath.Join(dir, "seg")
	mediatest.FFmpeg(t, "-y", "-i", mediatest.Testdata("av.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1",
		"-hls_segment_filename", seg+"%d.ts", filepath.Join(dir, "index.m3u8"))
	inputs = append(inputs, seg+"0.ts", ownSegment(t, mp4In, dir))
	for _, p := range inputs {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			head := b[:min(len(b), tsHead)/mpegts.PacketSize*mpegts.PacketSize]
			want, werr := tsPIDsMediacommon(head)
			got, ok := tsProgram(head, false)
			if !ok {
				t.Fatalf("fast path did not find the program (mediacommon: %+v, %v)", want, werr)
			}
			if werr != nil {
				t.Fatalf("mediacommon: %v; fast path %+v", werr, got)
			}
			if got.video != want.video || (got.audio == nil) != (want.audio == nil) {
				t.Fatalf("video PID %d, audio %+v; mediacommon %d, %+v", got.video, got.audio, want.video, want.audio)
			}
			if got.audio != nil && (got.audio.pid != want.audio.pid || !bytes.Equal(got.audio.asc, want.audio.asc) ||
				got.audio.info != want.audio.info) {
				t.Fatalf("audio %+v; mediacommon %+v", *got.audio, *want.audio)
			}
			if got.audio != nil {
				// Cut just before the first audio PES packet is complete:
				// the fast path must hand over to mediacommon.
				cut := 0
				for i := 0; i+mpegts.PacketSize <= len(head); i += mpegts.PacketSize {
					p := head[i:]
					if uint16(p[1]&0x1f)<<8|uint16(p[2]) == got.audio.pid && p[1]&0x40 != 0 {
						if cut > 0 {
							break
						}
						cut = i
					}
				}
				if _, ok := tsProgram(head[:cut+mpegts.PacketSize], false); ok {
					t.Fatal("fast path answered without a complete audio packet")
				}
			}
		})
	}
}

// TestTSDemuxSearchesFar: an object whose first audio packet comes after
// 20 MiB (here of null packets, after the program tables) is searched in
// steps up to 32 MiB and demultiplexed whole, as the same object without
// the stuffing is.
func TestTSDemuxSearchesFar(t *testing.T) {
	in, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	first := -1 // the first packet that is not a program table
	for i := 0; i+mpegts.PacketSize <= len(in); i += mpegts.PacketSize {
		if pid := int(in[i+1]&0x1f)<<8 | int(in[i+2]); pid != 0 && pid != 0x11 && pid != 0x1000 {
			first = i
			break
		}
	}
	if first <= 0 {
		t.Fatal("no program tables at the start of av.ts")
	}
	null := make([]byte, mpegts.PacketSize)
	null[0], null[1], null[2], null[3] = 0x47, 0x1f, 0xff, 0x10
	stuffed := slices.Clone(in[:first])
	for len(stuffed) < first+20<<20 {
		stuffed = append(stuffed, null...)
	}
	stuffed = append(stuffed, in[first:]...)
	type counts struct {
		pictures, frames int
		asc              string
	}
	demux := func(b []byte) (counts, error) {
		var c counts
		err := tsDemux(bytes.NewReader(b), func(error) {},
			func(_, _ int64, _ [][]byte) error { c.pictures++; return nil },
			func(a *tsAudio) error {
				if a != nil {
					c.asc = fmt.Sprintf("%x", a.asc)
				}
				return nil
			},
			func(_ int64, frames [][]byte) error { c.frames += len(frames); return nil })
		return c, err
	}
	want, err := demux(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := demux(stuffed)
	if err != nil {
		t.Fatalf("after 20 MiB of stuffing: %v", err)
	}
	if got != want || want.pictures == 0 || want.frames == 0 || want.asc == "" {
		t.Errorf("after 20 MiB of stuffing: %+v, without: %+v", got, want)
	}
}
