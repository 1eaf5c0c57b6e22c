// Package faultblob wraps a [blob.Bucket] in a driver that injects faults:
// transient and permanent errors, latency, hangs, writes that fail only when
// they are closed, and acknowledgements lost after the object was stored.
// Everything it does not fail is passed to the wrapped bucket through its
// public API, so the semantics of the real store (memory, files, S3, ...)
// stay intact.
//
// Faults are described by [Rule]s. Whether a rule hits a call is decided by
// hashing the seed, the rule, the operation, the key and the number of the
// call for that key, so a schedule is the same on every run whatever the
// goroutines' interleaving. Injected errors are [*Error]s carrying a
// gcerrors code: gcerrors.Code classifies them like a real driver's errors,
// and errors.As finds the *Error behind the bucket's wrapping.
//
// An [Injector] also records every call (with its time, so tests can
// measure retry pauses), counts the objects stored per key, can make the
// store unreachable as a whole ([Injector.SetOutage]), and releases hung
// calls on demand ([Injector.Release]).
package faultblob

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// Op is a set of bucket operations.
type Op uint16

// Operations a Rule can target.
const (
	// OpWrite is the opening of a writer (the start of an upload).
	OpWrite Op = 1 << iota
	// OpData is one Write call on a writer (bytes sent to the store).
	OpData
	// OpCommit is the closing of a writer: the moment the object appears.
	OpCommit
	// OpRead is the opening of a reader.
	OpRead
	// OpAttributes reads an object's attributes.
	OpAttributes
	// OpList lists one page of objects.
	OpList
	// OpDelete deletes an object.
	OpDelete
	// OpCopy copies an object (the key is the destination).
	OpCopy
	// OpSignedURL signs a URL.
	OpSignedURL

	// AllOps is every operation.
	AllOps = OpWrite | OpData | OpCommit | OpRead | OpAttributes | OpList | OpDelete | OpCopy | OpSignedURL
	// WriteOps are the operations of an upload.
	WriteOps = OpWrite | OpData | OpCommit
)

var opNames = []string{"write", "data", "commit", "read", "attributes", "list", "delete", "copy", "signedurl"}

