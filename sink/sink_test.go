package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/blobtest"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/chunker"
)

// testCtx returns a context that ends before the test binary's own timeout,
// so that a wait that never finishes fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects OnDurable events and notices overlapping calls.
type recorder struct {
	busy    atomic.Bool
	overlap atomic.Bool
	ch      chan Event // if set, receives every event too
	mu      sync.Mutex
	events  []Event
}

func (r *recorder) on(ev Event) {
	if !r.busy.CompareAndSwap(false, true) {
		r.overlap.Store(true)
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if r.ch != nil {
		r.ch <- ev
	}
	r.busy.Store(false)
}

func (r *recorder) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for _, ev := range r.events {
		keys = append(keys, fmt.Sprintf("%s:%d:%s", ev.Kind, ev.Seq, ev.Key))
	}
	return keys
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// payload returns n deterministic bytes that differ per seq.
func payload(seq uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(i)*7 + seq*13)
	}
	return b
}

func fmp4Init(seq uint64) *chunker.Init {
	return &chunker.Init{Seq: seq, Format: chunker.FMP4, Data: payload(1000+seq, 700),
		Codec: "avc1.64001f", Width: 1280, Height: 720, Timescale: 90000}
}

func segment(seq uint64, f chunker.Format, init *chunker.Init, n int) *chunker.Segment {
	return &chunker.Segment{
		Seq: seq, Format: f, Init: init, Data: payload(seq, n),
		Timescale: 90000, FirstDTS: int64(seq) * 450000, FirstPTS: int64(seq)*450000 + 3000,
		Duration: 450000, Frames: 150, Keyframes: 1, FrameRate: 30,
		Discontinuity: seq == 1, Long: seq == 2,
	}
}

