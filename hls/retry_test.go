package hls_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

func isPlaylist(k string) bool { return k == "index.m3u8" }

// loadSegments returns the number of segments of the playlist stored in b
// and whether it ended.
func loadSegments(t *testing.T, b *blob.Bucket) (int, bool) {
	t.Helper()
	m, err := hls.LoadMedia(context.Background(), b, "index.m3u8")
	if err != nil {
		t.Fatalf("stored playlist: %v", err)
	}
	return len(m.Segments), m.Ended
}

func retrySeg(i int) hls.Segment {
	return hls.Segment{URI: fmt.Sprintf("seg%05d.ts", i), Duration: 90000, Timescale: 90000}
}

// TestPublisherRetriesTransientFaults writes 200 playlist versions through
// a store that fails about half of the attempts with transient errors
// (reset connections, 500s, SlowDown, lost acknowledgements, hangs): every
// Add and Finish succeeds, the stored playlist lists exactly the segments
// added so far the moment Add returns, every version that lands is valid
// and never shrinks, and the pauses between attempts back off.
func TestPublisherRetriesTransientFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	var (
		mu       sync.Mutex
		versions int
		lastN    int
		bad      []string
	)
	in := faultblob.New(inner, faultblob.Config{Seed: 8, Rules: []faultblob.Rule{
		{Name: "reset", Ops: faultblob.OpWrite, Match: isPlaylist, Prob: 0.15, Code: gcerrors.Unknown},
		{Name: "body", Ops: faultblob.OpData, Match: isPlaylist, Prob: 0.1, Code: gcerrors.Unknown},
		{Name: "500", Ops: faultblob.OpCommit, Match: isPlaylist, Prob: 0.15, Code: gcerrors.Internal},
		{Name: "slowdown", Ops: faultblob.OpCommit, Match: isPlaylist, Prob: 0.1, Code: gcerrors.ResourceExhausted},
		{Name: "lostack", Ops: faultblob.OpCommit, Match: isPlaylist, Prob: 0.1, Action: faultblob.LostAck, Code: gcerrors.Unknown},
		{Name: "hang", Ops: faultblob.OpCommit, Match: isPlaylist, Prob: 0.03, Action: faultblob.Hang},
	}, AfterCommit: func(key string) {
		if key != "index.m3u8" {
			return
		}
		// Runs inside the publisher's write: this is what a polling reader
		// could see at this instant.
		m, err := hls.LoadMedia(context.Background(), inner, key)
		mu.Lock()
		defer mu.Unlock()
		versions++
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case len(m.Segments) < lastN:
			bad = append(bad, fmt.Sprintf("version %d lists %d segments, an earlier one %d", versions, len(m.Segments), lastN))
		default:
			lastN = len(m.Segments)
		}
	}})
	const initial, maxPause = 2 * time.Millisecond, 32 * time.Millisecond
	p, err := hls.NewPublisher(in.Bucket(), hls.PublisherConfig{
		Type: hls.Event, TargetDuration: time.Second,
		Retry: sink.Retry{MaxAttempts: -1, InitialBackoff: initial, MaxBackoff: maxPause, AttemptTimeout: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := p.Add(ctx, retrySeg(i)); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
		if got, _ := loadSegments(t, inner); got != i+1 {
			t.Fatalf("after Add %d the stored playlist lists %d segments", i, got)
		}
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if got, ended := loadSegments(t, inner); got != n || !ended {
		t.Fatalf("final playlist: %d segments, ended %v", got, ended)
	}
	mu.Lock()
	if len(bad) > 0 {
		t.Errorf("%d bad versions, first: %s", len(bad), bad[0])
	}
	mu.Unlock()

	injected := 0
	for _, c := range in.Injected() {
		injected += c
	}
	st := p.Stats()
	if st.Writes != n+1 || st.WriteFailures != 0 {
		t.Errorf("stats %+v, want %d writes and no failures", st, n+1)
	}
	if st.WriteRetries != injected || injected < n/2 {
		t.Errorf("%d faults injected, %d retries (want equal, at least %d)", injected, st.WriteRetries, n/2)
	}
	// Every attempt opens a writer once: the gaps between opens are the
	// writes plus the retries, minus one.
	pauses := faultblob.Pauses(in.Records(), faultblob.OpWrite)["index.m3u8"]
	if len(pauses) != n+st.WriteRetries {
		t.Errorf("%d gaps between opens, want %d", len(pauses), n+st.WriteRetries)
	}
	t.Logf("%d playlist versions, %d faults injected (%v), %d retries, %d versions landed and checked; mean gap between opens %v",
		n+1, injected, in.Injected(), st.WriteRetries, versions, faultblob.Mean(pauses))
}

// TestPublisherBackoffGrows scripts the first four attempts of the first
// write of 30 playlists to fail and measures the pauses between attempts:
// each is within its bound and on average they grow.
func TestPublisherBackoffGrows(t *testing.T) {
	ctx := context.Background()
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := faultblob.New(inner, faultblob.Config{Rules: []faultblob.Rule{
		{Name: "500", Ops: faultblob.OpWrite, Prob: 1, FirstN: 4, Code: gcerrors.Internal},
	}})
	const initial, playlists = 4 * time.Millisecond, 30
	for i := range playlists {
		p, err := hls.NewPublisher(in.Bucket(), hls.PublisherConfig{Type: hls.Event, Name: fmt.Sprintf("p%02d.m3u8", i),
			Retry: sink.Retry{InitialBackoff: initial, MaxBackoff: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(ctx, retrySeg(0)); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.WriteRetries != 4 || st.Writes != 1 {
			t.Fatalf("stats %+v", st)
		}
	}
	var byRetry [4][]time.Duration
	for key, pauses := range faultblob.Pauses(in.Records(), faultblob.OpWrite) {
		if len(pauses) != 4 {
			t.Fatalf("%s: %d retries, want 4", key, len(pauses))
		}
		for i, d := range pauses {
			// The gap also holds the failed call; allow for a loaded machine.
			if bound := initial << i; d > bound+100*time.Millisecond {
				t.Errorf("%s: pause %d: %v, bound %v", key, i+1, d, bound)
			}
			byRetry[i] = append(byRetry[i], d)
		}
	}
	var means [4]time.Duration
	for i := range byRetry {
		means[i] = faultblob.Mean(byRetry[i])
	}
	if means[3] < 2*means[0] {
		t.Errorf("pauses do not grow: means %v", means)
	}
	t.Logf("mean pause before retry 1-4 over %d playlists: %v (bounds %v·2^(n-1), full jitter)", playlists, means, initial)
}

// TestPublisherPermanentError: a permanent error is not retried and is
// returned with its code; the next write repairs the playlist. A
// transient error that outlasts MaxAttempts is returned too.
func TestPublisherPermanentError(t *testing.T) {
	ctx := context.Background()
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := faultblob.New(inner, faultblob.Config{})
	p, err := hls.NewPublisher(in.Bucket(), hls.PublisherConfig{Type: hls.Event,
		Retry: sink.Retry{MaxAttempts: 3, InitialBackoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	opens := func() int {
		c := 0
		for _, r := range in.Records() {
			if r.Op == faultblob.OpWrite && r.Key == "index.m3u8" {
				c++
			}
		}
		return c
	}
	if err := p.Add(ctx, retrySeg(0)); err != nil {
		t.Fatal(err)
	}

	in.SetOutage(faultblob.WriteOps, gcerrors.PermissionDenied)
	before := opens()
	err = p.Add(ctx, retrySeg(1))
	var fe *faultblob.Error
	if gcerrors.Code(err) != gcerrors.PermissionDenied || !errors.As(err, &fe) {
		t.Fatalf("Add under PermissionDenied: %v (code %v)", err, gcerrors.Code(err))
	}
	if got := opens() - before; got != 1 {
		t.Errorf("permanent error tried %d times, want 1", got)
	}

	in.SetOutage(faultblob.WriteOps, gcerrors.Internal)
	before = opens()
	err = p.Add(ctx, retrySeg(2))
	if gcerrors.Code(err) != gcerrors.Internal {
		t.Fatalf("Add under a lasting 500: %v", err)
	}
	if got := opens() - before; got != 3 {
		t.Errorf("lasting transient error tried %d times, want MaxAttempts 3", got)
	}
	in.EndOutage()

	if got, _ := loadSegments(t, inner); got != 1 {
		t.Fatalf("stored playlist lists %d segments while writes failed", got)
	}
	if err := p.Add(ctx, retrySeg(3)); err != nil {
		t.Fatal(err)
	}
	if got, _ := loadSegments(t, inner); got != 4 {
		t.Fatalf("the next write did not repair the playlist: %d segments", got)
	}
	if st := p.Stats(); st.WriteFailures != 2 || st.WriteRetries != 2 {
		t.Errorf("stats %+v, want 2 failures, 2 retries", st)
	}
}

// TestPublisherFinishRetry: a Finish whose write fails can be called
// again, and writes the final playlist then; Add after Finish is
// ErrPublisherFinished, and a Finish that succeeded does not write again.
func TestPublisherFinishRetry(t *testing.T) {
	ctx := context.Background()
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := faultblob.New(inner, faultblob.Config{})
	p, err := hls.NewPublisher(in.Bucket(), hls.PublisherConfig{Type: hls.Event,
		Retry: sink.Retry{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(ctx, retrySeg(0)); err != nil {
		t.Fatal(err)
	}
	in.SetOutage(faultblob.WriteOps, gcerrors.PermissionDenied)
	for i := range 2 {
		if err := p.Finish(ctx); gcerrors.Code(err) != gcerrors.PermissionDenied {
			t.Fatalf("Finish %d under PermissionDenied: %v", i, err)
		}
	}
	if err := p.Add(ctx, retrySeg(1)); !errors.Is(err, hls.ErrPublisherFinished) {
		t.Errorf("Add after Finish: %v, want ErrPublisherFinished", err)
	}
	in.EndOutage()
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if n, ended := loadSegments(t, inner); n != 1 || !ended {
		t.Fatalf("stored playlist: %d segments, ended %v; want 1, true", n, ended)
	}
	writes := p.Stats().Writes
	if err := p.Finish(ctx); err != nil || p.Stats().Writes != writes {
		t.Errorf("Finish after Finish: %v, %d writes, want nil and %d", err, p.Stats().Writes, writes)
	}
}