// String returns the names of the operations in o, joined with "|".
func (o Op) String() string {
	var names []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Action is what a Rule does to a call it hits.
type Action int

const (
	// Fail makes the call return an [*Error] with the rule's Code. On
	// OpCommit the bytes were accepted but nothing is stored (a write that
	// fails only at Close); on OpData half of the bytes reach the store's
	// writer, which is then aborted.
	Fail Action = iota
	// Delay waits for the rule's Delay (or until the call's context ends),
	// then lets the call proceed. Delays of several rules add up.
	Delay
	// Hang blocks the call until its context ends (the call then fails
	// with the context's error) or until [Injector.Release] (the call then
	// proceeds).
	Hang
	// LostAck, on OpCommit, stores the object and then returns an
	// [*Error] with the rule's Code, as when the store's acknowledgement is
	// lost on the way back. On OpWrite and OpData, which store nothing, it
	// acts like Fail; on the other operations the operation runs (a copy
	// or delete takes effect) and then the error is returned.
	LostAck
)

// String returns "fail", "delay", "hang" or "lostack".
func (a Action) String() string {
	switch a {
	case Fail:
		return "fail"
	case Delay:
		return "delay"
	case Hang:
		return "hang"
	case LostAck:
		return "lostack"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Rule injects one kind of fault.
type Rule struct {
	// Name identifies the rule in records and errors. Default "rule<i>".
	Name string
	// Ops are the operations the rule applies to.
	Ops Op
	// Match selects keys (nil: every key). For OpList the key is the
	// list prefix.
	Match func(key string) bool
	// Prob is the probability that a matching call is hit, in [0, 1].
	Prob float64
	// FirstN limits the rule to the first FirstN matching calls of each key
	// and operation (0: no limit). With Prob 1 it scripts "the first N
	// attempts fail".
	FirstN int
	// Action is what happens to a hit call.
	Action Action
	// Code is the gcerrors code of the injected error (Fail, LostAck).
	// Default gcerrors.Unknown, which callers treat as transient, like a
	// reset connection.
	Code gcerrors.ErrorCode
	// Delay is the latency added by a Delay action.
	Delay time.Duration
}

// Config configures an Injector. The zero value injects nothing.
type Config struct {
	// Seed varies the schedule of probabilistic rules.
	Seed uint64
	// Rules are evaluated for every call, in order: every hitting Delay
	// rule adds its latency, and the first hitting rule of another action
	// decides the call's fate.
	Rules []Rule
	// AfterCommit, if set, is called after an object was stored in the
	// wrapped bucket, before the writer's Close returns. It runs on the
	// uploading goroutine.
	AfterCommit func(key string)
	// Now returns the time recorded for calls. Default time.Now.
	Now func() time.Time
}

// Error is an injected failure.
type Error struct {
	// Op is the operation that failed.
	Op Op
	// Key is the object key (the prefix for OpList).
	Key string
	// Code classifies the failure (gcerrors.Code returns it).
	Code gcerrors.ErrorCode
	// Rule is the name of the rule that injected it, or "outage".
	Rule string
	// Stored is set when the object was stored before the error
	// (LostAck).
	Stored bool
}

// Error describes the injected failure.
func (e *Error) Error() string {
	s := fmt.Sprintf("faultblob: injected %v on %s %q (rule %s)", e.Code, e.Op, e.Key, e.Rule)
	if e.Stored {
		s += " after the object was stored"
	}
	return s
}

// Record is one call seen by the Injector.
type Record struct {
	// Time the call started.
	Time time.Time
	// Op and Key of the call.
	Op  Op
	Key string
	// N numbers the calls of this operation on this key, from 1.
	N int
	// Rule names the rule that decided the call's fate ("" if none,
	// "outage" during an outage); Action is its action.
	Rule   string
	Action Action
	// Delayed is the latency injected into the call.
	Delayed time.Duration
}

// Injector is a fault-injecting driver over a bucket. Create one with [New]
// and use the bucket it returns from [Injector.Bucket]. Its methods are
// safe for concurrent use.
type Injector struct {
	inner *blob.Bucket
	cfg   Config
	b     *blob.Bucket

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced when hung changes
	calls    map[callKey]int
	records  []Record
	commits  map[string]int
	injected map[Op]int
	hung     int
	release  chan struct{} // closed by Release
	outage   *outage
}

type callKey struct {
	op  Op
	key string
}

type outage struct {
	ops  Op
	code gcerrors.ErrorCode
}

// New returns an Injector over inner. The caller keeps ownership of inner:
// closing the Injector's bucket does not close it.
func New(inner *blob.Bucket, cfg Config) *Injector {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for i := range cfg.Rules {
		if cfg.Rules[i].Name == "" {
			cfg.Rules[i].Name = fmt.Sprintf("rule%d", i)
		}
		if cfg.Rules[i].Code == gcerrors.OK {
			cfg.Rules[i].Code = gcerrors.Unknown
		}
	}
	in := &Injector{
		inner:    inner,
		cfg:      cfg,
		changed:  make(chan struct{}),
		calls:    map[callKey]int{},
		commits:  map[string]int{},
		injected: map[Op]int{},
		release:  make(chan struct{}),
	}
	in.b = blob.NewBucket(&bucket{in: in})
	return in
}

// Bucket returns the fault-injecting bucket. Closing it does not close the
// wrapped bucket.
func (in *Injector) Bucket() *blob.Bucket { return in.b }

// SetOutage makes every call of ops fail with code (gcerrors.Unknown if
// OK) until EndOutage, as when the store is unreachable. Calls already
// running are not affected.
func (in *Injector) SetOutage(ops Op, code gcerrors.ErrorCode) {
	if code == gcerrors.OK {
		code = gcerrors.Unknown
	}
	in.mu.Lock()
	in.outage = &outage{ops: ops, code: code}
	in.mu.Unlock()
}

// EndOutage ends an outage started by SetOutage.
func (in *Injector) EndOutage() {
	in.mu.Lock()
	in.outage = nil
	in.mu.Unlock()
}

// Release lets every call hung by a Hang rule proceed. Calls hit later
// hang again.
func (in *Injector) Release() {
	in.mu.Lock()
	close(in.release)
	in.release = make(chan struct{})
	in.mu.Unlock()
}

// Hung returns the number of calls currently hung.
func (in *Injector) Hung() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hung
}

// WaitHung waits until at least n calls are hung, or ctx ends.
func (in *Injector) WaitHung(ctx context.Context, n int) error {
	for {
		in.mu.Lock()
		if in.hung >= n {
			in.mu.Unlock()
			return nil
		}
		ch := in.changed
		in.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Records returns a copy of every call seen so far, in the order they
// started.
func (in *Injector) Records() []Record {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Record(nil), in.records...)
}

// Commits returns how many times an object was stored under key.
func (in *Injector) Commits(key string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.commits[key]
}

// Injected returns how many faults (errors, hangs and delays) were
// injected into calls of each operation.
func (in *Injector) Injected() map[Op]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[Op]int, len(in.injected))
	for k, v := range in.injected {
		out[k] = v
	}
	return out
}

// decision is the fate of one call.
type decision struct {
	delay time.Duration
	rule  *Rule // nil: proceed
	out   *outage
}

// hit reports whether rule i hits call n of op on key.
func (in *Injector) hit(i int, r *Rule, op Op, key string, n int) bool {
	if r.Ops&op == 0 || (r.Match != nil && !r.Match(key)) {
		return false
	}
	if r.FirstN > 0 && n > r.FirstN {
		return false
	}
	if r.Prob >= 1 {
		return true
	}
	if r.Prob <= 0 {
		return false
	}
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], in.cfg.Seed)
	h.Write(buf[:])
	binary.LittleEndian.PutUint64(buf[:], uint64(i)<<32|uint64(op))
	h.Write(buf[:])
	binary.LittleEndian.PutUint64(buf[:], uint64(n))
	h.Write(buf[:])
	h.Write([]byte(key))
	// Finalize (splitmix64) so that nearby inputs spread over [0, 1).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/float64(1<<53) < r.Prob
}

