package sink

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
)

// levelCounter is a slog handler that counts records at Error level.
type levelCounter struct {
	errors atomic.Int64
	msgs   atomic.Value // last error message
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
		h.msgs.Store(r.Message)
	}
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func spoolFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func spoolCfg(dir string, rec *recorder, lc *levelCounter) Config {
	return Config{
		Prefix: "live", Overflow: Spool, SpoolDir: dir, MaxInFlightBytes: 16 << 10, Concurrency: 2,
		Retry:     Retry{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		OnDurable: rec.on, Logger: slog.New(lc),
	}
}

func TestSpoolFileFormat(t *testing.T) {
	dir := t.TempDir()
	seg := segment(4, chunker.FMP4, fmp4Init(2), 5000)
	sum := md5sum(seg.Data)
	hdr := &spoolHeader{Kind: KindSegment, Seq: 4, Key: "p/seg-000004.m4s", ContentType: contentTypeM4S,
		Size: 5000, MD5: sum, Accepted: time.Unix(100, 5).UTC(), Init: seg.Init, Segment: SegmentInfo{Seq: 4, Frames: 150}}
	path, off, err := writeSpool(dir, 7, hdr, seg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "00000000000000000007.spool" || len(spoolFiles(t, dir, ".tmp")) != 0 {
		t.Fatalf("path %s", path)
	}
	got, goff, err := readSpoolHeader(path)
	if err != nil || goff != off || got.Key != hdr.Key || !got.Accepted.Equal(hdr.Accepted) ||
		!bytes.Equal(got.Init.Data, seg.Init.Data) || got.Segment.Frames != 150 {
		t.Fatalf("read back %+v at %d (%d): %v", got, goff, off, err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Equal(raw[off:], seg.Data) {
		t.Fatal("payload differs")
	}
	// A header naming a key the sink would never write is refused.
	for _, key := range []string{"../../etc/seg-000004.m4s", "/abs/seg-000004.m4s", "a//seg-000004.m4s",
		"p/seg-000005.m4s", "p/init-4.mp4", "p\\x/seg-000004.m4s", "seg-000004.ts", ""} {
		h := *hdr
		h.Key = key
		p, _, err := writeSpool(dir, 8, &h, seg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := readSpoolHeader(p); err == nil {
			t.Errorf("spool file for key %q accepted", key)
		}
		os.Remove(p)
	}
	// Truncated, flipped and foreign files are refused.
	for name, data := range map[string][]byte{
		"truncated": raw[:len(raw)-1],
		"flipped":   append(append([]byte{}, raw[:len(raw)-1]...), raw[len(raw)-1]^1),
		"foreign":   []byte("hello, world"),
		"empty":     nil,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		if _, _, err := readSpoolHeader(p); err == nil {
			t.Errorf("%s spool file accepted", name)
		}
	}
}

func md5sum(b []byte) []byte {
	s := make([]byte, 0, 16)
	h := blobMD5(b)
	return append(s, h[:]...)
}

// TestSpoolOutage keeps the store unreachable while 200 segments arrive:
// once the in-flight bound is reached every segment goes to the disk spool
// without blocking the writer, its memory is released at once, and when
// the store returns everything drains in order.
func TestSpoolOutage(t *testing.T) {
	ctx := testCtx(t)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := faultblob.New(inner, faultblob.Config{})
	in.SetOutage(faultblob.WriteOps, gcerrors.Unknown)
	dir := filepath.Join(t.TempDir(), "spool")
	var rec recorder
	var lc levelCounter
	s := New(in.Bucket(), spoolCfg(dir, &rec, &lc))
	init := fmp4Init(0)
	if err := s.WriteInit(ctx, init); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{InitKey("live", 0): init.Data}
	released := 0
	for seq := uint64(0); seq < 200; seq++ {
		seg := segment(seq, chunker.FMP4, init, 3000)
		want[SegmentKey("live", chunker.FMP4, seq)] = bytes.Clone(seg.Data)
		if err := s.WriteSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
		if seg.Data == nil {
			released++
		}
	}
	st := s.Stats()
	if st.BlockedWrites != 0 || st.Spooled < 190 || int64(released) != st.Spooled ||
		st.PeakInFlightBytes > 16<<10 || st.SpoolBytes != st.Spooled*3000 {
		t.Fatalf("during the outage: %d released, stats %+v", released, st)
	}
	if n := len(spoolFiles(t, dir, spoolExt)); int64(n) != st.Spooled {
		t.Fatalf("%d spool files for %d spooled", n, st.Spooled)
	}
	if rec.count() != 0 {
		t.Fatal("events during the outage")
	}
	in.EndOutage()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkAll(t, inner, want)
	if got := len(rec.events); got != 201 {
		t.Fatalf("%d events", got)
	}
	for i, ev := range rec.events[1:] {
		if ev.Seq != uint64(i) || ev.Kind != KindSegment || ev.Recovered || ev.Accepted.IsZero() {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	st = s.Stats()
	if len(spoolFiles(t, dir, "")) != 0 || st.SpoolBytes != 0 || st.Durable != 201 || st.Retries == 0 || lc.errors.Load() != 0 {
		t.Errorf("after draining: files %v, stats %+v, %d errors logged", spoolFiles(t, dir, ""), st, lc.errors.Load())
	}
	t.Logf("outage: %d of 200 segments spooled (peak %d bytes on disk, %d in memory), %d retries, drained in order",
		st.Spooled, st.PeakSpoolBytes, st.PeakInFlightBytes, st.Retries)
}

// checkAll checks that b holds exactly want.
func checkAll(t *testing.T, b *blob.Bucket, want map[string][]byte) {
	t.Helper()
	for k, v := range want {
		got, err := b.ReadAll(context.Background(), k)
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s: %v (%d bytes, want %d)", k, err, len(got), len(v))
		}
	}
}

// TestSpoolRestart simulates a process that dies during an outage: the
// objects in memory are lost (never reported), the spooled ones survive.
// A new Sink on the same spool uploads them first, in order, re-creates the
// init section they need, skips an object that had landed before the
// crash, marks discontinuities where segments are missing, sets a damaged
// file aside loudly, and then takes new segments.
func TestSpoolRestart(t *testing.T) {
	ctx := testCtx(t)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	dir := t.TempDir()

	// Run 1: the store is down; init 0 and the first segments stay in
	// memory, the rest spill.
	in1 := faultblob.New(inner, faultblob.Config{})
	in1.SetOutage(faultblob.WriteOps, gcerrors.Unknown)
	var rec1 recorder
	var lc levelCounter
	s1 := New(in1.Bucket(), spoolCfg(dir, &rec1, &lc))
	init0 := fmp4Init(0)
	if err := s1.WriteInit(ctx, init0); err != nil {
		t.Fatal(err)
	}
	contents := map[uint64][]byte{}
	var spooled []uint64
	for seq := uint64(0); seq < 60; seq++ {
		seg := segment(seq, chunker.FMP4, init0, 3000)
		contents[seq] = bytes.Clone(seg.Data)
		if err := s1.WriteSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
		if seg.Data == nil {
			spooled = append(spooled, seq)
		}
	}
	// The process dies: nothing more reaches the store.
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if err := s1.Close(dead); err == nil {
		t.Fatal("Close succeeded during the outage")
	}
	if rec1.count() != 0 {
		t.Fatal("events during the outage")
	}
	files := spoolFiles(t, dir, spoolExt)
	if len(files) != len(spooled) || len(spooled) < 50 {
		t.Fatalf("%d spool files, %d segments spooled", len(files), len(spooled))
	}
	// A crash also leaves a temporary file, damages one spool file, and
	// had uploaded one spooled object without removing its file.
	os.WriteFile(spoolName(dir, 1000, spoolTmpExt), []byte("partial"), 0o600)
	damaged := spooled[20]
	raw, _ := os.ReadFile(files[20])
	raw[len(raw)-1] ^= 0xff
	os.WriteFile(files[20], raw, 0o600)
	already := spooled[10]
	if err := inner.WriteAll(ctx, SegmentKey("live", chunker.FMP4, already), contents[already], nil); err != nil {
		t.Fatal(err)
	}

	// Run 2: the store is back.
	in2 := faultblob.New(inner, faultblob.Config{})
	var rec2 recorder
	s2 := New(in2.Bucket(), spoolCfg(dir, &rec2, &lc))
	rcv := s2.Recovered()
	var wantRecovered []string
	wantRecovered = append(wantRecovered, "init:0:live/init-0.mp4")
	for _, seq := range spooled {
		if seq != damaged {
			wantRecovered = append(wantRecovered, fmt.Sprintf("segment:%d:%s", seq, SegmentKey("live", chunker.FMP4, seq)))
		}
	}
	var gotRecovered []string
	var discs []uint64
	for _, ev := range rcv {
		gotRecovered = append(gotRecovered, fmt.Sprintf("%s:%d:%s", ev.Kind, ev.Seq, ev.Key))
		if ev.Segment.Discontinuity {
			discs = append(discs, ev.Seq)
		}
		if !ev.Recovered || !ev.Spooled || ev.Accepted.IsZero() {
			t.Errorf("recovered event %+v", ev)
		}
	}
	if !slices.Equal(gotRecovered, wantRecovered) {
		t.Fatalf("recovered\n %q\nwant\n %q", gotRecovered, wantRecovered)
	}
	if want := []uint64{spooled[0], damaged + 1}; !slices.Equal(discs, want) {
		t.Errorf("discontinuities at %v, want %v", discs, want)
	}
	if st := s2.Stats(); st.SpoolErrors != 1 || st.Recovered != int64(len(wantRecovered)) || lc.errors.Load() == 0 {
		t.Errorf("stats %+v, %d errors logged", st, lc.errors.Load())
	}
	// New segments follow the recovered ones.
	init1 := fmp4Init(1)
	if err := s2.WriteInit(ctx, init1); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(60); seq < 80; seq++ {
		seg := segment(seq, chunker.FMP4, init1, 3000)
		contents[seq] = bytes.Clone(seg.Data)
		if err := s2.WriteSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(wantRecovered)
	want = append(want, "init:1:live/init-1.mp4")
	for seq := uint64(60); seq < 80; seq++ {
		want = append(want, fmt.Sprintf("segment:%d:%s", seq, SegmentKey("live", chunker.FMP4, seq)))
	}
	if got := rec2.keys(); !slices.Equal(got, want) {
		t.Errorf("events after restart\n %q\nwant\n %q", got, want)
	}
	wantObjs := map[string][]byte{InitKey("live", 0): init0.Data, InitKey("live", 1): init1.Data}
	for seq, data := range contents {
		if seq >= 60 || (slices.Contains(spooled, seq) && seq != damaged) {
			wantObjs[SegmentKey("live", chunker.FMP4, seq)] = data
		}
	}
	checkAll(t, inner, wantObjs)
	// What was only in memory is gone, and was never reported durable.
	for seq := uint64(0); seq < spooled[0]; seq++ {
		if ok, _ := inner.Exists(ctx, SegmentKey("live", chunker.FMP4, seq)); ok {
			t.Errorf("segment %d was only in memory but exists", seq)
		}
	}
	if st := s2.Stats(); st.InFlightBytes != 0 || st.SpoolBytes != 0 || st.Durable != int64(len(want)) || st.Failed != 0 {
		t.Errorf("stats after the restart %+v", st)
	}
	if n := in2.Commits(SegmentKey("live", chunker.FMP4, already)); n != 0 {
		t.Errorf("the object that had landed was written %d more times", n)
	}
	if len(spoolFiles(t, dir, spoolExt)) != 0 || len(spoolFiles(t, dir, spoolTmpExt)) != 0 || len(spoolFiles(t, dir, spoolBadExt)) != 1 {
		t.Errorf("spool left: %v", spoolFiles(t, dir, ""))
	}
	t.Logf("restart: %d in memory lost unreported, %d recovered from the spool (1 damaged, set aside), %d new", spooled[0], len(rcv)-1, 20)
}

// TestSpoolConflict checks that a recovered object never overwrites other
// bytes under its key.
func TestSpoolConflict(t *testing.T) {
	ctx := testCtx(t)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	dir := t.TempDir()
	seg := segment(3, chunker.TS, nil, 1880)
	key := SegmentKey("live", chunker.TS, 3)
	if _, _, err := writeSpool(dir, 0, &spoolHeader{Kind: KindSegment, Seq: 3, Key: key, ContentType: contentTypeTS,
		Size: int64(len(seg.Data)), MD5: md5sum(seg.Data), Segment: SegmentInfo{Seq: 3, Format: chunker.TS}}, seg.Data); err != nil {
		t.Fatal(err)
	}
	if err := inner.WriteAll(ctx, key, []byte("someone else's"), nil); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	var lc levelCounter
	s := New(inner, spoolCfg(dir, &rec, &lc))
	err := s.Close(ctx)
	if !errors.Is(err, ErrSpoolConflict) {
		t.Fatalf("Close: %v", err)
	}
	// A conflict does not go away: it is not retried.
	var ue *UploadError
	if !errors.As(err, &ue) || len(ue.Objects) != 1 || ue.Objects[0].Attempts != 1 {
		t.Errorf("Close: %v, want one object tried once", err)
	}
	if got, _ := inner.ReadAll(ctx, key); string(got) != "someone else's" {
		t.Error("overwritten")
	}
	if len(spoolFiles(t, dir, spoolExt)) != 1 || rec.count() != 0 {
		t.Error("the spool lost its copy, or the object was reported")
	}
}

// TestSpoolFull fills the spool during an outage and checks both fallback
// policies: Fail returns an error wrapping ErrOverflow and ErrSpoolFull
// without taking the segment; Block waits for room. Both log at Error
// level and count in Stats.SpoolFull.
func TestSpoolFull(t *testing.T) {
	for _, policy := range []OverflowPolicy{Fail, Block} {
		t.Run(policy.String(), func(t *testing.T) {
			ctx := testCtx(t)
			inner := memblob.OpenBucket(nil)
			defer inner.Close()
			in := faultblob.New(inner, faultblob.Config{})
			in.SetOutage(faultblob.WriteOps, gcerrors.Unknown)
			var rec recorder
			var lc levelCounter
			cfg := spoolCfg(t.TempDir(), &rec, &lc)
			cfg.MaxInFlightBytes = 6000
			cfg.SpoolMaxBytes = 10000
			cfg.SpoolFull = policy
			s := New(in.Bucket(), cfg)
			var blocked atomic.Int64
			s.hooks.blocking = func() {
				blocked.Add(1)
				in.EndOutage() // the store comes back while the writer waits
			}
			want := map[string][]byte{}
			var rejected *chunker.Segment
			for seq := uint64(0); seq < 6; seq++ {
				seg := segment(seq, chunker.TS, nil, 3000)
				data := bytes.Clone(seg.Data)
				err := s.WriteSegment(ctx, seg)
				if err != nil {
					if !errors.Is(err, ErrOverflow) || !errors.Is(err, ErrSpoolFull) || seg.Data == nil {
						t.Fatalf("segment %d: %v", seq, err)
					}
					rejected = seg
					in.EndOutage()
					continue
				}
				want[SegmentKey("live", chunker.TS, seq)] = data
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			checkAll(t, inner, want)
			st := s.Stats()
			// 2 segments in memory, 3 in the spool, the 6th finds both full.
			if st.SpoolFull != 1 || st.Spooled != 3 || lc.errors.Load() != 1 {
				t.Errorf("stats %+v, %d errors logged", st, lc.errors.Load())
			}
			switch policy {
			case Fail:
				if rejected == nil || rejected.Seq != 5 || st.Overflows != 1 || blocked.Load() != 0 {
					t.Errorf("rejected %v, stats %+v", rejected, st)
				}
			case Block:
				if rejected != nil || blocked.Load() != 1 || st.BlockedWrites != 1 || st.Durable != 6 {
					t.Errorf("blocked %d, stats %+v", blocked.Load(), st)
				}
			}
		})
	}
}

// TestSpoolUnusable checks that a Spool policy without a usable directory
// is reported at Error level and falls back to the SpoolFull policy.
func TestSpoolUnusable(t *testing.T) {
	ctx := testCtx(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, nil, 0o600)
	for name, dir := range map[string]string{"none": "", "file": file} {
		t.Run(name, func(t *testing.T) {
			var lc levelCounter
			var rec recorder
			cfg := spoolCfg(dir, &rec, &lc)
			cfg.MaxInFlightBytes = 1000
			cfg.SpoolFull = Fail
			b := memblob.OpenBucket(nil)
			defer b.Close()
			s := New(b, cfg)
			if lc.errors.Load() != 1 {
				t.Errorf("%d errors logged at New", lc.errors.Load())
			}
			s.mem.TryAcquire(1000) // the in-flight bound is reached
			err := s.WriteSegment(ctx, segment(0, chunker.TS, nil, 500))
			if !errors.Is(err, ErrSpoolFull) || !errors.Is(err, ErrOverflow) {
				t.Errorf("write: %v", err)
			}
			s.mem.Release(1000)
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(fmt.Sprint(lc.msgs.Load()), "spool") {
				t.Errorf("last error: %v", lc.msgs.Load())
			}
		})
	}
}

// TestOpenRepairsKilledWrite reproduces what a process killed inside the
// file driver's Close leaves behind, an empty attribute file, which makes
// the object unreadable and unlistable, and checks that Open repairs it.
// (Open itself writes no attribute files, but a directory may have been
// written with the file driver's default options.)
func TestOpenRepairsKilledWrite(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	for _, open := range []func() (*blob.Bucket, error){
		func() (*blob.Bucket, error) { return Open(ctx, filepath.Join(dir, "d")) },
		func() (*blob.Bucket, error) { return Open(ctx, "file://"+filepath.ToSlash(dir)+"/d") },
	} {
		b, err := open()
		if err != nil {
			t.Fatal(err)
		}
		fb, err := fileblob.OpenBucket(filepath.Join(dir, "d"), nil) // with attribute files
		if err != nil {
			t.Fatal(err)
		}
		if err := fb.WriteAll(ctx, "live/index.m3u8", []byte("#EXTM3U\n"), &blob.WriterOptions{ContentType: "application/vnd.apple.mpegurl"}); err != nil {
			t.Fatal(err)
		}
		fb.Close()
		side := filepath.Join(dir, "d", "live", "index.m3u8.attrs")
		if err := os.Truncate(side, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReadAll(ctx, "live/index.m3u8"); err == nil {
			t.Fatal("the file driver reads an object with an empty attribute file; the repair is not needed any more")
		}
		b.Close()

		b, err = open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.ReadAll(ctx, "live/index.m3u8")
		if err != nil || string(got) != "#EXTM3U\n" {
			t.Fatalf("after Open: %q, %v", got, err)
		}
		if _, err := b.List(nil).Next(ctx); err != nil {
			t.Fatalf("list after Open: %v", err)
		}
		b.Close()
	}
	if n, err := RepairDir(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("missing dir: %d, %v", n, err)
	}
}

// FuzzSpoolHeader feeds damaged spool files to the decoder that recovery
// uses: it must refuse them with an error, never panic, and accept only a
// file whose bytes match the header. Its seeds run with every go test;
// coverage-guided fuzzing of this package is impractical (see
// TestSpoolDecodeMutations).
func FuzzSpoolHeader(f *testing.F) {
	dir := f.TempDir()
	seg := segment(4, chunker.FMP4, fmp4Init(2), 700)
	path, _, err := writeSpool(dir, 1, &spoolHeader{Kind: KindSegment, Seq: 4, Key: "p/seg-000004.m4s", ContentType: contentTypeM4S,
		Size: 700, MD5: md5sum(seg.Data), Init: seg.Init, Segment: SegmentInfo{Seq: 4}}, seg.Data)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:12])
	f.Add([]byte(spoolMagic + "\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hdr, off, err := decodeSpool(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if off+hdr.Size != int64(len(data)) || !bytes.Equal(md5sum(data[off:]), hdr.MD5) ||
			strings.Contains(hdr.Key, "..") || strings.HasPrefix(hdr.Key, "/") {
			t.Fatalf("accepted a bad spool file: %+v at %d", hdr, off)
		}
	})
}

// TestSpoolDecodeMutations damages a valid spool file in thousands of
// random ways (byte flips, truncations, insertions, header length changes)
// and checks that the decoder never panics and refuses every damaged
// file (the header has a CRC, the bytes an MD5). It explores like FuzzSpoolHeader but without
// coverage guidance, which is impractical in this package: coverage
// instrumentation of the cloud SDKs it links makes -fuzz stall at a few
// hundred executions.
func TestSpoolDecodeMutations(t *testing.T) {
	dir := t.TempDir()
	seg := segment(9, chunker.TS, nil, 600)
	path, _, err := writeSpool(dir, 1, &spoolHeader{Kind: KindSegment, Seq: 9, Key: "a/b/seg-000009.ts", ContentType: contentTypeTS,
		Size: 600, MD5: md5sum(seg.Data), Segment: SegmentInfo{Seq: 9, Format: chunker.TS}}, seg.Data)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := range 20000 {
		b := bytes.Clone(raw)
		for range 1 + rng.IntN(3) {
			switch rng.IntN(4) {
			case 0:
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			case 1:
				b = b[:rng.IntN(len(b))]
			case 2:
				at := rng.IntN(len(b) + 1)
				b = append(b[:at:at], append([]byte{byte(rng.IntN(256))}, b[at:]...)...)
			case 3:
				if len(b) >= 16 && rng.IntN(2) == 0 {
					binary.BigEndian.PutUint32(b[12:], rng.Uint32())
					break
				}
				if len(b) >= 12 {
					binary.BigEndian.PutUint32(b[8:], rng.Uint32()>>uint(rng.IntN(32)))
				}
			}
			if len(b) == 0 {
				break
			}
		}
		hdr, off, err := decodeSpool(bytes.NewReader(b), int64(len(b)))
		if err != nil || bytes.Equal(b, raw) {
			continue
		}
		accepted++
		if off+hdr.Size != int64(len(b)) || !bytes.Equal(md5sum(b[off:]), hdr.MD5) || !validSpoolKey(&hdr) {
			t.Fatalf("mutation %d accepted a bad file: %+v", i, hdr)
		}
	}
	if accepted != 0 {
		t.Errorf("%d damaged files accepted", accepted)
	}
}
