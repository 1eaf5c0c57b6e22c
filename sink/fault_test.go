package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/blobtest"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
)

// soakSegments is the number of segments each fault mix streams.
const soakSegments = 300

// pauseLog records the retry pauses the sink chose, per key.
type pauseLog struct {
	mu sync.Mutex
	m  map[string][]time.Duration
}

func (p *pauseLog) hook(key string, attempt int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]time.Duration{}
	}
	if len(p.m[key]) != attempt-1 {
		panic(fmt.Sprintf("pause for attempt %d of %s after %d pauses", attempt, key, len(p.m[key])))
	}
	p.m[key] = append(p.m[key], d)
}

// soakResult is what one soak run measured.
type soakResult struct {
	stats      Stats
	events     []string
	wantEvents []string
	pauses     map[string][]time.Duration
	records    []faultblob.Record
	injected   int
	elapsed    time.Duration
	err        error
}

// keyIs matches one key exactly.
func keyIs(k string) func(string) bool { return func(s string) bool { return s == k } }

// soak streams soakSegments synthetic segments (an init every 50) through a
// sink over in (which wraps inner), and checks at every OnDurable call that
// the object is already in inner with its exact bytes, so that a playlist
// written from the events would never reference a missing object.
func soak(t *testing.T, inner *blob.Bucket, in *faultblob.Injector, cfg Config) soakResult {
	t.Helper()
	ctx := testCtx(t)
	var (
		mu       sync.Mutex
		events   []string
		problems []string
		want     []string
		contents = map[string][]byte{}
	)
	cfg.OnDurable = func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, fmt.Sprintf("%s:%d:%s", ev.Kind, ev.Seq, ev.Key))
		if ev.Key == "" {
			return
		}
		got, err := inner.ReadAll(context.Background(), ev.Key)
		if err != nil || !bytes.Equal(got, contents[ev.Key]) {
			problems = append(problems, fmt.Sprintf("%s reported durable but not in the bucket intact: %v", ev.Key, err))
		}
	}
	var pl pauseLog
	s := New(in.Bucket(), cfg)
	s.hooks.pause = pl.hook
	start := time.Now()
	var init *chunker.Init
	var werr error
	for seq := uint64(0); seq < soakSegments && werr == nil; seq++ {
		if seq%50 == 0 {
			init = fmp4Init(seq / 50)
			mu.Lock()
			contents[InitKey(cfg.Prefix, init.Seq)] = init.Data
			mu.Unlock()
			if werr = s.WriteInit(ctx, init); werr != nil {
				break
			}
			want = append(want, fmt.Sprintf("init:%d:%s", init.Seq, InitKey(cfg.Prefix, init.Seq)))
		}
		seg := segment(seq, chunker.FMP4, init, 2000+int(seq%5)*1500)
		key := SegmentKey(cfg.Prefix, chunker.FMP4, seq)
		mu.Lock()
		contents[key] = bytes.Clone(seg.Data)
		mu.Unlock()
		if werr = s.WriteSegment(ctx, seg); werr != nil {
			break
		}
		want = append(want, fmt.Sprintf("segment:%d:%s", seq, key))
	}
	err := s.Close(ctx)
	if werr != nil && err == nil {
		t.Fatalf("a write failed (%v) but Close succeeded", werr)
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	n := 0
	for _, v := range in.Injected() {
		n += v
	}
	return soakResult{stats: s.Stats(), events: events, wantEvents: want, pauses: pl.m,
		records: in.Records(), injected: n, elapsed: elapsed, err: err}
}

