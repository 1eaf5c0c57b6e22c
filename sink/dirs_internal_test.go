package sink

import (
	"context"
	"runtime"
	"testing"
)

// TestOpenForgetsGarbageBuckets: the directory Open remembers for each
// bucket (for CreateExclusive) goes with the bucket, so a process that
// opens buckets for ever does not grow.
func TestOpenForgetsGarbageBuckets(t *testing.T) {
	count := func() (n int) {
		dirs.Range(func(any, any) bool { n++; return true })
		return n
	}
	before := count()
	dir := t.TempDir()
	for range 100 {
		b, err := Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := bucketDir(b); !ok {
			t.Fatal("Open did not remember the directory")
		}
		b.Close()
	}
	// Cleanups run on their own goroutine after a collection; give them
	// turns until the map shrinks, for a bounded number of collections.
	for i := 0; i < 1000 && count() > before; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if n := count(); n > before {
		t.Fatalf("%d directories remembered after the buckets became garbage (%d before)", n, before)
	}
}
