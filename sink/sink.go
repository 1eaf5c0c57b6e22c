// Package sink uploads closed segments and init sections to any blob store
// (a gocloud.dev/blob [blob.Bucket]: S3, Google Cloud Storage, Azure, a local
// directory or memory) and reports, in order, which of them are durable.
// [Open] opens a bucket by URL or path; this package links the file and
// memory drivers only, and the application imports the cloud drivers it
// uses (see [Open]).
//
// A [Sink] is a [chunker.Output]: the chunker hands it each closed segment
// and it returns at once, while uploads run in the background, several at a
// time, with retries on transient errors. Memory is bounded: the bytes of
// objects not yet uploaded never exceed Config.MaxInFlightBytes, and when the
// bound is reached the configured [OverflowPolicy] applies (wait for room,
// spill to a local disk spool, or fail with [ErrOverflow]) — data is never
// dropped silently.
//
// With the [Spool] policy, objects that do not fit in memory are written to
// Config.SpoolDir (temporary file, write, fsync, rename, fsync of the
// directory), their memory is given back at once, and they are uploaded from
// disk in their turn. A Sink started on a SpoolDir that still holds objects
// (a crash, or a Close that gave up) uploads those first, in their original
// order, before anything new, and reports them like any other object (see
// [Sink.Recovered]). When the spool is full too, Config.SpoolFull applies and
// is logged at Error level.
//
// Objects are reported durable through Config.OnDurable strictly in the
// order they were submitted, even when uploads complete out of order, so a
// playlist writer can reference everything up to the last reported segment.
// When an upload fails permanently (a non-transient error, or retries run
// out) the sink fails for good: reports end before the failed object,
// objects still queued are not attempted ([ErrSkipped]), every later write
// and Wait returns an [*UploadError] naming every object that did not land,
// and so does Close. Objects that did not land are released, except those
// in the spool, which stay there for the next Sink. A failed Sink does not
// recover; create a new one.
//
// A Sink's methods are safe for concurrent use. Accepting an object starts
// an upload goroutine when fewer than Config.Concurrency run; each exits
// when no object waits, and Close waits for all of them. New starts them
// only for objects recovered from the spool. An upload keeps the values of
// the write's context but not its cancellation: it ends when it lands,
// fails, or Close's context ends.
//
// Keys are derived from sequence numbers ([InitKey], [SegmentKey]) under a
// sanitized prefix ([CleanPrefix]). Objects are written in one piece and
// appear atomically, with a Content-Type (video/mp4, video/iso.segment or
// video/mp2t) and an immutable Cache-Control where the store keeps
// attributes (a local directory opened with [Open] holds plain files). They
// carry a ContentMD5 that the store verifies, except in a local directory:
// there is no transport to protect, and hashing would cost more than the
// write.
package sink

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/semaphore"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/retry"
)

// Defaults of [Config] fields left zero (see each field for the values
// that also take them).
const (
	// DefaultMaxInFlightBytes is Config.MaxInFlightBytes for a bucket that
	// is not a local directory.
	DefaultMaxInFlightBytes = 64 << 20
	// DefaultLocalMaxInFlightBytes replaces DefaultMaxInFlightBytes for a
	// local directory, whose writes take milliseconds, not a network
	// round trip: a segment or two in flight keep it busy, more only hold
	// memory.
	DefaultLocalMaxInFlightBytes = 4 << 20
	// DefaultConcurrency is Config.Concurrency.
	DefaultConcurrency = 4
	// DefaultMaxAttempts is Retry.MaxAttempts, except under the Spool
	// policy (no limit).
	DefaultMaxAttempts = 8
	// DefaultInitialBackoff is Retry.InitialBackoff.
	DefaultInitialBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is Retry.MaxBackoff.
	DefaultMaxBackoff = 10 * time.Second
	// DefaultAttemptTimeout is Retry.AttemptTimeout for uploads.
	DefaultAttemptTimeout = 2 * time.Minute
	// DefaultSpoolMaxBytes is Config.SpoolMaxBytes.
	DefaultSpoolMaxBytes = 1 << 30
)

// OverflowPolicy says what WriteInit and WriteSegment do when accepting an
// object would exceed Config.MaxInFlightBytes.
type OverflowPolicy int

const (
	// Block waits until enough earlier uploads have finished, or until the
	// context passed to the write is done. It is the default.
	Block OverflowPolicy = iota
	// Fail returns [ErrOverflow] at once and does not take the object.
	Fail
	// Spool writes an object that does not fit in memory to
	// Config.SpoolDir and releases its memory at once; it is uploaded from
	// disk in its turn, and survives a crash of the process (a later Sink
	// on the same SpoolDir uploads it first). When the spool cannot take the
	// object (Config.SpoolMaxBytes reached, or a disk error), Config.SpoolFull
	// applies and an Error is logged. Without a SpoolDir, Spool behaves
	// like SpoolFull.
	Spool
)

// String returns "block", "fail", "spool", or "OverflowPolicy(n)" for
// other values.
func (p OverflowPolicy) String() string {
	switch p {
	case Block:
		return "block"
	case Fail:
		return "fail"
	case Spool:
		return "spool"
	}
	return fmt.Sprintf("OverflowPolicy(%d)", int(p))
}

