package chunker_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
)

// discard is an Output that releases segments at once.
type discard struct{}

func (discard) WriteInit(context.Context, *chunker.Init) error { return nil }
func (discard) WriteSegment(_ context.Context, s *chunker.Segment) error {
	s.Release()
	return nil
}

// BenchmarkWrite measures the cost of one Write (one access unit) in the
// steady state; allocs/op is per sample.
func BenchmarkWrite(b *testing.B) {
	samples := fixtureSamples(b, "bframes.mp4")
	span := samples[len(samples)-1].DTS - samples[0].DTS + 3000
	bytesPerLoop := 0
	for _, s := range samples {
		for _, n := range s.NALUs {
			bytesPerLoop += len(n)
		}
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		b.Run(f.String(), func(b *testing.B) {
			c, err := chunker.New(chunker.Config{Format: f}, discard{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Warm up: one pass fills the buffer pool.
			for _, s := range samples {
				if err := c.Write(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(bytesPerLoop / len(samples)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				loop := int64(i/len(samples) + 1)
				s := samples[i%len(samples)]
				s.DTS += loop * span
				s.PTS += loop * span
				if err := c.Write(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWriteAllocations: in steady state, writing a video sample allocates
// nothing in either format (payloads go straight into the segment buffer;
// the buffer itself comes from the pool, or grows rarely).
func TestWriteAllocations(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	span := samples[len(samples)-1].DTS - samples[0].DTS + 3000
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Hour}, discard{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		i := 0
		write := func() {
			s := samples[i%len(samples)]
			loop := int64(i / len(samples))
			s.DTS += loop * span
			s.PTS += loop * span
			if err := c.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
			i++
		}
		for range 2 * len(samples) {
			write()
		}
		if allocs := testing.AllocsPerRun(4*len(samples), write); allocs > 0.05 {
			t.Errorf("%v: %.3f allocations per sample", f, allocs)
		}
	}
}

// copyOut keeps a copy of every segment's bytes and releases the segment
// at once, so its buffer goes back to the pool.
type copyOut struct{ segs [][]byte }

func (*copyOut) WriteInit(context.Context, *chunker.Init) error { return nil }
func (o *copyOut) WriteSegment(_ context.Context, s *chunker.Segment) error {
	o.segs = append(o.segs, bytes.Clone(s.Data))
	s.Release()
	return nil
}

// TestSharedPool: chunkers that share a Pool, written interleaved, emit the
// same bytes as chunkers with pools of their own.
func TestSharedPool(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		run := func(pool *chunker.Pool) [][][]byte {
			outs := []*copyOut{{}, {}, {}}
			var cs []chunker.Chunker
			for _, o := range outs {
				c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second, Pool: pool}, o)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			ctx := context.Background()
			for _, s := range samples {
				for _, c := range cs {
					if err := c.Write(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
			}
			var got [][][]byte
			for i, c := range cs {
				if err := c.Close(ctx); err != nil {
					t.Fatal(err)
				}
				got = append(got, outs[i].segs)
			}
			return got
		}
		own, shared := run(nil), run(chunker.NewPool())
		if len(own[0]) < 2 {
			t.Fatalf("%v: %d segments, want several", f, len(own[0]))
		}
		for i := range own {
			if !slices.EqualFunc(own[i], shared[i], bytes.Equal) {
				t.Errorf("%v: stream %d differs with a shared pool", f, i)
			}
		}
	}
}
