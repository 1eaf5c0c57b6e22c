package livechunk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
)

// TestPipelineContinue records a stream in two pipelines, as a server that
// restarts between two chunks does: the first flushes after sample 75,
// waits until everything is durable and listed (Wait), and hands its
// Continuation (through JSON) to the second, which takes the playlist
// over, including a segment that a crash left listed past the
// continuation (made again, under the same name). The result is the same
// as one pipeline that flushed at the same place: the same objects, byte
// for byte, and a playlist without a discontinuity that ffmpeg decodes to
// every input frame.
func TestPipelineContinue(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := context.Background()
	b, err := sink.Open(ctx, filepath.Join(t.TempDir(), "dest"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	in := mediatest.Testdata("bframes.mp4") // 120 frames, IDR every 30
	samples, info := readAllSamples(t, in)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		cfg := func(prefix string) livechunk.Config {
			return livechunk.Config{Format: format, SegmentDuration: time.Second, Prefix: prefix, Playlist: hls.Event,
				Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS, StartTime: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
		}
		// One pipeline, flushed after sample 90 (an IDR follows).
		one := format.String() + "-one/"
		p, err := livechunk.NewPipeline(ctx, b, cfg(one))
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range samples {
			if i == 90 {
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}

		// Two pipelines, the second made from the first's continuation.
		two := format.String() + "-two/"
		p1, err := livechunk.NewPipeline(ctx, b, cfg(two))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples[:90] {
			if err := p1.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p1.Continuation(); err == nil {
			t.Error("Continuation with a segment open: no error")
		}
		if err := p1.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p1.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		m := checkPlaylist(t, b, two+"index.m3u8")
		if len(m.Entries) != 3 {
			t.Fatalf("after Wait the playlist lists %d segments, want the 3 closed", len(m.Entries))
		}
		cont, err := p1.Continuation()
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(cont)
		if err != nil {
			t.Fatal(err)
		}
		// The first process goes on past the continuation and crashes
		// after one more segment is listed.
		for _, s := range samples[90:] {
			if err := p1.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := p1.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		var back chunker.Continuation
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		c := cfg(two)
		c.Continue = &back
		p2, err := livechunk.NewPipeline(ctx, b, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples[90:] {
			if err := p2.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := p2.Close(ctx); err != nil {
			t.Fatal(err)
		}

		a, z := snapshot(t, b, one), snapshot(t, b, two)
		if len(a) != len(z) {
			t.Errorf("%v: %d objects in one pipeline, %d in two", format, len(a), len(z))
		}
		for k, v := range a {
			if strings.HasSuffix(k, "master.m3u8") {
				continue // its BANDWIDTH is measured from the segments each pipeline made
			}
			if w := z[strings.Replace(k, one, two, 1)]; !bytes.Equal(v, w) {
				t.Errorf("%v: %s differs between one pipeline and two", format, k)
			}
		}
		m = checkPlaylist(t, b, two+"index.m3u8")
		for _, e := range m.Entries {
			if e.Discontinuity {
				t.Errorf("%v: discontinuity at %s", format, e.URI)
			}
		}
		got := mediatest.FrameHashes(t, filepath.Join(materialize(t, b, two), "index.m3u8"))
		if d := mediatest.EqualHashes(wantHashes(t, in), got); d != "" {
			t.Errorf("%v: continued recording decodes wrong: %s", format, d)
		}
	}
}