// Retry configures the retries of a write to a bucket that fails with a
// transient error: gcerrors codes Unknown (a reset connection, or an error
// the driver did not classify), Internal, ResourceExhausted and
// DeadlineExceeded; any other code fails at once. It is the one retry
// setting of livechunk: [Config].Retry tunes uploads, and
// hls.PublisherConfig.Retry and hls.WritePlaylist take it for playlist
// writes. Fields left zero (backoffs also negative) take defaults: for
// uploads those documented on each field; for playlist writes the same,
// except an AttemptTimeout of 30 s and a MaxAttempts of 8 whatever the
// sink's policy.
//
// Pauses grow exponentially from InitialBackoff up to MaxBackoff with full
// jitter: each pause is uniformly random between zero and the current
// bound, which doubles after every retry.
type Retry struct {
	// MaxAttempts is the number of tries per object, the first included.
	// Zero: 8, except under the [Spool] policy, whose purpose is to ride
	// out long outages: there zero means no limit. 1 disables retries;
	// a negative value retries transient errors until Close gives up (for
	// a playlist write: until its context ends).
	MaxAttempts int
	// InitialBackoff bounds the first pause. Zero or negative: 100 ms.
	InitialBackoff time.Duration
	// MaxBackoff bounds every pause. Zero or negative: 10 s. It is raised
	// to InitialBackoff if smaller.
	MaxBackoff time.Duration
	// AttemptTimeout bounds each attempt: an upload that takes longer
	// (a hung connection) is abandoned and counts as a transient failure
	// (DeadlineExceeded). Zero: 2 minutes; negative: no bound.
	AttemptTimeout time.Duration
}

// uploadRetry returns the upload defaults of Retry under policy p.
func uploadRetry(p OverflowPolicy) retry.Policy {
	d := retry.Policy{
		MaxAttempts:    DefaultMaxAttempts,
		InitialBackoff: DefaultInitialBackoff,
		MaxBackoff:     DefaultMaxBackoff,
		AttemptTimeout: DefaultAttemptTimeout,
	}
	if p == Spool {
		d.MaxAttempts = -1
	}
	return d
}

// Config configures a [Sink]. The zero value is usable.
type Config struct {
	// Prefix is prepended to every key, as a directory: it is sanitized with
	// [CleanPrefix], so it cannot climb out of the bucket ("..") or start
	// with "/". Default "" (the bucket root). A prefix carried by the bucket
	// itself (a "?prefix=" URL parameter) applies in addition.
	Prefix string
	// MaxInFlightBytes bounds the bytes of accepted objects that are not yet
	// uploaded. Zero or negative: 64 MiB, or 4 MiB when the bucket is a
	// local directory. An object larger than the bound is still accepted
	// once nothing else is in flight.
	MaxInFlightBytes int64
	// Concurrency bounds the uploads run in parallel. Zero or negative: 4.
	Concurrency int
	// Overflow is the policy when MaxInFlightBytes is reached. Default
	// Block; a value other than Block, Fail and Spool means Block.
	Overflow OverflowPolicy
	// SpoolDir is the local directory of the spool (created if needed,
	// mode 0700). The Spool policy writes to it; whatever the policy, a
	// Sink created on a SpoolDir that holds objects uploads them before any
	// new one. One Sink at a time may use a SpoolDir. Default "": no spool.
	SpoolDir string
	// SpoolMaxBytes bounds the bytes of objects in the spool. Zero or
	// negative: 1 GiB.
	SpoolMaxBytes int64
	// SpoolFull is the policy when an object fits neither in memory nor in
	// the spool: Block (default) waits for memory, Fail returns an error
	// wrapping both [ErrOverflow] and [ErrSpoolFull]; any other value,
	// Spool included, means Block. Either way the sink logs an Error and
	// counts it in Stats.SpoolFull.
	SpoolFull OverflowPolicy
	// Retry configures retries of transient upload errors; its zero and
	// negative fields mean what [Retry] says.
	Retry Retry
	// OnDurable, if set, is called once for every object that is durable,
	// in submission order. Calls never overlap. It runs on an upload
	// goroutine, so it should return quickly (Wait and Close wait for it);
	// it must not call Wait or Close, which would deadlock.
	OnDurable func(Event)
	// Logger receives upload, retry and failure logs. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Overflow != Fail && c.Overflow != Spool {
		c.Overflow = Block
	}
	c.Retry = Retry(retry.Policy(c.Retry).WithDefaults(uploadRetry(c.Overflow)))
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.SpoolFull != Fail {
		c.SpoolFull = Block
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Prefix = CleanPrefix(c.Prefix)
	return c
}

// Kind tells init sections and media segments apart.
type Kind int

const (
	// KindInit is an init section ([chunker.Init]).
	KindInit Kind = iota
	// KindSegment is a media segment ([chunker.Segment]).
	KindSegment
)