func readObject(t *testing.T, b *blob.Bucket, key string) []byte {
	t.Helper()
	data, err := b.ReadAll(t.Context(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func checkAttrs(t *testing.T, b *blob.Bucket, key, contentType string) {
	t.Helper()
	a, err := b.Attributes(t.Context(), key)
	if err != nil {
		t.Fatalf("attributes %s: %v", key, err)
	}
	if a.ContentType != contentType {
		t.Errorf("%s: Content-Type %q, want %q", key, a.ContentType, contentType)
	}
	if a.CacheControl != cacheControl {
		t.Errorf("%s: Cache-Control %q, want %q", key, a.CacheControl, cacheControl)
	}
}

func TestCleanPrefixAndKeys(t *testing.T) {
	prefixes := []struct{ in, want string }{
		{"", ""},
		{"/", ""},
		{".", ""},
		{"..", ""},
		{"live", "live/"},
		{"live/", "live/"},
		{"/live//cam1/", "live/cam1/"},
		{"../../etc", "etc/"},
		{"a/../../b/./c", "b/c/"},
		{"a/b/..", "a/"},
	}
	for _, tc := range prefixes {
		if got := CleanPrefix(tc.in); got != tc.want {
			t.Errorf("CleanPrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	keys := []struct{ got, want string }{
		{InitKey("", 0), "init-0.mp4"},
		{InitKey("../x", 12), "x/init-12.mp4"},
		{SegmentKey("live", chunker.FMP4, 1), "live/seg-000001.m4s"},
		{SegmentKey("/live/", chunker.TS, 42), "live/seg-000042.ts"},
		{SegmentKey("", chunker.FMP4, 1234567), "seg-1234567.m4s"},
		{SegmentKey("", chunker.TS, 0), "seg-000000.ts"},
	}
	for _, tc := range keys {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Prefix: "../p", Retry: Retry{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}}.withDefaults()
	if c.MaxInFlightBytes != 64<<20 || c.Concurrency != 4 || c.Overflow != Block ||
		c.Retry.MaxAttempts != 8 || c.Retry.InitialBackoff != time.Second ||
		c.Retry.MaxBackoff != time.Second || c.Logger == nil || c.Prefix != "p/" {
		t.Errorf("defaults: %+v", c)
	}
	c = Config{}.withDefaults()
	if c.Retry.InitialBackoff != 100*time.Millisecond || c.Retry.MaxBackoff != 10*time.Second {
		t.Errorf("backoff defaults: %+v", c.Retry)
	}
	for p, want := range map[OverflowPolicy]string{Block: "block", Fail: "fail", Spool: "spool", 9: "OverflowPolicy(9)"} {
		if p.String() != want {
			t.Errorf("%d.String() = %q", int(p), p.String())
		}
	}
}

// TestConfigOutOfRange: negative sizes and counts take the defaults, an
// unknown Overflow or SpoolFull policy is Block, a negative MaxAttempts or
// AttemptTimeout is kept (no limit), and New keeps an unknown Overflow
// from reaching the upload path.
func TestConfigOutOfRange(t *testing.T) {
	c := Config{
		MaxInFlightBytes: -1, Concurrency: -1, SpoolMaxBytes: -1,
		Overflow: 7, SpoolFull: Spool,
		Retry: Retry{MaxAttempts: -1, InitialBackoff: -time.Second, MaxBackoff: -time.Second, AttemptTimeout: -time.Second},
	}.withDefaults()
	if c.MaxInFlightBytes != DefaultMaxInFlightBytes || c.Concurrency != DefaultConcurrency ||
		c.SpoolMaxBytes != DefaultSpoolMaxBytes || c.Overflow != Block || c.SpoolFull != Block {
		t.Errorf("out-of-range values: %+v", c)
	}
	if r := c.Retry; r.MaxAttempts != -1 || r.InitialBackoff != DefaultInitialBackoff ||
		r.MaxBackoff != DefaultMaxBackoff || r.AttemptTimeout != -time.Second {
		t.Errorf("out-of-range retry: %+v", r)
	}
	if c := (Config{Overflow: Spool}).withDefaults(); c.Retry.MaxAttempts != -1 {
		t.Errorf("Spool: MaxAttempts %d, want -1 (no limit)", c.Retry.MaxAttempts)
	}
	if s := New(nil, Config{Overflow: 7}); s.cfg.Overflow != Block {
		t.Errorf("New with Overflow 7: policy %v, want block", s.cfg.Overflow)
	}
}

// TestObjectError: an ObjectError is an error that names the object and
// wraps its cause.
func TestObjectError(t *testing.T) {
	cause := errors.New("denied")
	var err error = ObjectError{Kind: KindSegment, Seq: 4, Key: "p/seg-000004.m4s", Attempts: 3, Err: cause}
	if !errors.Is(err, cause) {
		t.Errorf("%v does not match its Err", err)
	}
	if got, want := err.Error(), `sink: segment 4 "p/seg-000004.m4s" after 3 attempt(s): denied`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	skipped := ObjectError{Kind: KindInit, Seq: 1, Key: "p/init-1.mp4", Err: ErrSkipped}
	if got, want := skipped.Error(), `sink: init 1 "p/init-1.mp4": `+ErrSkipped.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var oe ObjectError
	if !errors.As(fmt.Errorf("upload: %w", skipped), &oe) || oe.Seq != 1 || !errors.Is(oe, ErrSkipped) {
		t.Errorf("errors.As: %+v", oe)
	}
}

// TestMem uploads init and segments to a mem:// bucket and checks bytes,
// attributes, event order and metadata, stats, and that segments are
// released after upload.
func TestMem(t *testing.T) {
	ctx := testCtx(t)
	b, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var rec recorder
	s := New(b, Config{Prefix: "live/cam1", OnDurable: rec.on})
	init := fmp4Init(3)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	var segs []*chunker.Segment
	var want [][]byte
	for seq := uint64(1); seq <= 5; seq++ {
		seg := segment(seq, chunker.FMP4, init, 1000+int(seq))
		want = append(want, bytes.Clone(seg.Data))
		segs = append(segs, seg)
		if err := s.WriteSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSegment(ctx, segment(6, chunker.FMP4, init, 10)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteSegment after Close: %v, want ErrClosed", err)
	}

	if got := readObject(t, b, "live/cam1/init-3.mp4"); !bytes.Equal(got, init.Data) {
		t.Error("init bytes differ")
	}
	checkAttrs(t, b, "live/cam1/init-3.mp4", "video/mp4")
	for i, seg := range segs {
		key := fmt.Sprintf("live/cam1/seg-%06d.m4s", i+1)
		if got := readObject(t, b, key); !bytes.Equal(got, want[i]) {
			t.Errorf("%s: bytes differ", key)
		}
		checkAttrs(t, b, key, "video/iso.segment")
		if seg.Data != nil {
			t.Errorf("segment %d not released", seg.Seq)
		}
	}

	wantKeys := []string{"init:3:live/cam1/init-3.mp4"}
	for seq := 1; seq <= 5; seq++ {
		wantKeys = append(wantKeys, fmt.Sprintf("segment:%d:live/cam1/seg-%06d.m4s", seq, seq))
	}
	if got := rec.keys(); !slices.Equal(got, wantKeys) {
		t.Errorf("events\n got %q\nwant %q", got, wantKeys)
	}
	ev := rec.events[2]
	wantInfo := SegmentInfo{Seq: 2, Format: chunker.FMP4, InitSeq: 3, Timescale: 90000,
		FirstDTS: 900000, FirstPTS: 903000, Duration: 450000, Frames: 150, Keyframes: 1,
		Long: true, FrameRate: 30, Size: 1002}
	if ev.Segment != wantInfo || ev.Init != init || ev.Bytes != 1002 {
		t.Errorf("event %+v\nwant segment %+v", ev, wantInfo)
	}
	if d := ev.Segment.DurationTime(); d != 5*time.Second {
		t.Errorf("DurationTime %v", d)
	}
	if rec.events[0].Init != init || rec.events[0].Bytes != 700 {
		t.Errorf("init event %+v", rec.events[0])
	}

	st := s.Stats()
	wantBytes := int64(700 + 1001 + 1002 + 1003 + 1004 + 1005)
	if st.Submitted != 6 || st.Uploaded != 6 || st.Durable != 6 || st.UploadedBytes != wantBytes ||
		st.DurableBytes != wantBytes || st.InFlightBytes != 0 || st.PeakInFlightBytes <= 0 ||
		st.Retries != 0 || st.Failed != 0 || !st.HaveDurableSegment || st.LastDurableSegment != 5 {
		t.Errorf("stats %+v", st)
	}
	if seq, ok := s.Durable(); !ok || seq != 5 {
		t.Errorf("Durable() = %d, %v", seq, ok)
	}
	if s.workers != 0 {
		t.Errorf("%d workers still running after Close", s.workers)
	}
}

// TestFileTS writes MPEG-TS output to a directory: the init section has no
// data, so no object is written for it, but it is still reported first.
func TestFileTS(t *testing.T) {
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "new", "dir")
	b, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var rec recorder
	s := New(b, Config{Prefix: "rec", OnDurable: rec.on, Concurrency: 2})
	init := &chunker.Init{Seq: 0, Format: chunker.TS, Codec: "avc1.42c01e"}
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(7); seq <= 9; seq++ {
		if err := s.WriteSegment(ctx, segment(seq, chunker.TS, init, 188*20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.keys(), []string{"init:0:", "segment:7:rec/seg-000007.ts",
		"segment:8:rec/seg-000008.ts", "segment:9:rec/seg-000009.ts"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(7); seq <= 9; seq++ {
		name := filepath.Join(dir, "rec", fmt.Sprintf("seg-%06d.ts", seq))
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload(seq, 188*20)) {
			t.Errorf("%s: bytes differ", name)
		}
		// A directory holds plain files (Content-Type follows from the
		// name): no attribute files beside them.
		if _, err := os.Stat(name + ".attrs"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s.attrs: %v, want no attribute file", name, err)
		}
	}
	if keys, want := blobtest.Keys(t, b, ""), []string{"rec/seg-000007.ts", "rec/seg-000008.ts", "rec/seg-000009.ts"}; !slices.Equal(keys, want) {
		t.Errorf("objects %q, want %q", keys, want)
	}
	if st := s.Stats(); st.Uploaded != 3 || st.Durable != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestOpen(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	// A file URL keeps its ?prefix= and gets its directory created.
	b, err := Open(ctx, "file://"+filepath.ToSlash(dir)+"/made?prefix=tenant/")
	if err != nil {
		t.Fatal(err)
	}
	s := New(b, Config{Prefix: "live"})
	if err := s.WriteSegment(ctx, segment(1, chunker.FMP4, nil, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "made", "tenant", "live", "seg-000001.m4s")); err != nil || !bytes.Equal(got, payload(1, 10)) {
		t.Errorf("prefixed file: %v", err)
	}

	// A relative path is a directory too.
	t.Chdir(dir)
	b, err = Open(ctx, "rel/out")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, "x", []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := os.Stat(filepath.Join(dir, "rel", "out", "x")); err != nil {
		t.Error(err)
	}

	if _, err := Open(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty: %v", err)
	}
	if _, err := Open(ctx, "nosuchscheme://bucket"); err == nil {
		t.Error("unknown scheme opened")
	}
	for _, tc := range []struct {
		in     string
		scheme string
		ok     bool
	}{
		{"s3://b", "s3", true},
		{"GS://b", "gs", true},
		{"azblob://c", "azblob", true},
		{"/abs/path", "", false},
		{"C:/x", "", false},
		{"a://x", "", false},
		{"1x://x", "", false},
		{"dir/with://colon", "", false},
	} {
		scheme, ok := urlScheme(tc.in)
		if scheme != tc.scheme || ok != tc.ok {
			t.Errorf("urlScheme(%q) = %q, %v", tc.in, scheme, ok)
		}
	}
}

func TestInvalid(t *testing.T) {
	ctx := testCtx(t)
	b, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := New(b, Config{})
	if err := s.WriteInit(ctx, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil init: %v", err)
	}
	if err := s.WriteSegment(ctx, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil segment: %v", err)
	}
	seg := segment(1, chunker.Format(7), nil, 10)
	if err := s.WriteSegment(ctx, seg); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown format: %v", err)
	}
	if seg.Data == nil {
		t.Error("rejected segment was released")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestManyConcurrent runs many parallel uploads and checks that events keep
// submission order, never overlap, and that Wait is a flush.
func TestManyConcurrent(t *testing.T) {
	ctx := testCtx(t)
	b, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var rec recorder
	s := New(b, Config{Concurrency: 8, MaxInFlightBytes: 64 << 10, OnDurable: rec.on})
	var want []string
	init := fmp4Init(0)
	for seq := uint64(0); seq < 200; seq++ {
		if seq%50 == 0 {
			init = fmp4Init(seq / 50)
			if err := s.WriteInit(ctx, init); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("init:%d:%s", init.Seq, InitKey("", init.Seq)))
		}
		if err := s.WriteSegment(ctx, segment(seq, chunker.FMP4, init, 1+int(seq%7)*1000)); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("segment:%d:%s", seq, SegmentKey("", chunker.FMP4, seq)))
		if seq == 99 {
			if err := s.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if n := rec.count(); n != 102 {
				t.Fatalf("after Wait: %d events, want 102", n)
			}
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.keys(); !slices.Equal(got, want) {
		t.Errorf("events out of order or missing: got %d, want %d", len(got), len(want))
	}
	if rec.overlap.Load() {
		t.Error("OnDurable calls overlapped")
	}
	if st := s.Stats(); st.PeakInFlightBytes > 64<<10 {
		t.Errorf("peak in flight %d > bound", st.PeakInFlightBytes)
	}
}
