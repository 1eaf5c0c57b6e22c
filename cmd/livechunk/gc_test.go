package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestAdjustStartingHeap: the goal is raised at once, stays raised while
// the live heap is small, and GOGC is back at 100 after a collection that
// finds the live heap at half the goal.
func TestAdjustStartingHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetGCPercent(100) // whatever the test process runs with
	t.Cleanup(func() { debug.SetGCPercent(old) })
	runtime.GC()
	cur := readUint64("/gc/heap/goal:bytes")
	if cur == 0 {
		t.Fatal("no heap goal metric")
	}
	goal := 8 * cur
	done := adjustStartingHeap(goal)
	if done == nil {
		t.Fatal("adjustStartingHeap did nothing")
	}
	if g := readUint64("/gc/heap/goal:bytes"); g < goal*9/10 || g > goal*11/10 {
		t.Errorf("heap goal %d after asking for %d (was %d)", g, goal, cur)
	}
	// Collections with a small live heap keep the goal up.
	for range 3 {
		runtime.GC()
	}
	if g := readUint64("/gc/heap/goal:bytes"); g < goal*9/10 || g > goal*11/10 {
		t.Errorf("heap goal %d after collections of a small heap, want about %d", g, goal)
	}
	select {
	case <-done:
		t.Fatal("default pacing restored while the live heap is small")
	default:
	}
	// The working set arrives: half the goal, live.
	keep := make([][]byte, 0, goal>>20)
	for range goal/2>>20 + 1 {
		keep = append(keep, make([]byte, 1<<20))
	}
	for range 3 {
		runtime.GC()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the default pacing was not restored")
	}
	runtime.KeepAlive(keep)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC is %d after the restore, want 100", p)
	}

	t.Setenv("GOGC", "50")
	if adjustStartingHeap(8*cur) != nil {
		t.Error("a GOGC from the environment was overridden")
	}
}