// String returns "init", "segment", or "Kind(n)" for other values.
func (k Kind) String() string {
	switch k {
	case KindInit:
		return "init"
	case KindSegment:
		return "segment"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event reports that an object is durable in the bucket.
type Event struct {
	// Kind of the object.
	Kind Kind
	// Seq is the init or segment sequence number.
	Seq uint64
	// Key is the object key, without any prefix the bucket itself adds. It
	// is empty for an init section without data (MPEG-TS output), which is
	// reported in order but not uploaded.
	Key string
	// Bytes is the size of the object.
	Bytes int
	// Init is the init section (KindInit), or the one the segment needs
	// (KindSegment; nil if the segment had none).
	Init *chunker.Init
	// Segment describes the segment (KindSegment only).
	Segment SegmentInfo
	// Accepted is when WriteInit or WriteSegment took the object (for a
	// recovered object, when the earlier Sink did).
	Accepted time.Time
	// Spooled is set when the object went through the disk spool.
	Spooled bool
	// Recovered is set when the object was left in the spool by an
	// earlier Sink. The first recovered segment, and every recovered
	// segment whose predecessor is not in the spool, is marked as a
	// discontinuity (Segment.Discontinuity): what preceded it may have been
	// lost with the earlier process.
	Recovered bool
}

// SegmentInfo is a copy of a [chunker.Segment]'s metadata, which outlives the
// segment's data (released to the chunker after upload). The fields are
// those of chunker.Segment.
type SegmentInfo struct {
	Seq    uint64         // media sequence number
	Format chunker.Format // container of the segment
	// InitSeq is the sequence number of the segment's init section.
	InitSeq uint64
	// Timescale of the timestamps and Duration (ticks per second).
	Timescale          uint32
	FirstDTS, FirstPTS int64 // of the first sample
	// Duration is in ticks of Timescale.
	Duration      int64
	Frames        int     // video access units
	Keyframes     int     // random access points among them
	Discontinuity bool    // also set on a recovered segment (see Event.Recovered)
	Long          bool    // longer than the target duration
	FrameRate     float64 // frames per second over the segment
	// Size is the number of bytes of the segment.
	Size int
}

// DurationTime returns Duration as a time.Duration.
func (i SegmentInfo) DurationTime() time.Duration {
	if i.Timescale == 0 {
		return 0
	}
	ts := int64(i.Timescale)
	return time.Duration(i.Duration/ts)*time.Second + time.Duration(i.Duration%ts)*time.Second/time.Duration(ts)
}

// Stats are counters of a [Sink].
type Stats struct {
	Submitted          int64  // objects accepted by WriteInit and WriteSegment, or recovered from the spool
	Uploaded           int64  // objects written to the bucket
	UploadedBytes      int64  // bytes written to the bucket
	Durable            int64  // objects reported durable (OnDurable calls)
	DurableBytes       int64  // bytes of the objects reported durable
	Retries            int64  // upload attempts repeated after a transient error
	Failed             int64  // objects that did not land (failed or skipped)
	Overflows          int64  // writes rejected with ErrOverflow
	BlockedWrites      int64  // writes that had to wait for room
	InFlightBytes      int64  // bytes accepted and not yet uploaded
	PeakInFlightBytes  int64  // largest InFlightBytes seen
	LastDurableSegment uint64 // Seq of the last segment reported durable
	HaveDurableSegment bool   // whether LastDurableSegment is set
	AttemptTimeouts    int64  // attempts abandoned after Retry.AttemptTimeout
	Spooled            int64  // objects written to the spool
	SpooledBytes       int64  // bytes written to the spool
	SpoolBytes         int64  // bytes in the spool now
	PeakSpoolBytes     int64  // largest SpoolBytes seen
	SpoolFull          int64  // writes that found the spool full or failing (SpoolFull policy applied)
	SpoolErrors        int64  // spool files that could not be written, read or removed
	Recovered          int64  // objects found in the spool at New
}

// Sink uploads init sections and segments to a bucket. Create one with
// [New]; it implements [chunker.Output]. Its methods are safe for concurrent
// use, but objects are ordered by the order in which the write calls are
// made, so one goroutine normally writes. See the package documentation for
// its goroutines and failure.
type Sink struct {
	bucket *blob.Bucket
	cfg    Config
	log    *slog.Logger
	mem    *semaphore.Weighted
	// checksum is set when uploads carry a ContentMD5 for the store to
	// verify: for every bucket except a local directory (see localDir).
	checksum bool

	// ctx bounds all uploads; Close cancels it when its own context ends.
	ctx    context.Context
	cancel context.CancelCauseFunc

	wg sync.WaitGroup // upload workers

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every state change
	queue       []*job        // accepted, not yet started (FIFO)
	order       []*job        // accepted, not yet reported durable (FIFO)
	workers     int           // running upload goroutines
	outstanding int           // accepted jobs not yet finished
	emitting    bool          // a goroutine is delivering events
	submitted   uint64        // jobs accepted
	delivered   uint64        // events delivered (OnDurable returned)
	closed      bool
	failed      bool
	cause       error         // first failure
	notLanded   []ObjectError // in submission order
	stats       Stats

	spoolDir  string  // "" when there is no spool
	spoolOK   bool    // new objects may be spooled
	spoolNext uint64  // counter of the next spool file
	recovered []Event // objects found in the spool at New

	hooks testHooks
}

// testHooks let in-package tests observe internal steps without sleeping.
type testHooks struct {
	blocking func()                                         // a write is about to wait for room
	finished func(key string, e error)                      // a job's outcome was recorded and its memory released
	pause    func(key string, attempt int, d time.Duration) // a retry is about to pause for d
}

type jobState int

const (
	jobPending jobState = iota
	jobLanded
	jobFailed
)

// job is one object to upload.
type job struct {
	idx    uint64
	ctx    context.Context // the write's context, for its values only
	key    string
	data   []byte // nil once spooled
	size   int64  // bytes of the object
	ctype  string
	weight int64 // memory reserved in Sink.mem
	mem    int64 // bytes counted in Stats.InFlightBytes
	seg    *chunker.Segment
	ev     Event
	state  jobState

	spool     string // spool file holding the object, if any
	spoolOff  int64  // offset of the object's bytes in it
	md5       []byte // of the bytes, known once spooled
	recovered bool   // left by an earlier Sink: check the bucket first
}

// New returns a Sink that uploads to b (a nil b gives a Sink whose writes
// return ErrInvalid). The caller keeps ownership of b and
// closes it after the Sink's Close has returned. Uploads run on demand, and
// Close waits for them; New starts goroutines only when Config.SpoolDir
// holds objects left by an earlier Sink, which it queues for upload before
// anything else (see [Sink.Recovered]). Spool problems never make New fail:
// they are logged at Error level, counted in Stats, and the affected files
// are kept on disk.
func New(b *blob.Bucket, cfg Config) *Sink {
	local := localDir(b)
	if cfg.MaxInFlightBytes <= 0 && local {
		cfg.MaxInFlightBytes = DefaultLocalMaxInFlightBytes
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Sink{
		bucket:   b,
		cfg:      cfg,
		log:      cfg.Logger,
		mem:      semaphore.NewWeighted(cfg.MaxInFlightBytes),
		checksum: !local,
		ctx:      ctx,
		cancel:   cancel,
		changed:  make(chan struct{}),
	}
	if cfg.SpoolDir != "" && b != nil {
		s.openSpool()
	} else if cfg.Overflow == Spool {
		s.log.Error("sink: overflow policy spool without a SpoolDir; the SpoolFull policy applies instead",
			"spool_full", cfg.SpoolFull)
	}
	return s
}

// openSpool prepares the spool directory and queues the objects it holds.
func (s *Sink) openSpool() {
	dir := s.cfg.SpoolDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.log.Error("sink: cannot create the spool directory; spooling disabled", "dir", dir, "err", err)
		return
	}
	s.spoolDir = dir
	entries, next, err := scanSpool(dir, func(path string, err error) {
		s.stats.SpoolErrors++
		s.log.Error("sink: damaged spool file set aside (renamed to .bad), not uploaded", "file", path, "err", err)
	})
	if err != nil {
		s.log.Error("sink: cannot read the spool directory; spooling disabled", "dir", dir, "err", err)
		return
	}
	s.spoolOK = s.cfg.Overflow == Spool
	s.spoolNext = next
	// Segments whose init section is not in the spool get it re-uploaded
	// from the copy kept in their header, unless the bucket has it.
	inits := map[uint64]bool{}
	for _, e := range entries {
		if e.hdr.Kind == KindInit {
			inits[e.hdr.Seq] = true
		}
	}
	var prevSeg uint64
	haveSeg := false
	for _, e := range entries {
		h := e.hdr
		if h.Kind == KindSegment && h.Init != nil && len(h.Init.Data) > 0 && !inits[h.Init.Seq] {
			inits[h.Init.Seq] = true
			in := h.Init
			sum := md5.Sum(in.Data)
			key := InitKey("", in.Seq)
			if strings.HasSuffix(h.Key, SegmentKey("", h.Segment.Format, h.Seq)) {
				// The init lives beside its segment, under the same prefix.
				key = strings.TrimSuffix(h.Key, SegmentKey("", h.Segment.Format, h.Seq)) + key
			}
			s.queueRecovered(&job{
				key: key, data: in.Data, size: int64(len(in.Data)), ctype: contentTypeInit,
				md5: sum[:], recovered: true,
				ev: Event{Kind: KindInit, Seq: in.Seq, Key: key, Bytes: len(in.Data), Init: in,
					Accepted: h.Accepted, Spooled: true, Recovered: true},
			})
		}
		ev := Event{Kind: h.Kind, Seq: h.Seq, Key: h.Key, Bytes: int(h.Size), Init: h.Init,
			Accepted: h.Accepted, Spooled: true, Recovered: true}
		if h.Kind == KindInit {
			if ev.Init == nil {
				ev.Init = &chunker.Init{Seq: h.Seq, Format: chunker.FMP4}
			}
		} else {
			ev.Segment = h.Segment
			if !haveSeg || h.Seq != prevSeg+1 {
				ev.Segment.Discontinuity = true
			}
			prevSeg, haveSeg = h.Seq, true
		}
		s.queueRecovered(&job{
			key: h.Key, size: h.Size, ctype: h.ContentType, md5: h.MD5,
			spool: e.path, spoolOff: e.off, recovered: true, ev: ev,
		})
		s.stats.SpoolBytes += h.Size
	}
	s.stats.PeakSpoolBytes = s.stats.SpoolBytes
	if len(s.recovered) > 0 {
		s.log.Warn("sink: uploading objects left in the spool by an earlier run first",
			"dir", dir, "objects", len(s.recovered), "bytes", s.stats.SpoolBytes)
		s.mu.Lock()
		s.startWorkersLocked(len(s.queue))
		s.mu.Unlock()
	}
}

// queueRecovered queues a job found in the spool (during New).
func (s *Sink) queueRecovered(j *job) {
	j.ctx = context.Background()
	j.idx = s.submitted
	s.submitted++
	s.outstanding++
	s.stats.Submitted++
	s.stats.Recovered++
	s.queue = append(s.queue, j)
	s.order = append(s.order, j)
	s.recovered = append(s.recovered, j.ev)
}

// Recovered returns the events of the objects that New found in the spool
// and queued before anything new, in their order; the slice is the
// caller's. A caller that numbers objects itself (a recording resuming
// after a crash) continues after them.
func (s *Sink) Recovered() []Event {
	return slices.Clone(s.recovered)
}

// WriteInit accepts an init section for upload to [InitKey](Prefix,
// init.Seq) with Content-Type video/mp4. An init without data (MPEG-TS
// output) is not uploaded but still reported durable in order. The sink
// keeps init and init.Data; neither may be modified.
//
// WriteInit returns without waiting for the network unless MaxInFlightBytes
// is reached (see [OverflowPolicy]; under Spool it writes and syncs the
// spool file itself); ctx bounds only that wait. On error the sink has not
// taken init. The errors are ctx.Err() when ctx ends while waiting, the
// [*UploadError] if the sink has failed, [ErrClosed] after Close, an error
// wrapping [ErrOverflow] when the policy is Fail, and [ErrInvalid] for a
// nil init or bucket.
func (s *Sink) WriteInit(ctx context.Context, init *chunker.Init) error {
	if init == nil {
		return fmt.Errorf("%w: nil init", ErrInvalid)
	}
	if s.bucket == nil {
		return fmt.Errorf("%w: nil bucket", ErrInvalid)
	}
	ev := InitEvent(s.cfg.Prefix, init)
	j := &job{ctx: ctx, key: ev.Key, data: init.Data, size: int64(len(init.Data)), ctype: contentTypeInit, ev: ev}
	return s.submit(ctx, j)
}

// WriteSegment accepts a closed segment for upload to [SegmentKey](Prefix,
// seg.Format, seg.Seq) with Content-Type video/iso.segment (fMP4) or
// video/mp2t (TS). On success the sink owns seg until it has been uploaded
// (or has failed, or was written to the spool), then calls seg.Release: on
// an upload goroutine, or before WriteSegment returns when it spooled seg.
// seg.Init is kept for the Event.
//
// It waits and fails as WriteInit does; [ErrInvalid] is also the error for
// a segment of unknown format. On error the sink has not taken seg.
func (s *Sink) WriteSegment(ctx context.Context, seg *chunker.Segment) error {
	if seg == nil {
		return fmt.Errorf("%w: nil segment", ErrInvalid)
	}
	if s.bucket == nil {
		return fmt.Errorf("%w: nil bucket", ErrInvalid)
	}
	if seg.Format != chunker.FMP4 && seg.Format != chunker.TS {
		return fmt.Errorf("%w: segment %d has unknown format %v", ErrInvalid, seg.Seq, seg.Format)
	}
	ev := SegmentEvent(s.cfg.Prefix, seg)
	j := &job{
		ctx:   ctx,
		key:   ev.Key,
		data:  seg.Data,
		size:  int64(len(seg.Data)),
		ctype: segmentContentType(seg.Format),
		seg:   seg,
		ev:    ev,
	}
	return s.submit(ctx, j)
}

// submit reserves memory (or spool room) for j under the overflow policy
// and queues it.
func (s *Sink) submit(ctx context.Context, j *job) error {
	if ctx == nil {
		ctx = context.Background()
		j.ctx = ctx
	}
	j.ev.Accepted = time.Now()
	s.mu.Lock()
	err := s.acceptErrLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}

	// An object larger than the whole bound reserves the whole bound, so it
	// goes through once nothing else is in flight.
	j.weight = min(j.size, s.cfg.MaxInFlightBytes)
	if !s.mem.TryAcquire(j.weight) {
		policy := s.cfg.Overflow
		if policy == Spool {
			err := s.spoolJob(j)
			if err == nil {
				return s.accept(j)
			}
			if !errors.Is(err, ErrSpoolFull) {
				return err // closed or failed meanwhile
			}
			s.mu.Lock()
			s.stats.SpoolFull++
			s.mu.Unlock()
			s.log.Error("sink: spool cannot take the object; applying the SpoolFull policy",
				"kind", j.ev.Kind, "seq", j.ev.Seq, "bytes", j.size, "policy", s.cfg.SpoolFull, "err", err)
			policy = s.cfg.SpoolFull
			if policy == Fail {
				s.mu.Lock()
				s.stats.Overflows++
				s.mu.Unlock()
				return fmt.Errorf("%w: %s %d: %w", ErrOverflow, j.ev.Kind, j.ev.Seq, err)
			}
		}
		if policy == Fail {
			s.mu.Lock()
			s.stats.Overflows++
			inFlight := s.stats.InFlightBytes
			s.mu.Unlock()
			return fmt.Errorf("%w: %s %d needs %d bytes, %d of %d in flight",
				ErrOverflow, j.ev.Kind, j.ev.Seq, j.size, inFlight, s.cfg.MaxInFlightBytes)
		}
		s.mu.Lock()
		s.stats.BlockedWrites++
		s.mu.Unlock()
		if s.hooks.blocking != nil {
			s.hooks.blocking()
		}
		if err := s.mem.Acquire(ctx, j.weight); err != nil {
			return err
		}
	}
	return s.accept(j)
}

// spoolJob writes j to the spool, if the spool has room. On success j
// reserves no memory; accept releases its segment. Every spool failure
// wraps ErrSpoolFull; other errors say the sink no longer accepts objects.
func (s *Sink) spoolJob(j *job) error {
	if j.key == "" {
		// Nothing to store (cannot happen: a weight of 0 always fits).
		j.weight = 0
		return nil
	}
	s.mu.Lock()
	switch {
	case !s.spoolOK:
		s.mu.Unlock()
		return ErrSpoolFull
	case s.stats.SpoolBytes+j.size > s.cfg.SpoolMaxBytes:
		used := s.stats.SpoolBytes
		s.mu.Unlock()
		return fmt.Errorf("%w: %d bytes needed, %d of %d used", ErrSpoolFull, j.size, used, s.cfg.SpoolMaxBytes)
	}
	if err := s.acceptErrLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	n := s.spoolNext
	s.spoolNext++
	s.stats.SpoolBytes += j.size // reserved
	s.mu.Unlock()

	sum := md5.Sum(j.data)
	hdr := &spoolHeader{
		Kind: j.ev.Kind, Seq: j.ev.Seq, Key: j.key, ContentType: j.ctype,
		Size: j.size, MD5: sum[:], Accepted: j.ev.Accepted, Segment: j.ev.Segment,
	}
	if j.ev.Init != nil {
		in := *j.ev.Init
		if j.ev.Kind == KindInit || in.Format != chunker.FMP4 {
			in.Data = nil
		}
		hdr.Init = &in
	}
	path, off, err := writeSpool(s.spoolDir, n, hdr, j.data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.stats.SpoolBytes -= j.size
		s.stats.SpoolErrors++
		return fmt.Errorf("%w: %w", ErrSpoolFull, err)
	}
	s.stats.Spooled++
	s.stats.SpooledBytes += j.size
	s.stats.PeakSpoolBytes = max(s.stats.PeakSpoolBytes, s.stats.SpoolBytes)
	j.spool = path
	j.spoolOff = off
	j.md5 = sum[:]
	j.weight = 0
	j.ev.Spooled = true
	return nil
}

// accept queues j, whose memory (or spool room) is reserved.
func (s *Sink) accept(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.acceptErrLocked(); err != nil {
		s.mem.Release(j.weight)
		if j.spool != "" {
			// Not taken: the caller keeps the segment, so the copy goes.
			os.Remove(j.spool)
			s.stats.SpoolBytes -= j.size
			s.stats.Spooled--
			s.stats.SpooledBytes -= j.size
		}
		return err
	}
	if j.spool != "" {
		// The bytes are on disk: give the segment's memory back now.
		j.data = nil
		if j.seg != nil {
			j.seg.Release()
			j.seg = nil
		}
	}
	j.idx = s.submitted
	s.submitted++
	s.outstanding++
	s.stats.Submitted++
	j.mem = int64(len(j.data))
	s.stats.InFlightBytes += j.mem
	s.stats.PeakInFlightBytes = max(s.stats.PeakInFlightBytes, s.stats.InFlightBytes)
	s.queue = append(s.queue, j)
	s.order = append(s.order, j)
	s.startWorkersLocked(1)
	s.broadcastLocked()
	return nil
}

// startWorkersLocked starts up to n upload goroutines, without exceeding
// Concurrency.
func (s *Sink) startWorkersLocked(n int) {
	for ; n > 0 && s.workers < s.cfg.Concurrency; n-- {
		s.workers++
		s.wg.Add(1)
		go s.work()
	}
}

// acceptErrLocked returns why a new object cannot be accepted, if so.
func (s *Sink) acceptErrLocked() error {
	if s.closed {
		return ErrClosed
	}
	if s.failed {
		return s.uploadErrorLocked()
	}
	return nil
}

// work uploads queued jobs until the queue is empty.
func (s *Sink) work() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.workers--
			s.mu.Unlock()
			return
		}
		j := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		failed := s.failed
		s.mu.Unlock()

		var attempts int
		var err error
		switch {
		case j.key == "":
			// Nothing to upload (init section of MPEG-TS output).
		case failed:
			err = ErrSkipped
		case s.ctx.Err() != nil:
			err = context.Cause(s.ctx)
		default:
			attempts, err = s.upload(j)
		}
		if err == nil && j.spool != "" {
			// Landed: the spool copy goes before the object is reported,
			// so a crash in between re-uploads (and reports) it, never
			// reports it twice.
			if rerr := os.Remove(j.spool); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				s.log.Error("sink: cannot remove an uploaded object from the spool; a restart uploads it again",
					"file", j.spool, "err", rerr)
				s.mu.Lock()
				s.stats.SpoolErrors++
				s.mu.Unlock()
			}
			_ = syncDir(s.spoolDir)
		}
		key := j.key
		s.finish(j, attempts, err)
		if s.hooks.finished != nil {
			s.hooks.finished(key, err)
		}
	}
}

