package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
)

// backend wraps the in-memory gofakes3 backend: PutObject can be held per
// key until the test releases it, reports every call, and can fail.
type backend struct {
	gofakes3.Backend

	started chan string // receives the key of every PutObject call

	mu       sync.Mutex
	gates    map[string]chan struct{}
	failNext int   // fail this many more PutObject calls ...
	failErr  error // ... with this error
	puts     int
}

func (b *backend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	b.mu.Lock()
	b.puts++
	gate := b.gates[key]
	fail := b.failNext > 0
	if fail {
		b.failNext--
	}
	b.mu.Unlock()
	select {
	case b.started <- key:
	default:
		panic("backend: started channel full")
	}
	if gate != nil {
		<-gate
	}
	if fail {
		return gofakes3.PutObjectResult{}, b.failErr
	}
	return b.Backend.PutObject(bucket, key, meta, input, size, cond)
}

// hold makes PutObject for key wait until the returned func is called.
func (b *backend) hold(key string) (release func()) {
	ch := make(chan struct{})
	b.mu.Lock()
	b.gates[key] = ch
	b.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (b *backend) failPuts(n int, err error) {
	b.mu.Lock()
	b.failNext, b.failErr = n, err
	b.mu.Unlock()
}

func (b *backend) putCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

// fakeS3 is a real S3 protocol server in the test process.
type fakeS3 struct {
	srv     *httptest.Server
	backend *backend

	mu      sync.Mutex
	headers map[string]http.Header // request headers of the last PUT per URL path
	// reject, if set, may answer a PUT with an S3 error instead.
	reject func(r *http.Request) (status int, code string)
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket("media"); err != nil {
		t.Fatal(err)
	}
	be := &backend{Backend: mem, gates: map[string]chan struct{}{}, started: make(chan string, 1000)}
	f := &fakeS3{backend: be, headers: map[string]http.Header{}}
	handler := gofakes3.New(be).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.mu.Lock()
			f.headers[r.URL.Path] = r.Header.Clone()
			reject := f.reject
			f.mu.Unlock()
			if reject != nil {
				if status, code := reject(r); status != 0 {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(status)
					fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
						`<Error><Code>%s</Code><Message>injected</Message><RequestId>1</RequestId></Error>`, code)
					return
				}
			}
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	// Runs before the server closes: never leave a handler blocked.
	t.Cleanup(func() {
		be.mu.Lock()
		defer be.mu.Unlock()
		for key, ch := range be.gates {
			select {
			case <-ch:
			default:
				close(ch)
			}
			delete(be.gates, key)
		}
	})
	return f
}

