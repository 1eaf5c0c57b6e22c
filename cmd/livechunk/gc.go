package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// startHeap is the heap goal of a livechunk process until its live heap is
// half of it, in place of the runtime's 4 MB minimum and GOGC=100.
//
// A record job allocates its working set, the chunker's segment buffers (a
// few megabytes each, for the whole run), in its first milliseconds. With the
// runtime's defaults the heap passes 4 and then 8 MB while they are being
// allocated, and each of those collections marks everything (in the default
// build also the 2.7 MB that the cloud SDKs' package initialization left)
// to free almost nothing. With a goal of 32 MB the first collection finds the
// working set in place; once the live heap is 16 MB, twice of it is more than
// 32 MB and the usual pacing (GOGC=100) takes over, so a long run's peak is
// what it would be anyway. The Go compiler does the same for its own start
// (cmd/compile's base.AdjustStartingHeap). See BENCHMARKS.md.
const startHeap = 32 << 20

// heapMinimum is the runtime's least heap goal at GOGC=100.
const heapMinimum = 4 << 20

// adjustStartingHeap keeps the heap goal at about goal bytes, collection
// after collection, until the live heap is half of it, and then restores
// GOGC=100; the channel it returns is closed then. A GOGC or GOMEMLIMIT in
// the environment is the user's choice and is left alone (nil is returned,
// as when the goal is already that high).
func adjustStartingHeap(goal uint64) <-chan struct{} {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	if cur := readUint64("/gc/heap/goal:bytes"); cur == 0 || goal <= cur {
		return nil
	}
	// The goal is the larger of the heap minimum, 4 MB at GOGC=100 and
	// scaled with GOGC, and the live heap (as the last collection marked
	// it) times 1+GOGC/100. A collection that package initialization
	// started may still be running: the percentage set here applies to
	// it, and it is set again after the next.
	gogc := func(live uint64) uint64 {
		p := 100 * goal / heapMinimum
		if live > 0 {
			p = min(p, 100*(goal-live)/live)
		}
		return p
	}
	live := readUint64("/gc/heap/live:bytes")
	if 2*live >= goal {
		return nil
	}
	debug.SetGCPercent(percent(gogc(live)))
	done := make(chan struct{})
	forEachGC(func() bool {
		live := readUint64("/gc/heap/live:bytes")
		if live == 0 || 2*live >= goal {
			debug.SetGCPercent(100)
			close(done)
			return false
		}
		debug.SetGCPercent(percent(gogc(live)))
		return true
	})
	return done
}

// percent bounds a GOGC value to what the runtime takes (and what keeps
// the heap goal finite).
func percent(p uint64) int { return int(min(max(p, 100), 1<<20)) }

// forEachGC calls fn after every garbage collection (on the runtime's
// cleanup goroutine) until it returns false.
func forEachGC(fn func() bool) {
	// The cleanup of an object that nothing references runs after the
	// collection that found it; the object is big enough not to share a
	// tiny-allocator block with anything that lives on.
	type sentinel [32]byte
	var arm func()
	arm = func() {
		runtime.AddCleanup(new(sentinel), func(int) {
			if fn() {
				arm()
			}
		}, 0)
	}
	arm()
}

// readUint64 reads a runtime metric (0 if the runtime lacks it).
func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