// upload writes j to the bucket, retrying transient errors.
func (s *Sink) upload(j *job) (attempts int, err error) {
	// The upload outlives the write call: keep the values of its context
	// (trace IDs and the like) but not its cancellation, and end it when the
	// sink is aborted.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(j.ctx))
	stop := context.AfterFunc(s.ctx, func() { cancel(context.Cause(s.ctx)) })
	defer func() {
		stop()
		cancel(nil)
	}()

	sum := j.md5
	if sum == nil && s.checksum {
		h := md5.Sum(j.data)
		sum = h[:]
	}
	opts := &blob.WriterOptions{
		ContentType:                 j.ctype,
		DisableContentTypeDetection: true,
		CacheControl:                cacheControl,
		// Lets the store verify the bytes it received (nil for a local
		// directory: no transport to protect, and hashing would cost more
		// than writing the file).
		ContentMD5: sum,
	}
	start := time.Now()
	attempts, err = retry.Do(ctx, retry.Policy(s.cfg.Retry), func(ctx context.Context) error {
		start = time.Now()
		return s.attempt(ctx, j, sum, opts)
	}, func(attempt int, pause time.Duration, err error) {
		s.log.Warn("sink: upload failed, retrying", "key", j.key, "attempt", attempt,
			"pause", pause, "err", err)
		s.mu.Lock()
		s.stats.Retries++
		s.countTimeout(err)
		s.mu.Unlock()
		if s.hooks.pause != nil {
			s.hooks.pause(j.key, attempt, pause)
		}
	})
	if err != nil {
		s.mu.Lock()
		s.countTimeout(err)
		s.mu.Unlock()
		return attempts, err
	}
	s.log.Debug("sink: uploaded", "key", j.key, "bytes", j.size,
		"attempt", attempts, "elapsed", time.Since(start), "spooled", j.spool != "")
	return attempts, nil
}