// open returns a bucket on the fake server through an AWS SDK v2 client with
// path-style addressing, static credentials and no SDK-level retries (the
// sink does its own).
func (f *fakeS3) open(t *testing.T, name string) *blob.Bucket {
	t.Helper()
	return s3test.OpenBucket(t, f.srv, name, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
}

func (f *fakeS3) putHeader(key, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers["/media/"+key].Get(name)
}

// waitStarted waits until PutObject has been called for each key, in any
// order.
func (f *fakeS3) waitStarted(ctx context.Context, t *testing.T, keys ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	for len(want) > 0 {
		select {
		case k := <-f.backend.started:
			if !want[k] {
				t.Fatalf("unexpected upload of %s", k)
			}
			delete(want, k)
		case <-ctx.Done():
			t.Fatalf("uploads of %v did not start: %v", want, ctx.Err())
		}
	}
}

func TestS3Upload(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	b := f.open(t, "media")
	var rec recorder
	s := New(b, Config{Prefix: "live", OnDurable: rec.on})
	init := fmp4Init(0)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.WriteSegment(ctx, segment(seq, chunker.FMP4, init, 50_000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, b, "live/init-0.mp4"); !bytes.Equal(got, init.Data) {
		t.Error("init bytes differ")
	}
	for seq := uint64(1); seq <= 3; seq++ {
		key := fmt.Sprintf("live/seg-%06d.m4s", seq)
		if got := readObject(t, b, key); !bytes.Equal(got, payload(seq, 50_000)) {
			t.Errorf("%s: bytes differ", key)
		}
		a, err := b.Attributes(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if a.ContentType != "video/iso.segment" {
			t.Errorf("%s: Content-Type %q", key, a.ContentType)
		}
		// gofakes3 does not keep Cache-Control, so check what was sent.
		if cc := f.putHeader(key, "Cache-Control"); cc != cacheControl {
			t.Errorf("%s: Cache-Control sent %q", key, cc)
		}
	}
	if a, err := b.Attributes(ctx, "live/init-0.mp4"); err != nil || a.ContentType != "video/mp4" {
		t.Errorf("init attributes %+v, %v", a, err)
	}
	if got := len(rec.keys()); got != 4 {
		t.Errorf("%d events", got)
	}
}

// TestS3OpenURL opens the fake server by URL, as a user configures it.
func TestS3OpenURL(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	u := "s3://media?" + url.Values{
		"endpoint":                     {f.srv.URL},
		"region":                       {"us-east-1"},
		"use_path_style":               {"true"},
		"disable_https":                {"true"},
		"request_checksum_calculation": {"when_required"},
		"prefix":                       {"tenant/"},
	}.Encode()
	b, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := New(b, Config{Prefix: "cam"})
	if err := s.WriteSegment(ctx, segment(5, chunker.TS, nil, 1880)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := f.backend.HeadObject("media", "tenant/cam/seg-000005.ts")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != 1880 || obj.Metadata["Content-Type"] != "video/mp2t" {
		t.Errorf("object %d bytes, metadata %v", obj.Size, obj.Metadata)
	}
}

// TestOutOfOrderCompletion completes uploads in the order 3, 2, init, 1 and
// checks that events still come in submission order.
func TestOutOfOrderCompletion(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	b := f.open(t, "media")
	rec := recorder{ch: make(chan Event, 10)}
	s := New(b, Config{Concurrency: 4, OnDurable: rec.on})
	finished := make(chan string, 10)
	s.hooks.finished = func(key string, err error) {
		if err != nil {
			t.Errorf("%s: %v", key, err)
		}
		finished <- key
	}
	keys := []string{"init-0.mp4", "seg-000001.m4s", "seg-000002.m4s", "seg-000003.m4s"}
	release := map[string]func(){}
	for _, k := range keys {
		release[k] = f.backend.hold(k)
	}
	init := fmp4Init(0)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.WriteSegment(ctx, segment(seq, chunker.FMP4, init, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	f.waitStarted(ctx, t, keys...)

	var completion []string
	next := func() {
		t.Helper()
		select {
		case got := <-finished:
			completion = append(completion, got)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	release["seg-000003.m4s"]()
	next()
	release["seg-000002.m4s"]()
	next()
	if n := rec.count(); n != 0 {
		t.Fatalf("%d events delivered before init and segment 1 landed", n)
	}
	release["init-0.mp4"]()
	next()
	select {
	case ev := <-rec.ch:
		if ev.Kind != KindInit {
			t.Fatalf("first event %+v, want the init", ev)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("%d events delivered before segment 1 landed", n)
	}
	release["seg-000001.m4s"]()
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	next()
	if want := []string{"seg-000003.m4s", "seg-000002.m4s", "init-0.mp4", "seg-000001.m4s"}; !slices.Equal(completion, want) {
		t.Fatalf("completion order %q, want %q", completion, want)
	}
	want := []string{"init:0:init-0.mp4", "segment:1:seg-000001.m4s", "segment:2:seg-000002.m4s", "segment:3:seg-000003.m4s"}
	if got := rec.keys(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.overlap.Load() {
		t.Error("OnDurable calls overlapped")
	}
}

// stuckSink returns a sink on a bucket whose uploads of segments 1..n are
// held, after writing those n segments of size bytes each and waiting until
// their uploads reached the server.
func stuckSink(ctx context.Context, t *testing.T, f *fakeS3, cfg Config, hooks testHooks, n, size int) (*Sink, []func()) {
	t.Helper()
	var releases []func()
	var keys []string
	for seq := 1; seq <= n; seq++ {
		key := fmt.Sprintf("seg-%06d.m4s", seq)
		keys = append(keys, key)
		releases = append(releases, f.backend.hold(key))
	}
	s := New(f.open(t, "media"), cfg)
	s.hooks = hooks
	for seq := 1; seq <= n; seq++ {
		// Returns at once although no upload can finish.
		if err := s.WriteSegment(ctx, segment(uint64(seq), chunker.FMP4, nil, size)); err != nil {
			t.Fatalf("segment %d: %v", seq, err)
		}
	}
	f.waitStarted(ctx, t, keys...)
	return s, releases
}

func TestBlockPolicy(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	const size = 10_000
	blocking := make(chan struct{}, 10)
	hooks := testHooks{blocking: func() { blocking <- struct{}{} }}
	s, release := stuckSink(ctx, t, f, Config{MaxInFlightBytes: 3 * size, Concurrency: 8}, hooks, 3, size)
	if st := s.Stats(); st.InFlightBytes != 3*size || st.BlockedWrites != 0 {
		t.Fatalf("stats %+v", st)
	}

	// A write whose context is already done cannot wait: it reports that
	// it would have to.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WriteSegment(canceled, segment(9, chunker.FMP4, nil, size)); !errors.Is(err, context.Canceled) {
		t.Fatalf("write over the bound with a done context: %v", err)
	}
	<-blocking

	seg4 := segment(4, chunker.FMP4, nil, size)
	errc := make(chan error, 1)
	go func() { errc <- s.WriteSegment(ctx, seg4) }()
	select {
	case <-blocking:
	case err := <-errc:
		t.Fatalf("WriteSegment over the bound returned %v without waiting", err)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	select {
	case err := <-errc:
		t.Fatalf("WriteSegment returned %v while no room was freed", err)
	default:
	}
	release[1]()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("WriteSegment still blocked after room was freed")
	}
	for _, r := range release {
		r()
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.BlockedWrites != 2 || st.Uploaded != 4 || st.PeakInFlightBytes != 3*size || st.Overflows != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFailPolicy(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	const size = 10_000
	var rec recorder
	finished := make(chan string, 10)
	hooks := testHooks{finished: func(key string, err error) { finished <- key }}
	s, release := stuckSink(ctx, t, f, Config{MaxInFlightBytes: 3 * size, Overflow: Fail, OnDurable: rec.on}, hooks, 3, size)
	seg4 := segment(4, chunker.FMP4, nil, size)
	if err := s.WriteSegment(ctx, seg4); !errors.Is(err, ErrOverflow) {
		t.Fatalf("write over the bound: %v, want ErrOverflow", err)
	}
	if seg4.Data == nil {
		t.Fatal("rejected segment was released")
	}
	if st := s.Stats(); st.Overflows != 1 || st.Submitted != 3 {
		t.Fatalf("stats %+v", st)
	}
	// An object without data needs no room.
	if err := s.WriteInit(ctx, &chunker.Init{Seq: 1, Format: chunker.TS}); err != nil {
		t.Fatalf("empty init: %v", err)
	}
	release[0]()
	for key := ""; key != "seg-000001.m4s"; {
		select {
		case key = <-finished:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	// Room was freed: the caller may retry the rejected segment.
	if err := s.WriteSegment(ctx, seg4); err != nil {
		t.Fatalf("retry after room was freed: %v", err)
	}
	for _, r := range release {
		r()
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"segment:1:seg-000001.m4s", "segment:2:seg-000002.m4s", "segment:3:seg-000003.m4s",
		"init:1:", "segment:4:seg-000004.m4s"}
	if got := rec.keys(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if st := s.Stats(); st.Overflows != 1 || st.Uploaded != 4 || st.PeakInFlightBytes != 3*size || st.BlockedWrites != 0 {
		t.Errorf("stats %+v", st)
	}
}

// fastRetry retries quickly so that tests do not wait on backoff.
var fastRetry = Retry{MaxAttempts: 8, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}

// TestRetryInternalError fails the first puts with HTTP 500 InternalError
// from the backend; the sink retries and everything lands, in order.
func TestRetryInternalError(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	f.backend.failPuts(3, gofakes3.ErrInternal)
	var rec recorder
	s := New(f.open(t, "media"), Config{Concurrency: 1, Retry: fastRetry, OnDurable: rec.on})
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.WriteSegment(ctx, segment(seq, chunker.FMP4, nil, 5000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.backend.putCount(); n != 6 {
		t.Errorf("%d puts, want 6", n)
	}
	if st := s.Stats(); st.Retries != 3 || st.Uploaded != 3 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	want := []string{"segment:1:seg-000001.m4s", "segment:2:seg-000002.m4s", "segment:3:seg-000003.m4s"}
	if got := rec.keys(); !slices.Equal(got, want) {
		t.Errorf("events %q", got)
	}
	b := f.open(t, "media")
	if got := readObject(t, b, "seg-000001.m4s"); !bytes.Equal(got, payload(1, 5000)) {
		t.Error("bytes differ after retries")
	}
}

// TestRetrySlowDown answers the first puts with HTTP 503 SlowDown.
func TestRetrySlowDown(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	var mu sync.Mutex
	left := 2
	f.reject = func(r *http.Request) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if left == 0 {
			return 0, ""
		}
		left--
		return http.StatusServiceUnavailable, "SlowDown"
	}
	s := New(f.open(t, "media"), Config{Retry: fastRetry})
	if err := s.WriteInit(ctx, fmp4Init(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Retries != 2 || st.Uploaded != 1 {
		t.Errorf("stats %+v", st)
	}
	if got := readObject(t, f.open(t, "media"), "init-0.mp4"); !bytes.Equal(got, fmp4Init(0).Data) {
		t.Error("bytes differ")
	}
}

// TestRetryExhausted keeps failing with 500: after MaxAttempts the object
// fails and the sink reports it.
func TestRetryExhausted(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	f.backend.failPuts(1000, gofakes3.ErrInternal)
	s := New(f.open(t, "media"), Config{Retry: Retry{MaxAttempts: 3, InitialBackoff: time.Millisecond}})
	if err := s.WriteSegment(ctx, segment(1, chunker.TS, nil, 188)); err != nil {
		t.Fatal(err)
	}
	err := s.Close(ctx)
	var ue *UploadError
	if !errors.As(err, &ue) {
		t.Fatalf("Close: %v, want *UploadError", err)
	}
	if len(ue.Objects) != 1 || ue.Objects[0].Key != "seg-000001.ts" || ue.Objects[0].Attempts != 3 {
		t.Errorf("objects %+v", ue.Objects)
	}
	if n := f.backend.putCount(); n != 3 {
		t.Errorf("%d puts, want 3", n)
	}
	if st := s.Stats(); st.Retries != 2 || st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestNoSuchBucket uploads to a bucket that does not exist: a permanent
// error, not retried, and every key is named.
func TestNoSuchBucket(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	var rec recorder
	s := New(f.open(t, "missing"), Config{Prefix: "p", Retry: fastRetry, OnDurable: rec.on, Concurrency: 1})
	init := fmp4Init(0)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	var segs []*chunker.Segment
	for seq := uint64(1); seq <= 2; seq++ {
		seg := segment(seq, chunker.FMP4, init, 100)
		segs = append(segs, seg)
		if err := s.WriteSegment(ctx, seg); err != nil {
			// The sink may already have failed.
			var ue *UploadError
			if !errors.As(err, &ue) {
				t.Fatal(err)
			}
			segs = segs[:len(segs)-1]
		}
	}
	err := s.Close(ctx)
	var ue *UploadError
	if !errors.As(err, &ue) {
		t.Fatalf("Close: %v, want *UploadError", err)
	}
	if code := gcerrors.Code(err); code != gcerrors.NotFound {
		t.Errorf("cause code %v, want NotFound (%v)", code, errors.Unwrap(err))
	}
	wantKeys := []string{"p/init-0.mp4"}
	for _, seg := range segs {
		wantKeys = append(wantKeys, SegmentKey("p", chunker.FMP4, seg.Seq))
		if seg.Data != nil {
			t.Errorf("segment %d not released after failure", seg.Seq)
		}
	}
	if got := ue.Keys(); !slices.Equal(got, wantKeys) {
		t.Errorf("keys %q, want %q", got, wantKeys)
	}
	if ue.Objects[0].Attempts != 1 || ue.Objects[0].Kind != KindInit {
		t.Errorf("first object %+v", ue.Objects[0])
	}
	for _, k := range wantKeys {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("message %q does not name %s", err, k)
		}
	}
	if rec.count() != 0 || s.Stats().Retries != 0 {
		t.Errorf("events %q, stats %+v", rec.keys(), s.Stats())
	}
	if n := f.backend.putCount(); n != 0 {
		t.Errorf("backend saw %d puts", n)
	}
}

// TestAccessDenied answers 403 AccessDenied for segment 2 only. Segment 1
// stays, events stop before segment 2, later objects are not attempted, and
// later writes return the error.
func TestAccessDenied(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	f.reject = func(r *http.Request) (int, string) {
		if strings.HasSuffix(r.URL.Path, "/seg-000002.m4s") {
			return http.StatusForbidden, "AccessDenied"
		}
		return 0, ""
	}
	var rec recorder
	// One upload at a time makes "later objects" deterministic.
	s := New(f.open(t, "media"), Config{Concurrency: 1, Retry: fastRetry, OnDurable: rec.on})
	// Hold segment 1 so that all four are queued before anything fails.
	release := f.backend.hold("seg-000001.m4s")
	init := fmp4Init(0)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		if err := s.WriteSegment(ctx, segment(seq, chunker.FMP4, init, 100)); err != nil {
			t.Fatal(err)
		}
	}
	release()
	err := s.Wait(ctx)
	var ue *UploadError
	if !errors.As(err, &ue) {
		t.Fatalf("Wait: %v, want *UploadError", err)
	}
	if code := gcerrors.Code(ue); code != gcerrors.PermissionDenied {
		t.Errorf("code %v, want PermissionDenied", code)
	}
	want := []string{"seg-000002.m4s", "seg-000003.m4s", "seg-000004.m4s"}
	if got := ue.Keys(); !slices.Equal(got, want) {
		t.Fatalf("not landed %q, want %q", got, want)
	}
	if !errors.Is(ue.Objects[1].Err, ErrSkipped) || ue.Objects[1].Seq != 3 || ue.Objects[1].Attempts != 0 {
		t.Errorf("object %+v", ue.Objects[1])
	}
	if got, want := rec.keys(), []string{"init:0:init-0.mp4", "segment:1:seg-000001.m4s"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if err := s.WriteSegment(ctx, segment(5, chunker.FMP4, init, 100)); !errors.As(err, &ue) {
		t.Errorf("WriteSegment after failure: %v", err)
	}
	err = s.Close(ctx)
	if !errors.As(err, &ue) || len(ue.Objects) != 3 {
		t.Errorf("Close: %v", err)
	}
	// Nothing that landed was deleted.
	b := f.open(t, "media")
	for _, key := range []string{"init-0.mp4", "seg-000001.m4s"} {
		if ok, err := b.Exists(ctx, key); !ok || err != nil {
			t.Errorf("%s exists: %v, %v", key, ok, err)
		}
	}
	if ok, _ := b.Exists(ctx, "seg-000003.m4s"); ok {
		t.Error("object after the failure was uploaded")
	}
	if st := s.Stats(); st.Retries != 0 || st.Failed != 3 || st.Durable != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestCloseAbortsRetries: Close with a context that is done stops a
// retrying upload at once instead of waiting out its backoff.
func TestCloseAbortsRetries(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	f.backend.failPuts(1000, gofakes3.ErrInternal)
	// Backoff long enough that the test would time out if Close waited.
	s := New(f.open(t, "media"), Config{Retry: Retry{InitialBackoff: time.Hour, MaxBackoff: time.Hour}})
	if err := s.WriteSegment(ctx, segment(1, chunker.FMP4, nil, 100)); err != nil {
		t.Fatal(err)
	}
	f.waitStarted(ctx, t, "seg-000001.m4s")
	closeCtx, cancel := context.WithCancel(ctx)
	cancel()
	err := s.Close(closeCtx)
	var ue *UploadError
	if !errors.As(err, &ue) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v, want *UploadError caused by cancellation", err)
	}
	if got := ue.Keys(); !slices.Equal(got, []string{"seg-000001.m4s"}) {
		t.Errorf("keys %q", got)
	}
	if n := f.backend.putCount(); n > 2 {
		t.Errorf("%d puts after cancellation", n)
	}
}

// TestOversized accepts an object larger than MaxInFlightBytes only when
// nothing else is in flight, and holds later objects until it is uploaded.
func TestOversized(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeS3(t)
	blocking := make(chan struct{}, 10)
	releaseSmall := f.backend.hold("seg-000001.m4s")
	releaseBig := f.backend.hold("seg-000002.m4s")
	var rec recorder
	s := New(f.open(t, "media"), Config{MaxInFlightBytes: 1000, OnDurable: rec.on})
	s.hooks.blocking = func() { blocking <- struct{}{} }
	if err := s.WriteSegment(ctx, segment(1, chunker.FMP4, nil, 500)); err != nil {
		t.Fatal(err)
	}
	f.waitStarted(ctx, t, "seg-000001.m4s")

	// The big one waits for the small one.
	errc := make(chan error, 1)
	go func() { errc <- s.WriteSegment(ctx, segment(2, chunker.FMP4, nil, 5000)) }()
	select {
	case <-blocking:
	case err := <-errc:
		t.Fatalf("oversized write returned %v while another upload was in flight", err)
	}
	releaseSmall()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.waitStarted(ctx, t, "seg-000002.m4s")

	// While it is in flight, even a small one waits.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WriteSegment(canceled, segment(3, chunker.FMP4, nil, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("small write during oversized upload: %v", err)
	}
	releaseBig()
	if err := s.WriteSegment(ctx, segment(3, chunker.FMP4, nil, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.PeakInFlightBytes != 5000 || st.Uploaded != 3 {
		t.Errorf("stats %+v", st)
	}
	if got := rec.count(); got != 3 {
		t.Errorf("%d events", got)
	}
}
