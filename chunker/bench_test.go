package chunker_test

import (
	"context"
	"testing"

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