// decide numbers the call, records it and returns its fate.
func (in *Injector) decide(op Op, key string) decision {
	now := in.cfg.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	ck := callKey{op, key}
	in.calls[ck]++
	n := in.calls[ck]
	rec := Record{Time: now, Op: op, Key: key, N: n}
	var d decision
	if in.outage != nil && in.outage.ops&op != 0 {
		d.out = in.outage
		rec.Rule, rec.Action = "outage", Fail
	} else {
		for i := range in.cfg.Rules {
			r := &in.cfg.Rules[i]
			if !in.hit(i, r, op, key, n) {
				continue
			}
			if r.Action == Delay {
				d.delay += r.Delay
				continue
			}
			if d.rule == nil {
				d.rule = r
				rec.Rule, rec.Action = r.Name, r.Action
			}
		}
	}
	rec.Delayed = d.delay
	if d.out != nil || d.rule != nil || d.delay > 0 {
		in.injected[op]++
	}
	in.records = append(in.records, rec)
	return d
}

// before applies the latency and the fate that precede the operation
// itself. It returns a non-nil error when the call must fail now; lost is
// set when the call must run and then fail (LostAck).
func (in *Injector) before(ctx context.Context, op Op, key string) (lost *Error, err error) {
	d := in.decide(op, key)
	if d.out != nil {
		return nil, &Error{Op: op, Key: key, Code: d.out.code, Rule: "outage"}
	}
	if d.delay > 0 {
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if d.rule == nil {
		return nil, nil
	}
	r := d.rule
	switch r.Action {
	case Fail:
		return nil, &Error{Op: op, Key: key, Code: r.Code, Rule: r.Name}
	case LostAck:
		return &Error{Op: op, Key: key, Code: r.Code, Rule: r.Name, Stored: true}, nil
	case Hang:
		in.mu.Lock()
		in.hung++
		rel := in.release
		in.broadcastLocked()
		in.mu.Unlock()
		defer func() {
			in.mu.Lock()
			in.hung--
			in.broadcastLocked()
			in.mu.Unlock()
		}()
		select {
		case <-rel:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, nil
}

func (in *Injector) broadcastLocked() {
	close(in.changed)
	in.changed = make(chan struct{})
}

func (in *Injector) committed(key string) {
	in.mu.Lock()
	in.commits[key]++
	in.mu.Unlock()
	if in.cfg.AfterCommit != nil {
		in.cfg.AfterCommit(key)
	}
}

// bucket is the driver.
type bucket struct {
	in *Injector
}

var _ driver.Bucket = (*bucket)(nil)

func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return gcerrors.Code(err)
}

func (b *bucket) As(i any) bool { return b.in.inner.As(i) }

func (b *bucket) ErrorAs(err error, i any) bool {
	if fe, ok := i.(**Error); ok {
		return errors.As(err, fe)
	}
	return b.in.inner.ErrorAs(err, i)
}

func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	lost, err := b.in.before(ctx, OpAttributes, key)
	if err != nil {
		return nil, err
	}
	a, err := b.in.inner.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	if lost != nil {
		return nil, lost
	}
	return &driver.Attributes{
		CacheControl:       a.CacheControl,
		ContentDisposition: a.ContentDisposition,
		ContentEncoding:    a.ContentEncoding,
		ContentLanguage:    a.ContentLanguage,
		ContentType:        a.ContentType,
		Metadata:           a.Metadata,
		CreateTime:         a.CreateTime,
		ModTime:            a.ModTime,
		Size:               a.Size,
		MD5:                a.MD5,
		ETag:               a.ETag,
		AsFunc:             a.As,
	}, nil
}

func (b *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	lost, err := b.in.before(ctx, OpList, opts.Prefix)
	if err != nil {
		return nil, err
	}
	token := opts.PageToken
	if len(token) == 0 {
		token = blob.FirstPageToken
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := b.in.inner.ListPage(ctx, token, size, &blob.ListOptions{
		Prefix:     opts.Prefix,
		Delimiter:  opts.Delimiter,
		BeforeList: opts.BeforeList,
	})
	if err == io.EOF {
		objs, next, err = nil, nil, nil
	}
	if err != nil {
		return nil, err
	}
	if lost != nil {
		return nil, lost
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{
			Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir, AsFunc: o.As,
		})
	}
	return page, nil
}

func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	lost, err := b.in.before(ctx, OpRead, key)
	if err != nil {
		return nil, err
	}
	r, err := b.in.inner.NewRangeReader(ctx, key, offset, length, &blob.ReaderOptions{BeforeRead: opts.BeforeRead})
	if err != nil {
		return nil, err
	}
	if lost != nil {
		r.Close()
		return nil, lost
	}
	return &reader{r: r}, nil
}

