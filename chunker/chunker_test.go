package chunker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// collector is an Output that keeps copies of everything and releases the
// chunker's buffers at once, so buffer reuse bugs show up as corrupt media.
type collector struct {
	inits []*chunker.Init
	segs  []*chunker.Segment
	stats chunker.Stats // the chunker's, after Close (writeAll, writeAV)
}

func (c *collector) WriteInit(_ context.Context, in *chunker.Init) error {
	cp := *in
	cp.Data = bytes.Clone(in.Data)
	c.inits = append(c.inits, &cp)
	return nil
}

func (c *collector) WriteSegment(_ context.Context, s *chunker.Segment) error {
	cp := *s
	cp.Data = bytes.Clone(s.Data)
	s.Release()
	c.segs = append(c.segs, &cp)
	return nil
}

// demuxTS reads the H.264 track of an MPEG-TS file with mediacommon, as
// independent truth for the chunker tests (the source package has its own
// tests). Timestamps are the raw 33-bit values.
func demuxTS(t testing.TB, path string) []chunker.Sample {
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
	var out []chunker.Sample
	for _, tr := range r.Tracks() {
		r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
			var nalus [][]byte
			for _, n := range au {
				nalus = append(nalus, bytes.Clone(n))
			}
			out = append(out, chunker.Sample{DTS: dts, PTS: pts, NALUs: nalus})
			return nil
		})
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
	}
	return out
}

// fixtureTS returns an MPEG-TS version of a fixture (remuxed by ffmpeg, no
// re-encoding) so that every fixture kind can feed the chunker.
func fixtureTS(t testing.TB, name string) string {
	t.Helper()
	in := mediatest.Testdata(name)
	if strings.HasSuffix(name, ".ts") {
		return in
	}
	out := filepath.Join(t.TempDir(), "in.ts")
	args := []string{"-i", in, "-map", "0:v:0", "-c", "copy", "-f", "mpegts", out}
	if strings.HasSuffix(name, ".h264") {
		args = append([]string{"-framerate", "30"}, args...)
	}
	mediatest.FFmpeg(t, args...)
	return out
}

func writeAll(t *testing.T, cfg chunker.Config, samples []chunker.Sample) *collector {
	t.Helper()
	out := &collector{}
	c, err := chunker.New(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, s := range samples {
		if err := c.Write(ctx, s); err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out.stats = c.Stats()
	return out
}

// decodeOutput returns the frame hashes of the chunker's output decoded by
// ffmpeg: TS segments concatenated; fMP4 segments concatenated per init.
func decodeOutput(t *testing.T, f chunker.Format, out *collector) []string {
	t.Helper()
	if f == chunker.TS {
		var parts [][]byte
		for _, s := range out.segs {
			parts = append(parts, s.Data)
		}
		return mediatest.FrameHashes(t, mediatest.ConcatFiles(t, "all.ts", parts...))
	}
	var hashes []string
	for i, in := range out.inits {
		parts := [][]byte{in.Data}
		for _, s := range out.segs {
			if s.Init.Seq == in.Seq {
				parts = append(parts, s.Data)
			}
		}
		hashes = append(hashes, mediatest.FrameHashes(t, mediatest.ConcatFiles(t, fmt.Sprintf("init%d.mp4", i), parts...))...)
	}
	return hashes
}

func TestFixturesDecodeFrameExact(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "ffprobe")
	fixtures := []struct {
		name        string
		wrap        bool
		wantInits   int
		wantDiscont int
	}{
		{name: "bframes.mp4", wantInits: 1},
		{name: "baseline.mp4", wantInits: 1},
		{name: "vfr.mov", wantInits: 1},
		{name: "fragmented.mp4", wantInits: 1},
		{name: "wrap.ts", wrap: true, wantInits: 1},
		{name: "reschange.ts", wrap: true, wantInits: 2, wantDiscont: 1},
	}
	for _, fx := range fixtures {
		for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
			t.Run(fx.name+"/"+format.String(), func(t *testing.T) {
				t.Parallel()
				in := fixtureTS(t, fx.name)
				samples := demuxTS(t, in)
				want := mediatest.FrameHashes(t, mediatest.Testdata(fx.name))
				cfg := chunker.Config{Format: format, TargetDuration: time.Second, WrapBits: 33}
				out := writeAll(t, cfg, samples)

				if len(out.segs) < 2 {
					t.Fatalf("got %d segments, want several", len(out.segs))
				}
				if len(out.inits) != fx.wantInits {
					t.Errorf("inits: got %d, want %d", len(out.inits), fx.wantInits)
				}
				discont := 0
				var total int64
				frames := 0
				for i, s := range out.segs {
					if s.Seq != uint64(i) {
						t.Errorf("segment %d has seq %d", i, s.Seq)
					}
					if s.Discontinuity {
						discont++
					}
					total += s.Duration
					frames += s.Frames
					if i > 0 && !s.Discontinuity {
						prev := out.segs[i-1]
						if prev.FirstDTS+prev.Duration != s.FirstDTS {
							t.Errorf("segment %d starts at %d, previous ends at %d", i, s.FirstDTS, prev.FirstDTS+prev.Duration)
						}
					}
					checkSegmentAlone(t, format, s)
				}
				if discont != fx.wantDiscont {
					t.Errorf("discontinuities: got %d, want %d", discont, fx.wantDiscont)
				}
				if frames != len(samples) {
					t.Errorf("frames: got %d, want %d", frames, len(samples))
				}
				// Durations add up exactly to the input's: last DTS minus first
				// DTS plus the last sample's duration (which the chunker takes
				// from the one before, as nothing follows it).
				n := len(samples)
				unwrap := func(d int64) int64 { return d }
				first, last, prev := samples[0].DTS, samples[n-1].DTS, samples[n-2].DTS
				if fx.wrap && last < first {
					last += 1 << 33
					if prev < first {
						prev += 1 << 33
					}
				}
				_ = unwrap
				if wantTotal := last - first + (last - prev); total != wantTotal && fx.wantDiscont == 0 {
					t.Errorf("total duration %d ticks, want %d", total, wantTotal)
				}
				got := decodeOutput(t, format, out)
				if d := mediatest.EqualHashes(want, got); d != "" {
					t.Fatalf("decoded frames differ from the input's: %s", d)
				}
			})
		}
	}
}

// checkSegmentAlone decodes one segment (with its init) on its own: ffprobe
// must see a keyframe first and as many frames as the metadata says.
func checkSegmentAlone(t *testing.T, f chunker.Format, s *chunker.Segment) {
	t.Helper()
	parts := [][]byte{s.Data}
	name := "seg.ts"
	if f == chunker.FMP4 {
		parts = [][]byte{s.Init.Data, s.Data}
		name = "seg.mp4"
	}
	p := mediatest.ConcatFiles(t, name, parts...)
	pk := mediatest.Packets(t, p)
	if len(pk) != s.Frames {
		t.Errorf("segment %d: ffprobe sees %d packets, metadata says %d", s.Seq, len(pk), s.Frames)
	}
	if len(pk) == 0 || !pk[0].Key {
		t.Errorf("segment %d does not start with a keyframe", s.Seq)
	}
	hashes := mediatest.FrameHashes(t, p)
	if len(hashes) != s.Frames {
		t.Errorf("segment %d: decoded %d frames alone, want %d", s.Seq, len(hashes), s.Frames)
	}
}
