package demux_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
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

// TestFindProgram holds FindProgram's packet-by-packet search (program
// tables, then the first ADTS header) to mediacommon's Reader on real
// MPEG-TS: the fixtures, ffmpeg's output with 5.1 audio at 48 kHz, with the
// audio stream first, without audio, without video, and segments of
// ffmpeg's and livechunk's own muxer. Every one must be answered without
// mediacommon, and a head cut before the first audio packet completes must
// not be answered. Two audio streams (the second is named for the user) are
// left to mediacommon. FindProgram itself, reading the file through a
// reader that returns a byte at a time, must give the same program.
func TestFindProgram(t *testing.T) {
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
			head := b[:min(len(b), 256<<10)/mpegts.PacketSize*mpegts.PacketSize]
			want, werr := demux.FindWithMediacommon(head)
			if werr != nil {
				t.Fatalf("mediacommon: %v", werr)
			}
			got, done, ok := demux.FindFast(head)
			if !done || !ok {
				t.Fatalf("not answered without mediacommon (done %v, ok %v); mediacommon: %+v", done, ok, want)
			}
			if describe(got) != describe(want) {
				t.Fatalf("%s; mediacommon %s", describe(got), describe(want))
			}
			whole, _, err := demux.FindProgram(iotest.OneByteReader(bytes.NewReader(b)), nil, 32<<20)
			if err != nil || describe(whole) != describe(want) {
				t.Fatalf("FindProgram: %s, %v; mediacommon %s", describe(whole), err, describe(want))
			}
			// Through a bufio.Reader: the search looks at its buffer first,
			// consuming nothing when the program is in it, and otherwise
			// returns what it consumed; either way that and the rest are
			// the input.
			for _, size := range []int{16, 4 << 10, 1 << 20} {
				br := bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(b)), size)
				got, head, err := demux.FindProgram(br, nil, 32<<20)
				if err != nil || describe(got) != describe(want) {
					t.Fatalf("FindProgram over a %d-byte bufio.Reader: %s, %v; mediacommon %s", size, describe(got), err, describe(want))
				}
				rest, err := io.ReadAll(br)
				if err != nil || !bytes.Equal(append(head, rest...), b) {
					t.Fatalf("bufio.Reader of %d bytes: %d bytes consumed and %d left, not the input (%v)", size, len(head), len(rest), err)
				}
				if size == 1<<20 && len(head) != 0 {
					t.Errorf("%d bytes consumed from a bufio.Reader that holds the program", len(head))
				}
			}
			if got.Audio != nil {
				// Cut just before the first audio PES packet is complete.
				cut := 0
				for i := 0; i+mpegts.PacketSize <= len(head); i += mpegts.PacketSize {
					p := head[i:]
					if mpegts.PID(p) == got.Audio.PID && p[1]&0x40 != 0 {
						if cut > 0 {
							break
						}
						cut = i
					}
				}
				if _, done, _ := demux.FindFast(head[:cut+mpegts.PacketSize]); done {
					t.Fatal("answered without a complete audio packet")
				}
			}
		})
	}
}

// describe prints a program for comparisons.
func describe(p demux.Program) string {
	s := fmt.Sprintf("video %d, ignored %q", p.Video, p.IgnoredAudio)
	if a := p.Audio; a != nil {
		s += fmt.Sprintf(", audio %d %x %+v", a.PID, a.ASC, a.AAC)
	}
	return s
}

// TestFindProgramErrors: the typed errors of FindProgram, and mediacommon's
// answers where the program is not of H.264 and one AAC stream.
func TestFindProgramErrors(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	gen := func(name string, args ...string) []byte {
		p := filepath.Join(dir, name)
		mediatest.FFmpeg(t, append(append([]string{"-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1"}, args...), p)...)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	av, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	null := bytes.Repeat(append([]byte{0x47, 0x1f, 0xff, 0x10}, make([]byte, 184)...), 1000)
	sine := []string{"-f", "lavfi", "-i", "sine=duration=1"}
	for _, c := range []struct {
		name    string
		in      []byte
		limit   int
		err     error  // nil: a program
		ignored string // IgnoredAudio
		audio   bool
	}{
		{"empty", nil, 1 << 20, demux.ErrTruncated, "", false},
		{"tables-cut", av[:188], 1 << 20, demux.ErrTruncated, "", false},
		{"no-tables", null, 64 << 10, demux.ErrInvalid, "", false},
		{"hevc", gen("hevc.ts", "-c:v", "libx265", "-x265-params", "log-level=error"), 1 << 20, demux.ErrUnsupported, "", false},
		{"two-aac", gen("twoaudio.ts", append(sine, "-f", "lavfi", "-i", "sine=duration=1:sample_rate=22050",
			"-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-c:a", "aac")...), 1 << 20, nil, "AAC", true},
		{"mp2", gen("mp2.ts", append(sine, "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "mp2")...), 1 << 20, nil,
			"MPEG-1 audio (MP2/MP3)", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, _, err := demux.FindProgram(bytes.NewReader(c.in), nil, c.limit)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("%+v, %v; want %v", p, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(p.IgnoredAudio) != fmt.Sprint([]string{c.ignored}) || (p.Audio != nil) != c.audio || p.Video == mpegts.NoPID {
				t.Errorf("%+v; want ignored %q, audio %v", p, c.ignored, c.audio)
			}
		})
	}
}

// TestFindProgramLive: FindProgram answers as soon as the program tables
// and the first audio packet have arrived, without waiting for more (a
// live push sends them, then for a while nothing it could use).
func TestFindProgramLive(t *testing.T) {
	in, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0 // the shortest head that answers
	for n = mpegts.PacketSize; n <= len(in); n += mpegts.PacketSize {
		if _, done, _ := demux.FindFast(in[:n]); done {
			break
		}
	}
	if n >= len(in) {
		t.Fatal("no answer before the end of av.ts")
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(in[:n])
	got := make(chan error, 1)
	go func() {
		_, _, err := demux.FindProgram(pr, nil, 32<<20)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FindProgram waits for more than the program needs")
	}
}