type reader struct {
	r *blob.Reader
}

func (r *reader) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r *reader) Close() error               { return r.r.Close() }
func (r *reader) As(i any) bool              { return r.r.As(i) }
func (r *reader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.r.ContentType(), ModTime: r.r.ModTime(), Size: r.r.Size()}
}

func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	lost, err := b.in.before(ctx, OpWrite, key)
	if err != nil {
		return nil, err
	}
	if lost != nil {
		// Opening a writer stores nothing: an error after it is a plain
		// failure.
		lost.Stored = false
		return nil, lost
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.in.inner.NewWriter(wctx, key, &blob.WriterOptions{
		BufferSize:                  opts.BufferSize,
		MaxConcurrency:              opts.MaxConcurrency,
		CacheControl:                opts.CacheControl,
		ContentDisposition:          opts.ContentDisposition,
		ContentEncoding:             opts.ContentEncoding,
		ContentLanguage:             opts.ContentLanguage,
		ContentType:                 contentType,
		ContentMD5:                  opts.ContentMD5,
		Metadata:                    opts.Metadata,
		DisableContentTypeDetection: opts.DisableContentTypeDetection,
		BeforeWrite:                 opts.BeforeWrite,
		IfNotExist:                  opts.IfNotExist,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &writer{b: b, ctx: ctx, cancel: cancel, key: key, w: w}, nil
}

// writer passes bytes to the wrapped bucket's writer; Close commits or
// aborts it.
type writer struct {
	b      *bucket
	ctx    context.Context
	cancel context.CancelFunc
	key    string
	w      *blob.Writer
	err    error // first Write failure: Close aborts
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	lost, err := w.b.in.before(w.ctx, OpData, w.key)
	if err == nil && lost != nil {
		lost.Stored = false
		err = lost
	}
	if err != nil {
		// Part of the body went out before the connection broke.
		n, _ := w.w.Write(p[:len(p)/2])
		w.err = err
		return n, err
	}
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// abort closes the wrapped writer without storing anything.
func (w *writer) abort() {
	w.cancel()
	_ = w.w.Close()
}

func (w *writer) Close() error {
	defer w.cancel()
	if w.err != nil {
		w.abort()
		return w.err
	}
	lost, err := w.b.in.before(w.ctx, OpCommit, w.key)
	if err != nil {
		w.abort()
		return err
	}
	if err := w.w.Close(); err != nil {
		return err
	}
	w.b.in.committed(w.key)
	if lost != nil {
		return lost
	}
	return nil
}

func (b *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	lost, err := b.in.before(ctx, OpCopy, dstKey)
	if err != nil {
		return err
	}
	if err := b.in.inner.Copy(ctx, dstKey, srcKey, &blob.CopyOptions{BeforeCopy: opts.BeforeCopy}); err != nil {
		return err
	}
	b.in.committed(dstKey)
	if lost != nil {
		return lost
	}
	return nil
}

func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	lost, err := b.in.before(ctx, OpDelete, key)
	if err != nil {
		return err
	}
	if err := b.in.inner.DeleteWithOptions(ctx, key, &blob.DeleteOptions{BeforeDelete: opts.BeforeDelete}); err != nil {
		return err
	}
	if lost != nil {
		return lost
	}
	return nil
}

func (b *bucket) SignedURL(ctx context.Context, key string, opts *driver.SignedURLOptions) (string, error) {
	lost, err := b.in.before(ctx, OpSignedURL, key)
	if err != nil {
		return "", err
	}
	if lost != nil {
		return "", lost
	}
	return b.in.inner.SignedURL(ctx, key, &blob.SignedURLOptions{
		Expiry:                   opts.Expiry,
		Method:                   opts.Method,
		ContentType:              opts.ContentType,
		EnforceAbsentContentType: opts.EnforceAbsentContentType,
		BeforeSign:               opts.BeforeSign,
	})
}

// Close does not close the wrapped bucket.
func (b *bucket) Close() error { return nil }

// Pauses returns, for every key with at least two calls of op, the pauses
// between consecutive calls (the retry back-off a caller applied plus the
// time the failed call took), in call order.
func Pauses(records []Record, op Op) map[string][]time.Duration {
	last := map[string]time.Time{}
	out := map[string][]time.Duration{}
	for _, r := range records {
		if r.Op != op {
			continue
		}
		if t, ok := last[r.Key]; ok {
			out[r.Key] = append(out[r.Key], r.Time.Sub(t))
		}
		last[r.Key] = r.Time
	}
	return out
}

// Mean returns the mean of ds, or 0.
func Mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum float64
	for _, d := range ds {
		sum += float64(d)
	}
	return time.Duration(math.Round(sum / float64(len(ds))))
}
