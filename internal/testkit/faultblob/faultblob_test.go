package faultblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// buckets returns a memory and a file bucket to wrap.
func buckets(t *testing.T) map[string]*blob.Bucket {
	t.Helper()
	dir := t.TempDir()
	fb, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	mb := memblob.OpenBucket(nil)
	t.Cleanup(func() { fb.Close(); mb.Close() })
	return map[string]*blob.Bucket{"mem": mb, "file": fb}
}

func keys(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	var out []string
	it := b.List(nil)
	for {
		o, err := it.Next(t.Context())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o.Key)
	}
}

// TestPassThrough checks that a bucket without rules behaves like the one it
// wraps: bytes, attributes, listing, ranges, copy, delete and error codes.
func TestPassThrough(t *testing.T) {
	ctx := testCtx(t)
	for name, inner := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			in := New(inner, Config{})
			b := in.Bucket()
			opts := &blob.WriterOptions{ContentType: "video/mp4", CacheControl: "immutable", Metadata: map[string]string{"k": "v"}}
			for i := range 5 {
				if err := b.WriteAll(ctx, fmt.Sprintf("d/o%d", i), []byte(strings.Repeat("x", i+1)), opts); err != nil {
					t.Fatal(err)
				}
			}
			a, err := b.Attributes(ctx, "d/o3")
			if err != nil || a.Size != 4 || a.ContentType != "video/mp4" || a.CacheControl != "immutable" || a.Metadata["k"] != "v" {
				t.Fatalf("attributes %+v, %v", a, err)
			}
			r, err := b.NewRangeReader(ctx, "d/o4", 1, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if string(got) != "xx" || r.Size() != 5 || r.ContentType() != "video/mp4" {
				t.Errorf("range read %q size %d", got, r.Size())
			}
			if err := b.Copy(ctx, "e/copy", "d/o0", nil); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, "d/o1"); err != nil {
				t.Fatal(err)
			}
			if want := []string{"d/o0", "d/o2", "d/o3", "d/o4", "e/copy"}; !slices.Equal(keys(t, b), want) {
				t.Errorf("keys %q, want %q", keys(t, b), want)
			}
			// Paged listing with a delimiter.
			objs, next, err := b.ListPage(ctx, blob.FirstPageToken, 2, &blob.ListOptions{Delimiter: "/"})
			if err != nil || len(objs) != 2 || !objs[0].IsDir || objs[0].Key != "d/" || next != nil && len(next) == 0 {
				t.Errorf("list page %v %v %v", objs, next, err)
			}
			if _, err := b.ReadAll(ctx, "missing"); gcerrors.Code(err) != gcerrors.NotFound {
				t.Errorf("missing: %v", err)
			}
			if in.Commits("d/o0") != 1 || in.Commits("e/copy") != 1 {
				t.Errorf("commits %d %d", in.Commits("d/o0"), in.Commits("e/copy"))
			}
			if n := len(in.Injected()); n != 0 {
				t.Errorf("injected %v", in.Injected())
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			// The wrapped bucket stays open.
			if _, err := inner.Attributes(ctx, "d/o0"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFailures checks every failing action on every write stage: the
// error's code is classifiable, errors.As finds the *Error, and nothing
// (or, for a lost acknowledgement, exactly the object) is stored.
func TestFailures(t *testing.T) {
	ctx := testCtx(t)
	for name, inner := range buckets(t) {
		for _, tc := range []struct {
			op     Op
			action Action
			code   gcerrors.ErrorCode
			stored bool
		}{
			{OpWrite, Fail, gcerrors.Internal, false},
			{OpData, Fail, gcerrors.Unknown, false},
			{OpCommit, Fail, gcerrors.ResourceExhausted, false},
			{OpCommit, Fail, gcerrors.PermissionDenied, false},
			{OpCommit, LostAck, gcerrors.DeadlineExceeded, true},
		} {
			t.Run(fmt.Sprintf("%s/%v/%v/%v", name, tc.op, tc.action, tc.code), func(t *testing.T) {
				key := fmt.Sprintf("k-%v-%v-%v", tc.op, tc.action, tc.code)
				in := New(inner, Config{Rules: []Rule{{Name: "r", Ops: tc.op, Prob: 1, FirstN: 1, Action: tc.action, Code: tc.code}}})
				b := in.Bucket()
				data := bytes.Repeat([]byte("abcdefgh"), 1000)
				err := b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "video/mp4"})
				if gcerrors.Code(err) != tc.code {
					t.Fatalf("code %v, want %v (%v)", gcerrors.Code(err), tc.code, err)
				}
				var fe *Error
				if !errors.As(err, &fe) || fe.Rule != "r" || fe.Op != tc.op || fe.Stored != tc.stored {
					t.Fatalf("errors.As: %+v", fe)
				}
				exists, _ := inner.Exists(ctx, key)
				if exists != tc.stored {
					t.Fatalf("stored %v, want %v", exists, tc.stored)
				}
				if got := in.Commits(key); got != map[bool]int{false: 0, true: 1}[tc.stored] {
					t.Errorf("commits %d", got)
				}
				// The second attempt is past FirstN and succeeds, in one piece.
				if err := b.WriteAll(ctx, key, data, nil); err != nil {
					t.Fatal(err)
				}
				if got, _ := inner.ReadAll(ctx, key); !bytes.Equal(got, data) {
					t.Fatal("object differs")
				}
			})
		}
		// No temporary files are left behind by aborted writes.
		if name == "file" {
			for _, k := range keys(t, inner) {
				if !strings.HasPrefix(k, "k-") || strings.Contains(k, ".tmp") {
					t.Errorf("leftover %q", k)
				}
			}
		}
	}
}

func TestOtherOps(t *testing.T) {
	ctx := testCtx(t)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	if err := inner.WriteAll(ctx, "a", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	in := New(inner, Config{Rules: []Rule{{Ops: OpRead | OpAttributes | OpList | OpDelete | OpCopy | OpSignedURL, Prob: 1, FirstN: 1, Code: gcerrors.Internal}}})
	b := in.Bucket()
	_, e1 := b.ReadAll(ctx, "a")
	_, e2 := b.Attributes(ctx, "a")
	_, e3 := b.List(nil).Next(ctx)
	e4 := b.Copy(ctx, "b", "a", nil)
	e5 := b.Delete(ctx, "a")
	_, e6 := b.SignedURL(ctx, "a", nil)
	for i, err := range []error{e1, e2, e3, e4, e5, e6} {
		if gcerrors.Code(err) != gcerrors.Internal {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if got := in.Injected(); got[OpRead] != 1 || got[OpList] != 1 || got[OpDelete] != 1 {
		t.Errorf("injected %v", got)
	}
	if ok, _ := inner.Exists(ctx, "a"); !ok {
		t.Error("failed delete deleted")
	}
}

func TestDelayHangOutage(t *testing.T) {
	ctx := testCtx(t)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := New(inner, Config{Rules: []Rule{
		{Name: "slow", Ops: OpCommit, Match: func(k string) bool { return strings.HasPrefix(k, "slow") }, Prob: 1, Action: Delay, Delay: 20 * time.Millisecond},
		{Name: "stuck", Ops: OpCommit, Match: func(k string) bool { return strings.HasPrefix(k, "hang") }, Prob: 1, FirstN: 2, Action: Hang},
	}})
	b := in.Bucket()
	start := time.Now()
	if err := b.WriteAll(ctx, "slow", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("delayed write took %v", d)
	}

	// A hang ends with the caller's deadline, as a timed-out request.
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	err := b.WriteAll(tctx, "hang1", []byte("x"), nil)
	cancel()
	if gcerrors.Code(err) != gcerrors.DeadlineExceeded {
		t.Fatalf("hang with deadline: %v", err)
	}
	if ok, _ := inner.Exists(ctx, "hang1"); ok {
		t.Fatal("timed-out write stored")
	}
	// A released hang proceeds.
	done := make(chan error, 1)
	go func() { done <- b.WriteAll(ctx, "hang1", []byte("y"), nil) }()
	if err := in.WaitHung(ctx, 1); err != nil {
		t.Fatal(err)
	}
	in.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if in.Hung() != 0 {
		t.Error("still hung")
	}

	in.SetOutage(WriteOps, gcerrors.OK)
	if err := b.WriteAll(ctx, "down", []byte("x"), nil); gcerrors.Code(err) != gcerrors.Unknown {
		t.Fatalf("outage: %v", err)
	}
	if _, err := b.Attributes(ctx, "slow"); err != nil {
		t.Fatalf("reads work during a write outage: %v", err)
	}
	in.EndOutage()
	if err := b.WriteAll(ctx, "down", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	p := Pauses(in.Records(), OpWrite)
	if len(p["down"]) != 1 || p["down"][0] <= 0 {
		t.Errorf("pauses %v", p)
	}
}

// TestDeterministic checks that a schedule depends only on the seed and
// the calls, and that the probability is honoured.
func TestDeterministic(t *testing.T) {
	ctx := testCtx(t)
	run := func(seed uint64) []string {
		inner := memblob.OpenBucket(nil)
		defer inner.Close()
		in := New(inner, Config{Seed: seed, Rules: []Rule{{Ops: OpCommit, Prob: 0.3}}})
		var failed []string
		for i := range 1000 {
			k := fmt.Sprintf("seg-%06d", i)
			if err := in.Bucket().WriteAll(ctx, k, []byte("x"), nil); err != nil {
				failed = append(failed, k)
			}
		}
		return failed
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Error("same seed, different schedule")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same schedule")
	}
	if len(a) < 250 || len(a) > 350 {
		t.Errorf("%d of 1000 failed with probability 0.3", len(a))
	}
}

// TestFileAbortLeavesNothing checks on a file bucket that a write aborted
// at Close leaves neither the object nor a temporary file.
func TestFileAbortLeavesNothing(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	inner, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	in := New(inner, Config{Rules: []Rule{{Ops: OpCommit, Prob: 1}}})
	for i := range 20 {
		if err := in.Bucket().WriteAll(ctx, fmt.Sprintf("x/%d", i), make([]byte, 10000), nil); err == nil {
			t.Fatal("write succeeded")
		}
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}