// countTimeout counts err in Stats.AttemptTimeouts if an attempt ran out of
// Retry.AttemptTimeout. Every failed attempt's error passes here once: in
// the retry callback, or as the error the loop ends with (an error of a
// cancelled loop wraps the attempt's error as text only, and that attempt
// did not time out). Call with s.mu held.
func (s *Sink) countTimeout(err error) {
	var te *retry.TimeoutError
	if errors.As(err, &te) {
		s.stats.AttemptTimeouts++
	}
}

// attempt makes one try at storing j. A recovered object that the bucket
// already holds with the same bytes (its upload landed, but the process
// died before the spool file was removed) is not written again; one with
// other bytes is never overwritten.
func (s *Sink) attempt(ctx context.Context, j *job, sum []byte, opts *blob.WriterOptions) error {
	if j.recovered {
		a, err := s.bucket.Attributes(ctx, j.key)
		switch {
		case err == nil:
			if a.Size == j.size && (a.MD5 == nil || bytes.Equal(a.MD5, sum)) {
				s.log.Info("sink: recovered object is already in the bucket", "key", j.key)
				return nil
			}
			// A conflict does not go away: not retried.
			return retry.Permanent(fmt.Errorf("%w: %s holds %d other bytes; the spool keeps ours", ErrSpoolConflict, j.key, a.Size))
		case gcerrors.Code(err) != gcerrors.NotFound:
			return err
		}
	}
	if j.spool == "" {
		return writeAll(ctx, s.bucket, j.key, j.data, opts)
	}
	r, c, err := spoolReader(j.spool, j.spoolOff, j.size)
	if errors.Is(err, fs.ErrNotExist) {
		return retry.Permanent(err) // nor does a spool file that vanished
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return s.bucket.Upload(ctx, j.key, r, opts)
}

// writeAll stores data under key in one write. Unlike blob.Bucket.WriteAll
// it does not hash data when opts has no ContentMD5; a failed write aborts
// the object (its context is cancelled before Close, which every driver
// takes as "do not commit"), so a partial object never appears.
func writeAll(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		cancel()
		_ = w.Close()
		return err
	}
	return w.Close()
}

