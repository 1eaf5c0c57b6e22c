package chunker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/livechunk/livechunk/chunker"
)

// TestContinuation: a chunker that stops between segments (Flush) and a
// new one made from its Continuation, through JSON, write the same
// segments, byte for byte, as one chunker that flushed at the same place
// and went on: same init section (not emitted again), sequence numbers,
// output times and audio; no discontinuity.
func TestContinuation(t *testing.T) {
	items, asc := demuxAV(t, avInput(t, 48000, 2))
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			cfg := chunker.Config{Format: format, Audio: &chunker.AudioConfig{ASC: asc, Timescale: 90000}}
			ctx := context.Background()
			cut := len(items) / 2
			// One chunker that flushes at the cut and goes on.
			whole := &collector{}
			w, err := chunker.New(cfg, whole)
			if err != nil {
				t.Fatal(err)
			}
			feed := func(c chunker.Chunker, items []avItem) {
				t.Helper()
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
			}
			feed(w, items[:cut])
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			before := len(whole.segs)
			feed(w, items[cut:])
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			// A chunker that stops at the cut, and a new one from its
			// continuation.
			first := &collector{}
			a, err := chunker.New(cfg, first)
			if err != nil {
				t.Fatal(err)
			}
			feed(a, items[:cut])
			if _, err := a.Continuation(); !errors.Is(err, chunker.ErrNotBetweenSegments) {
				t.Errorf("Continuation with a segment open: %v, want ErrNotBetweenSegments", err)
			}
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			cont, err := a.Continuation()
			if err != nil {
				t.Fatal(err)
			}
			js, err := json.Marshal(cont)
			if err != nil {
				t.Fatal(err)
			}
			var back chunker.Continuation
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			second := &collector{}
			cfg.Continue = &back
			b, err := chunker.New(cfg, second)
			if err != nil {
				t.Fatal(err)
			}
			feed(b, items[cut:])
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if len(second.inits) != 0 {
				t.Errorf("the continuing chunker emitted %d init sections", len(second.inits))
			}
			want := whole.segs[before:]
			if len(second.segs) != len(want) || len(first.segs) != before {
				t.Fatalf("%d + %d segments, want %d + %d", len(first.segs), len(second.segs), before, len(want))
			}
			for i, s := range second.segs {
				w := want[i]
				if s.Seq != w.Seq || s.FirstDTS != w.FirstDTS || s.Duration != w.Duration || s.Discontinuity != w.Discontinuity ||
					s.AudioPTS != w.AudioPTS || s.Init.Seq != w.Init.Seq || !bytes.Equal(s.Data, w.Data) {
					t.Errorf("segment %d differs: seq %d/%d, dts %d/%d, audio %d/%d, discontinuity %v/%v, %d/%d bytes",
						i, s.Seq, w.Seq, s.FirstDTS, w.FirstDTS, s.AudioPTS, w.AudioPTS, s.Discontinuity, w.Discontinuity, len(s.Data), len(w.Data))
				}
			}
		})
	}
}
