package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// startHeap is the heap size at which the first garbage collection of a
// livechunk process runs, in place of the runtime's 4 MB.
//
// A record job allocates its working set, the chunker's segment buffers (a
// few megabytes each, for the whole run), in its first milliseconds. With the
// runtime's default the heap passes 4 and then 8 MB while they are being
// allocated, and each of those collections marks everything (in the default
// build also the 2.7 MB that the cloud SDKs' package initialization left)
// to free almost nothing. The first collection at 32 MB finds the working
// set in place; after it the usual pacing (GOGC=100) takes over, so a long
// run's peak is the same as before. This is what the Go compiler does for
// its own start (cmd/compile's base.AdjustStartingHeap). See BENCHMARKS.md.
const startHeap = 32 << 20

// adjustStartingHeap makes the next collection run at about goal bytes of
// heap, and restores the default pacing once it has run; the channel it
// returns is closed then. A GOGC or GOMEMLIMIT in the environment is the
// user's choice and is left alone (nil is returned, as when the goal is
// already that high).
func adjustStartingHeap(goal uint64) <-chan struct{} {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	cur := heapGoal()
	if cur == 0 || goal <= cur {
		return nil
	}
	// Before the first collection the goal is the heap minimum, which the
	// runtime scales with GOGC; after one, twice the live heap, which is
	// smaller than the minimum as long as the working set is not there.
	debug.SetGCPercent(int(100 * goal / cur))
	// The cleanup of an object that nothing references runs after the
	// collection that found it; the object is big enough not to share a
	// tiny-allocator block with anything that lives on.
	first := new(struct {
		p   *byte
		pad [32]byte
	})
	done := make(chan struct{})
	runtime.AddCleanup(first, func(done chan struct{}) {
		debug.SetGCPercent(100)
		close(done)
	}, done)
	return done
}

// heapGoal is the runtime's current heap goal in bytes (0 if unknown).
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