// checkLanded checks that every object of the soak is in inner exactly once
// with its bytes and that nothing else is.
func checkLanded(t *testing.T, inner *blob.Bucket, r soakResult, prefix string) {
	t.Helper()
	if !slices.Equal(r.events, r.wantEvents) {
		t.Errorf("events: got %d, want %d in order (first difference at %d)", len(r.events), len(r.wantEvents), firstDiff(r.events, r.wantEvents))
	}
	keys := blobtest.Keys(t, inner, prefix)
	var want []string
	for _, e := range r.wantEvents {
		_, k, _ := strings.Cut(strings.SplitN(e, ":", 2)[1], ":")
		want = append(want, k)
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("bucket holds %d objects, want %d", len(keys), len(want))
	}
	if r.stats.Durable != int64(len(r.wantEvents)) || r.stats.Failed != 0 || r.stats.InFlightBytes != 0 {
		t.Errorf("stats %+v", r.stats)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkBackoff checks every pause the sink chose against its bound
// (Initial*2^(n-1), capped at Max), that the time between two attempts of
// a key was never shorter than the pause, and that pauses grow with the
// attempt number on average. It returns the mean pause per attempt number.
func checkBackoff(t *testing.T, r soakResult, retry Retry) []time.Duration {
	t.Helper()
	byAttempt := map[int][]time.Duration{}
	total := 0
	for key, ps := range r.pauses {
		for i, p := range ps {
			bound := min(retry.InitialBackoff<<i, retry.MaxBackoff)
			if p <= 0 || p > bound {
				t.Errorf("%s: pause %d is %v, bound %v", key, i+1, p, bound)
			}
			byAttempt[i+1] = append(byAttempt[i+1], p)
			total++
		}
	}
	if int64(total) != r.stats.Retries {
		t.Errorf("%d pauses recorded, %d retries counted", total, r.stats.Retries)
	}
	// Attempts as the store saw them: the gap between two tries of a key
	// covers the pause.
	gaps := faultblob.Pauses(r.records, faultblob.OpWrite)
	for key, ps := range r.pauses {
		g := gaps[key]
		if len(g) < len(ps) {
			// Hung or failed attempts open a writer each time; fewer
			// openings than pauses would mean an attempt was skipped.
			t.Errorf("%s: %d pauses but %d attempts reached the store", key, len(ps), len(g)+1)
			continue
		}
		for i, p := range ps {
			if g[i] < p {
				t.Errorf("%s: attempt %d came %v after the previous one, pause was %v", key, i+2, g[i], p)
			}
		}
	}
	var means []time.Duration
	for n := 1; len(byAttempt[n]) > 0; n++ {
		means = append(means, faultblob.Mean(byAttempt[n]))
	}
	// Full jitter halves the bound on average: the mean of the third pause
	// is about four times the first. Require a clear growth only where
	// there are enough samples.
	if len(byAttempt[1]) >= 20 && len(byAttempt[3]) >= 20 && means[2] < 2*means[0] {
		t.Errorf("pauses do not grow: means per attempt %v", means)
	}
	return means
}

// TestFaultSoak streams hundreds of segments under each fault mix and
// checks that every object arrives exactly once, with its bytes, reported
// once and in order, that the retries back off within their bounds, and
// that no event ever precedes its object.
func TestFaultSoak(t *testing.T) {
	retry := Retry{MaxAttempts: 12, InitialBackoff: 2 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, AttemptTimeout: 150 * time.Millisecond}
	segs := func(k string) bool { return strings.Contains(k, "seg-") }
	mixes := []struct {
		name  string
		rules []faultblob.Rule
		file  bool
		check func(t *testing.T, r soakResult)
	}{
		{name: "transient-errors", rules: []faultblob.Rule{
			{Name: "reset", Ops: faultblob.OpWrite, Prob: 0.15, FirstN: 3, Code: gcerrors.Unknown},
			{Name: "500", Ops: faultblob.OpCommit, Prob: 0.1, FirstN: 2, Code: gcerrors.Internal},
			{Name: "slowdown", Ops: faultblob.OpCommit, Prob: 0.1, FirstN: 2, Code: gcerrors.ResourceExhausted},
			{Name: "timeout", Ops: faultblob.OpData, Prob: 0.1, FirstN: 2, Code: gcerrors.DeadlineExceeded},
		}},
		{name: "fail-at-close", file: true, rules: []faultblob.Rule{
			{Name: "close", Ops: faultblob.OpCommit, Prob: 0.3, FirstN: 4, Code: gcerrors.Internal},
		}},
		{name: "lost-ack", rules: []faultblob.Rule{
			{Name: "lostack", Ops: faultblob.OpCommit, Prob: 0.2, FirstN: 2, Action: faultblob.LostAck, Code: gcerrors.Unknown},
		}, check: func(t *testing.T, r soakResult) {
			// A lost acknowledgement makes the sink store identical bytes
			// again: still one object, one event.
			if r.stats.Retries == 0 {
				t.Error("no lost acknowledgement was retried")
			}
		}},
		{name: "latency", rules: []faultblob.Rule{
			{Name: "jitter", Ops: faultblob.OpCommit, Prob: 0.5, Action: faultblob.Delay, Delay: 2 * time.Millisecond},
			{Name: "spike", Ops: faultblob.OpCommit, Match: segs, Prob: 0.05, Action: faultblob.Delay, Delay: 30 * time.Millisecond},
		}, check: func(t *testing.T, r soakResult) {
			if r.stats.Retries != 0 {
				t.Errorf("latency alone caused %d retries", r.stats.Retries)
			}
		}},
		{name: "hangs", rules: []faultblob.Rule{
			{Name: "hang", Ops: faultblob.OpCommit | faultblob.OpWrite, Prob: 0.04, FirstN: 1, Action: faultblob.Hang},
		}, check: func(t *testing.T, r soakResult) {
			hangs := 0
			for _, rec := range r.records {
				if rec.Action == faultblob.Hang && rec.Rule == "hang" {
					hangs++
				}
			}
			if hangs == 0 || r.stats.AttemptTimeouts != int64(hangs) {
				t.Errorf("%d hangs injected, %d attempts timed out", hangs, r.stats.AttemptTimeouts)
			}
		}},
		{name: "everything", file: true, rules: []faultblob.Rule{
			{Name: "jitter", Ops: faultblob.AllOps, Prob: 0.3, Action: faultblob.Delay, Delay: time.Millisecond},
			{Name: "reset", Ops: faultblob.OpWrite, Prob: 0.1, FirstN: 2, Code: gcerrors.Unknown},
			{Name: "data", Ops: faultblob.OpData, Prob: 0.05, FirstN: 1, Code: gcerrors.Unknown},
			{Name: "close", Ops: faultblob.OpCommit, Prob: 0.1, FirstN: 2, Code: gcerrors.Internal},
			{Name: "lostack", Ops: faultblob.OpCommit, Prob: 0.05, FirstN: 3, Action: faultblob.LostAck},
			{Name: "hang", Ops: faultblob.OpCommit, Prob: 0.02, FirstN: 1, Action: faultblob.Hang},
		}},
	}
	for _, mix := range mixes {
		t.Run(mix.name, func(t *testing.T) {
			var inner *blob.Bucket
			if mix.file {
				var err error
				inner, err = fileblob.OpenBucket(t.TempDir(), &fileblob.Options{NoTempDir: true})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				inner = memblob.OpenBucket(nil)
			}
			defer inner.Close()
			in := faultblob.New(inner, faultblob.Config{Seed: 7, Rules: mix.rules})
			r := soak(t, inner, in, Config{Prefix: "live", Concurrency: 4, MaxInFlightBytes: 48 << 10, Retry: retry})
			if r.err != nil {
				t.Fatalf("Close: %v", r.err)
			}
			checkLanded(t, inner, r, "live/")
			means := checkBackoff(t, r, retry)
			if mix.check != nil {
				mix.check(t, r)
			}
			if r.injected == 0 {
				t.Error("no fault was injected")
			}
			if r.stats.PeakInFlightBytes > 48<<10 {
				t.Errorf("peak in flight %d over the bound", r.stats.PeakInFlightBytes)
			}
			t.Logf("%s: %d objects, %d faults injected, %d retries, %d attempt timeouts, %d blocked writes, mean pause per retry %v, %v",
				mix.name, len(r.wantEvents), r.injected, r.stats.Retries, r.stats.AttemptTimeouts, r.stats.BlockedWrites, means, r.elapsed.Round(time.Millisecond))
		})
	}
}

// TestFaultPermanent injects a permanent error (access denied) on one
// segment in the middle of a stream: events stop right before it, every
// later object is named in the UploadError, and nothing is reported that is
// not in the bucket.
func TestFaultPermanent(t *testing.T) {
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	bad := SegmentKey("p", chunker.FMP4, 150)
	in := faultblob.New(inner, faultblob.Config{Rules: []faultblob.Rule{
		{Name: "denied", Ops: faultblob.OpCommit, Match: keyIs(bad), Prob: 1, Code: gcerrors.PermissionDenied},
		{Name: "reset", Ops: faultblob.OpWrite, Prob: 0.1, FirstN: 2},
	}})
	r := soak(t, inner, in, Config{Prefix: "p", Concurrency: 4, MaxInFlightBytes: 32 << 10,
		Retry: Retry{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}})
	var ue *UploadError
	if !errors.As(r.err, &ue) || gcerrors.Code(r.err) != gcerrors.PermissionDenied {
		t.Fatalf("Close: %v", r.err)
	}
	if ue.Objects[0].Key != bad || gcerrors.Code(ue.Objects[0].Err) != gcerrors.PermissionDenied {
		t.Errorf("first object not landed %+v, want %s", ue.Objects[0], bad)
	}
	// Events stop right before the failed segment (segment 149; init 3
	// was submitted between them).
	if want := slices.Index(r.wantEvents, "segment:150:"+bad); len(r.events) != want || !slices.Equal(r.events, r.wantEvents[:want]) {
		t.Errorf("%d events, want the %d submitted before %s, in order", len(r.events), want, bad)
	}
	// Every later object is named in the error, or landed (uploads
	// already running finish) but stays unreported: nothing is lost
	// silently, and nothing reported is missing.
	named := map[string]bool{}
	for _, o := range ue.Objects {
		named[o.Key] = true
	}
	landed := 0
	for _, e := range r.wantEvents[len(r.events):] {
		k := e[strings.LastIndex(e, ":")+1:]
		if named[k] {
			continue
		}
		if ok, _ := inner.Exists(context.Background(), k); !ok {
			t.Errorf("%s neither landed nor named in the error", k)
		}
		landed++
	}
	t.Logf("permanent error on %s: %d events, %d objects named in the error, %d landed unreported, %d submitted",
		bad, len(r.events), len(ue.Objects), landed, r.stats.Submitted)
}
