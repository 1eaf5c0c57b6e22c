package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestAdjustStartingHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	runtime.GC()
	cur := heapGoal()
	if cur == 0 {
		t.Fatal("no heap goal metric")
	}
	done := adjustStartingHeap(8 * cur)
	if done == nil {
		t.Fatal("adjustStartingHeap did nothing")
	}
	if g := heapGoal(); g < 4*cur {
		t.Errorf("heap goal %d after asking for %d (was %d)", g, 8*cur, cur)
	}
	runtime.GC()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the default pacing was not restored after a collection")
	}
	if old := debug.SetGCPercent(100); old != 100 {
		t.Errorf("GOGC is %d after the first collection, want 100", old)
	}
	if g := heapGoal(); g > 3*cur {
		t.Errorf("heap goal %d after the restore, started at %d", g, cur)
	}

	t.Setenv("GOGC", "50")
	if adjustStartingHeap(8*cur) != nil {
		t.Error("a GOGC from the environment was overridden")
	}
}