// localDir reports whether b is a local directory (the file driver, which
// exposes an os.FileInfo through As), possibly behind a wrapper that passes
// As through.
func localDir(b *blob.Bucket) bool {
	var fi os.FileInfo
	return b != nil && b.As(&fi)
}

// finish records the outcome of j, releases its memory and delivers every
// event that is now in order.
func (s *Sink) finish(j *job, attempts int, err error) {
	if j.seg != nil {
		j.seg.Release()
		j.seg = nil
	}
	j.data = nil
	j.ctx = nil

	s.mu.Lock()
	s.outstanding--
	// Give the room back while holding s.mu, so InFlightBytes never counts
	// more than the semaphore allows.
	s.stats.InFlightBytes -= j.mem
	s.mem.Release(j.weight)
	if err == nil {
		j.state = jobLanded
		if j.key != "" {
			s.stats.Uploaded++
			s.stats.UploadedBytes += j.size
		}
		if j.spool != "" {
			s.stats.SpoolBytes -= j.size
		}
	} else {
		j.state = jobFailed
		s.stats.Failed++
		s.notLanded = append(s.notLanded, ObjectError{
			Kind: j.ev.Kind, Seq: j.ev.Seq, Key: j.key, Attempts: attempts, Err: err, idx: j.idx,
		})
		if !s.failed {
			s.failed = true
			s.cause = err
			s.log.Error("sink: upload failed", "key", j.key, "attempts", attempts, "err", err)
		}
		if j.spool != "" {
			s.log.Error("sink: object kept in the spool for a later run", "key", j.key, "file", j.spool)
		}
	}
	s.broadcastLocked()
	if s.emitting {
		// The goroutine delivering events will pick up j if it is next.
		s.mu.Unlock()
		return
	}
	s.emitting = true
	s.deliverLocked()
}

