package livechunk_test

import (
	"context"
	"testing"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob/memblob"
)

// TestRecordProgress: Record reports its counters while it reads (never
// going back) and once more at the end with the stats it returns.
func TestRecordProgress(t *testing.T) {
	src, err := source.Open(mediatest.Testdata("bframes.mp4"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	var calls []livechunk.Stats
	st, err := livechunk.Record(context.Background(), b, src, livechunk.Config{
		SegmentDuration:  1e9,
		Progress:         func(s livechunk.Stats) { calls = append(calls, s) },
		ProgressInterval: 1, // every packet
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 100 {
		t.Fatalf("%d progress calls for 120 frames", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		a, b := calls[i-1], calls[i]
		if b.Chunker.Samples < a.Chunker.Samples || b.Chunker.Segments < a.Chunker.Segments || b.Sink.UploadedBytes < a.Sink.UploadedBytes {
			t.Fatalf("progress went back at call %d: %+v after %+v", i, b, a)
		}
	}
	if last := calls[len(calls)-1]; last != st || st.Chunker.Samples != 120 || st.Chunker.Segments != 4 {
		t.Errorf("last progress %+v, Record returned %+v", last, st)
	}
}
