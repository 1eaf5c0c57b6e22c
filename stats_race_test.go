package livechunk_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/source"
)

// TestStatsFromAnotherGoroutine: a monitoring goroutine reads Stats while
// the stream is written (run with -race: the chunker's counters used to be
// read unguarded); the counters it sees never go back, and the last ones
// count every sample.
func TestStatsFromAnotherGoroutine(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	src, err := source.Open(mediatest.Testdata("bframes.mp4"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	p, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{SegmentDuration: 200 * time.Millisecond,
		Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var last int64
		for {
			st := p.Stats()
			if st.Chunker.Samples < last {
				t.Errorf("samples went back from %d to %d", last, st.Chunker.Samples)
			}
			last = st.Chunker.Samples
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	n := int64(0)
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if got := p.Stats().Chunker.Samples; got != n {
		t.Errorf("Stats counts %d samples, %d were written", got, n)
	}
}