// deliverLocked calls OnDurable for every landed job at the head of the
// order, until the head is pending or failed, then clears s.emitting and
// unlocks s.mu. Only the goroutine that set s.emitting calls it, so
// callbacks never overlap and keep submission order.
func (s *Sink) deliverLocked() {
	var batch []Event
	for {
		batch = batch[:0]
		for len(s.order) > 0 && s.order[0].state == jobLanded {
			batch = append(batch, s.order[0].ev)
			s.order[0] = nil
			s.order = s.order[1:]
		}
		if len(batch) == 0 {
			s.emitting = false
			s.broadcastLocked()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if s.cfg.OnDurable != nil {
			for _, ev := range batch {
				s.cfg.OnDurable(ev)
			}
		}
		s.mu.Lock()
		for _, ev := range batch {
			s.delivered++
			s.stats.Durable++
			s.stats.DurableBytes += int64(ev.Bytes)
			if ev.Kind == KindSegment {
				s.stats.LastDurableSegment = ev.Seq
				s.stats.HaveDurableSegment = true
			}
		}
		s.broadcastLocked()
	}
}

// broadcastLocked wakes every goroutine waiting in await.
func (s *Sink) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// await waits until done (called with s.mu held) is true, or ctx is done.
func (s *Sink) await(ctx context.Context, done func() bool) error {
	for {
		s.mu.Lock()
		if done() {
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settledLocked reports whether no upload is running or queued and no event
// is being delivered.
func (s *Sink) settledLocked() bool {
	return s.outstanding == 0 && !s.emitting
}

// uploadErrorLocked returns a snapshot of the failure.
func (s *Sink) uploadErrorLocked() *UploadError {
	objs := make([]ObjectError, len(s.notLanded))
	copy(objs, s.notLanded)
	// Workers finish out of order; report in submission order.
	sortObjects(objs)
	return &UploadError{Objects: objs, Err: s.cause}
}

// Wait waits until every object accepted before the call is durable and
// reported through OnDurable (a flush). If the sink fails first, Wait waits
// for the running uploads to end and returns the [*UploadError]. If ctx ends
// first, it returns ctx.Err(); uploads continue. It must not be called
// from OnDurable.
func (s *Sink) Wait(ctx context.Context) error {
	s.mu.Lock()
	target := s.submitted
	s.mu.Unlock()
	if err := s.await(ctx, func() bool {
		return s.delivered >= target || (s.failed && s.settledLocked())
	}); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delivered >= target {
		return nil
	}
	return s.uploadErrorLocked()
}

// Close stops accepting objects and waits until every accepted object is
// uploaded (or has failed) and reported. If ctx ends first, Close aborts the
// remaining uploads and retries, waits for them to stop, and reports them as
// not landed. When Close returns, every upload goroutine has exited and
// OnDurable is not called again. It returns nil when everything landed,
// otherwise the [*UploadError]. Spooled objects that did not land stay in
// Config.SpoolDir, and the next Sink on it uploads them. Close does not
// close the bucket. Calling Close again returns the same result.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.await(ctx, s.settledLocked); err != nil {
		s.cancel(fmt.Errorf("sink: close: %w", err))
		// Aborted uploads return promptly.
		_ = s.await(context.Background(), s.settledLocked)
	}
	s.wg.Wait()
	s.cancel(ErrClosed)

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed {
		return nil
	}
	return s.uploadErrorLocked()
}

// Stats returns a snapshot of the counters. It may be called at any time,
// also after Close.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Durable returns the sequence number of the last segment reported durable,
// and false if none has been yet.
func (s *Sink) Durable() (seq uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.LastDurableSegment, s.stats.HaveDurableSegment
}

var _ chunker.Output = (*Sink)(nil)
