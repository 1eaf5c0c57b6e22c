package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// chunk is an upload that passed checkChunk: its bytes, which the stream's
// source reads when the chunk's turn comes, and what the check learnt.
type chunk struct {
	// body: the stream closes it once fed, or once the stream object is
	// gone if kept (the request that brought it got its 2xx; until then
	// the request closes it on an error)
	body    *upload
	kept    atomic.Bool
	audio   *source.AudioInfo // its AAC track, nil without
	ignored []string          // audio codecs not recorded
	sum     digest            // of the upload: a retry must be the same bytes
}

// journaledChunk stands for a chunk that waits in the store's journal
// only, with no bytes here: drain reads it back (and checks it again)
// when its turn comes.
func journaledChunk(sum digest) *chunk {
	u := &upload{}
	u.close()
	return &chunk{body: u, sum: sum}
}

// checkChunk reads a whole uploaded chunk, audio included, as the stream's
// source will read it, and refuses what the stream would fail on in the
// middle of it, so that a bad upload changes nothing: not an MP4, no
// pictures, samples that cannot be read, access units, parameter sets or
// audio frames the chunker refuses, decode times that do not increase;
// and what is over the limits: more samples than lim.samples
// (ErrTooLarge), a stretch without a picture a segment may start at
// longer than the limits (ErrRareKeyframes, see keyframeWatch). Other
// errors wrap ErrInvalidChunk and what the reader found. The chunk keeps u; the caller closes it on an error.
func checkChunk(u *upload, lim chunkLimits) (*chunk, error) {
	bad := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalidChunk, err) }
	if u.size == 0 {
		return nil, bad(errors.New("empty body"))
	}
	var head [16]byte
	n, _ := u.reader().ReadAt(head[:], 0)
	if source.Sniff(head[:n]) != source.FormatMP4 {
		return nil, bad(errors.New("not an MP4 file (a chunk is a self-contained MP4 with its own moov)"))
	}
	src, err := source.NewMP4(u.reader(), source.Options{})
	if err != nil {
		return nil, bad(err)
	}
	info := src.Info()
	if len(info.SPS) > 0 || len(info.PPS) > 0 {
		// The chunker would refuse them when the chunk starts the stream
		// (or the stream's parameter sets change to them).
		if err := chunker.CheckParameterSets(info.SPS, info.PPS); err != nil {
			return nil, bad(err)
		}
	}
	keys := newKeyframeWatch(lim, info.Timescale)
	pictures, samples, lastDTS := 0, 0, int64(0)
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bad(err)
		}
		if samples++; samples > lim.samples {
			return nil, fmt.Errorf("%w: more than %d samples in one chunk", ErrTooLarge, lim.samples)
		}
		if err := keys.see(p); err != nil {
			return nil, err
		}
		if p.Kind == source.KindAudio {
			// The stream reads only AAC it takes; what it would refuse
			// is refused here, whichever track the stream has.
			if info.Audio != nil {
				if err := chunker.CheckAudioFrame(p.Audio.Data); err != nil {
					return nil, bad(err)
				}
			}
			continue
		}
		v := p.Video
		if err := chunker.CheckAccessUnit(v.NALUs, info.SPS, info.PPS); err != nil {
			return nil, bad(fmt.Errorf("sample %d: %w", pictures, err))
		}
		if pictures > 0 && v.DTS <= lastDTS {
			return nil, bad(fmt.Errorf("%w: sample %d: DTS %d after %d", chunker.ErrNonMonotonicDTS, pictures, v.DTS, lastDTS))
		}
		pictures, lastDTS = pictures+1, v.DTS
	}
	if pictures == 0 {
		return nil, bad(errors.New("chunk holds no video samples"))
	}
	if err := keys.end(); err != nil {
		return nil, err
	}
	return &chunk{body: u, audio: info.Audio, ignored: info.IgnoredAudio, sum: u.sum}, nil
}

// stream is one stream being recorded by this server.
//
// Chunks go through an ordering window (pending, next): each one is fed,
// in order, to src, the source.Chunks that joins the chunks into one
// timeline, whose packets go into the pipeline as a pushed stream's do.
// The server writes no joining of its own.
//
// What the stream has acknowledged is in the bucket before the answer
// (see addChunk): the stream's state (stateStore) and its segments. A
// stream object is this node's copy of it, made from the bucket when the
// node takes the stream (load) and dropped whenever it may differ from
// what the bucket holds (a failure, another node's takeover): the next
// request makes a new one from the bucket.
type stream struct {
	srv  *Server
	name string

	mu sync.Mutex
	// loaded: this node holds the stream's lease until lease, with state
	// version version (the last it created); gone: the object is dropped
	// (errGone to whoever still holds it).
	loaded  bool
	gone    bool
	version uint64
	lease   time.Time
	mode    string // modeChunks or modePush
	// restored: the stream had a state in the bucket when this node took
	// it (it is not new)
	restored bool
	active   time.Time // the last input
	made     []made    // state versions created here and not deleted yet

	p         *livechunk.Pipeline
	src       *source.Chunks    // the chunks fed so far, joined
	feed      []*chunk          // chunks handed to src, not opened by it yet
	audio     *source.AudioInfo // the stream's audio track (from its first chunk), nil without
	next      uint64
	pending   map[uint64]*chunk
	journaled map[uint64]digest // chunks written to the bucket while they waited
	sums      map[uint64]digest // of the recent chunks accepted, for retries
	received  uint64
	missing   []span // chunk numbers given up (the last maxGaps gaps)
	forgotten uint64 // below it, chunk numbers not known to be given up or recorded
	state     string // "live", "stitching", "ended": set with setState
	// counts: state is "live" and the object not gone (it takes one of
	// MaxStreams places); read without mu, by getStream, which holds the
	// server's lock (that lock is never held while waiting for mu)
	counts  atomic.Bool
	pushing func() // stops the pushed body
	suspend bool   // the push stops for a shutdown: suspend the stream, do not end it
}

// span is an inclusive range of chunk numbers.
type span [2]uint64

func newStream(s *Server, name string) *stream {
	st := &stream{srv: s, name: name, pending: map[uint64]*chunk{}, journaled: map[uint64]digest{},
		sums: map[uint64]digest{}}
	st.setState("live")
	return st
}

// setState sets the stream's state; st.mu is held.
func (st *stream) setState(state string) {
	st.state = state
	st.counts.Store(state == "live" && !st.gone)
}

// setGone marks the object dropped; st.mu is held.
func (st *stream) setGone() {
	st.gone = true
	st.counts.Store(false)
	// The chunks not opened yet (those that wait hold no bytes once
	// acknowledged, see persist): the next stream object reads them back
	// from the journal.
	for _, c := range st.feed {
		if c.kept.Load() {
			c.body.close()
		}
	}
}

// errGone: the stream object was dropped while a request waited for it;
// the request starts again with the stream as the bucket holds it.
var errGone = errors.New("the stream was reloaded")

// sumWindow is how many chunk numbers before the next one keep their
// digest in the state: a retry of one of them is checked byte for byte.
const sumWindow = 128

// leaseMargin is how long after a lease's end another node waits before it
// takes the stream over: an allowance for the clocks of two nodes and for
// a write the old owner sent just before its lease ended.
const leaseMargin = 2 * time.Second

// endedError is ErrEnded with the digests of the stream's last chunks: a
// retry of one of them is answered duplicate, not refused (the device
// learns that its chunk is in the recording).
type endedError struct{ sums map[uint64]digest }

func (e *endedError) Error() string        { return ErrEnded.Error() }
func (e *endedError) Is(target error) bool { return target == ErrEnded }

// ownedError: another node holds the stream's lease; requests go there.
type ownedError struct {
	owner, url string
	until      time.Time
}

func (e *ownedError) Error() string {
	return fmt.Sprintf("the stream is recorded by node %s until %s", e.owner, e.until.Format(time.RFC3339))
}

// isLive reports whether the stream takes one of MaxStreams places. It
// does not take st.mu.
func (st *stream) isLive() bool { return st.counts.Load() }

func (st *stream) stitching() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.state == "stitching"
}

func (st *stream) describe(in *StreamInfo) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state == "stitching" {
		in.State = "stitching"
	}
	in.Chunks = st.received
	in.setMissing(st.missing)
}

// ChunkResult is the JSON answer to a chunk upload.
type ChunkResult struct {
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// Chunk is the number of the chunk uploaded.
	Chunk uint64 `json:"chunk"`
	// Status is "recorded" (fed to the stream), "buffered" (waiting for an
	// earlier chunk) or "duplicate" (already received with the same bytes;
	// nothing changed). Each one is stored durably before the answer: the
	// device may delete the chunk. A chunk that comes after the stream
	// went on without it (a discontinuity), or again with other bytes, is
	// answered 409 Conflict: it is not recorded.
	Status string `json:"status"`
	// Next is the chunk number the stream waits for; 0 when the stream
	// has ended.
	Next uint64 `json:"next"`
	// Note tells the device about something in its chunk that is not
	// recorded (audio that is not AAC), "" otherwise.
	Note string `json:"note,omitempty"`
}

// own makes sure that this node holds the stream's lease, as a stream of
// mode ("" for any): the first time, it loads the stream from the bucket
// and takes it (see load); later, it renews the lease when half of it has
// passed, so that what follows has time to finish within it. Any error
// leaves the object to be dropped.
func (st *stream) own(ctx context.Context, mode string, takeover bool) error {
	if !st.loaded {
		return st.load(ctx, mode, takeover)
	}
	if mode != "" && st.mode != mode {
		return st.modeError()
	}
	if time.Until(st.lease) < st.srv.cfg.LeaseDuration/2 {
		return st.commit(ctx, false)
	}
	return nil
}

func (st *stream) modeError() error {
	if st.mode == modePush {
		return fmt.Errorf("%w: it is recorded from a pushed stream", ErrBusy)
	}
	return fmt.Errorf("%w: it is recorded from chunk uploads", ErrBusy)
}

// load reads the stream's state from the bucket and takes the stream:
// this node creates the next state version as its owner. A stream whose
// lease another node holds is an *ownedError (unless takeover: that node
// is known to be gone); one that ended, ErrEnded; with mode "", a stream
// that does not exist, ErrNoStream. Chunks that waited are read back,
// and the recording goes on where the state says (no discontinuity).
func (st *stream) load(ctx context.Context, mode string, takeover bool) error {
	s := st.srv
	saved, v, err := s.store.latest(ctx, st.name)
	if err != nil {
		return err
	}
	switch {
	case v == 0 && s.ended(ctx, st.name):
		return ErrEnded // a recording made before ingest state
	case v == 0 && mode == "":
		return fmt.Errorf("%w %q", ErrNoStream, st.name)
	case v == 0:
		st.mode = mode
	case saved.Ended:
		return &endedError{sums: saved.Sums}
	case saved.Owner != s.cfg.NodeID && !takeover && saved.held(time.Now()):
		return &ownedError{owner: saved.Owner, url: saved.OwnerURL, until: saved.LeaseUntil}
	default:
		st.restored = true
		st.mode, st.active = saved.Mode, saved.Active
		if mode != "" && st.mode != mode {
			return st.modeError()
		}
		st.next, st.received, st.missing, st.forgotten = saved.Next, saved.Received, saved.Missing, saved.Forgotten
		maps.Copy(st.sums, saved.Sums)
	}
	// The stream as the state has it, then the claim: the next version,
	// which carries it over.
	for _, n := range saved.Pending {
		c := journaledChunk(saved.Sums[n])
		st.pending[n], st.journaled[n] = c, c.sum
	}
	if saved.Source != nil && saved.Chunker != nil {
		src := source.ResumeChunks(st.nextChunk, *saved.Source, source.Options{Logger: s.cfg.Logger})
		p, err := s.newPipeline(ctx, st.name, src.Info(), saved.Chunker, false, true)
		if err != nil {
			return err
		}
		st.src, st.p, st.audio = src, p, src.Info().Audio
	}
	st.version = v
	if err := st.commit(ctx, false); err != nil {
		return err
	}
	st.loaded = true
	if claim := st.version; v > 0 {
		// What earlier owners left (their old versions).
		s.background(func(ctx context.Context) { s.store.prune(ctx, st.name, claim, s.cfg.LeaseDuration) })
	}
	if v > 0 {
		s.cfg.Logger.Info("stream taken over from the bucket", "stream", st.name, "version", v, "from", saved.Owner,
			"next_chunk", st.next, "waiting", len(st.pending))
	}
	return nil
}

// commit creates the next version of the stream's state from this object:
// the lease renewed (or, with release, given up at once), where the
// recording stands, the chunks that wait. It fails with errStale when
// another node took the stream over. Called between chunks only: the
// pipeline is flushed.
func (st *stream) commit(ctx context.Context, release bool) error {
	s := st.srv
	now := time.Now()
	saved := ingestState{
		Owner: s.cfg.NodeID, OwnerURL: s.ownerURL, LeaseUntil: now.Add(s.cfg.LeaseDuration),
		Mode: st.mode, Active: st.active, Ended: st.state != "live", Done: st.state == "ended",
		Next: st.next, Received: st.received, Missing: st.missing, Forgotten: st.forgotten,
	}
	if release {
		saved.LeaseUntil = time.Time{}
	}
	for k := range st.sums {
		if k+sumWindow < st.next && st.pending[k] == nil {
			delete(st.sums, k)
		}
	}
	saved.Sums = st.sums
	for n := range st.pending {
		saved.Pending = append(saved.Pending, n)
	}
	slices.Sort(saved.Pending)
	if st.src != nil && st.mode == modeChunks {
		ss, err := st.src.State()
		if err != nil {
			return err
		}
		cont, err := st.p.Continuation()
		if err != nil {
			return err
		}
		saved.Source, saved.Chunker = &ss, &cont
	}
	if st.loaded && !now.Before(st.lease) {
		// The lease ran out: another node may have the stream by now, and
		// this node's next version may be one it created and deleted since
		// (see ingestDir). The stream is loaded again.
		return fmt.Errorf("%w (the lease ended at %s)", errStale, st.lease.Format(time.RFC3339Nano))
	}
	v := st.version + 1
	if err := s.store.create(ctx, st.name, v, &saved); err != nil {
		return err
	}
	st.version, st.lease = v, saved.LeaseUntil
	s.cfg.Logger.Debug("ingest state stored", "stream", st.name, "version", v, "next_chunk", st.next, "waiting", saved.Pending)
	st.made = append(st.made, made{v, now})
	if old := st.versionsToDelete(now); len(old) > 0 {
		s.background(func(ctx context.Context) {
			for _, v := range old {
				_ = s.store.b.Delete(ctx, s.store.stateKey(st.name, v))
			}
		})
	}
	return nil
}

// made is a state version this node created, and when.
type made struct {
	v  uint64
	at time.Time
}

// versionsToDelete takes from st.made the versions that may be deleted
// now: older than a lease and leaseMargin (see ingestDir), and not among
// the two newest (readers that listed one a moment ago can still read it).
func (st *stream) versionsToDelete(now time.Time) []uint64 {
	var old []uint64
	for len(st.made) > 2 && now.Sub(st.made[0].at) > st.srv.cfg.LeaseDuration+leaseMargin {
		old = append(old, st.made[0].v)
		st.made = st.made[1:]
	}
	return old
}

// stitchLease is the lease the sweep takes to finish a stream whose node
// died while ending it (Server.complete). The node that ends a stream
// itself keeps its usual lease, renewed while it finishes (keepLease).
const stitchLease = 30 * time.Minute

// keepLease renews the lease of an ending stream every third of a lease
// until the returned function is called: while the recording is being
// finished (the VOD stitched, which can take minutes), no other node
// takes it, and if this node dies, another one finishes it within a lease.
func (st *stream) keepLease(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(st.srv.cfg.LeaseDuration / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			st.mu.Lock()
			if !st.gone {
				if err := st.commit(ctx, false); err != nil {
					st.srv.cfg.Logger.Warn("renewing the lease of an ending stream", "stream", st.name, "err", err)
				}
			}
			st.mu.Unlock()
		}
	}()
	return func() { close(done); <-exited }
}

// work returns the context of a stream's writes for a request: not
// cancelled by the client hanging up (what started finishes, and the
// retry finds it done), but ended where this node's lease ends, so that
// no write of a stale owner starts after another node may take over.
func (st *stream) work(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.WithoutCancel(ctx), st.lease)
}

// drop forgets the stream object: its pipeline stops (what it uploaded
// stays; nothing is finished) and the next request reloads the stream
// from the bucket. Called with st.mu held.
func (st *stream) drop() {
	if st.gone {
		return
	}
	st.setGone()
	if st.p != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // uploads not done yet are abandoned: the bucket's state does not count them
		_ = st.p.Abort(ctx)
	}
	st.srv.forget(st)
}

// addChunk takes chunk n into the ordering window and feeds what is in
// order: early chunks wait; a chunk still missing when the window is full
// is given up as a discontinuity. Before it answers, everything it
// accepted is in the bucket: the segments of the chunks fed (the open
// segment is closed at the chunk's end; the next chunk opens a new one),
// the playlist that lists them, the chunks that wait, and the state that
// says so. Any failure drops the stream object: the bucket keeps the
// state before the chunk, and a retry starts from there.
func (st *stream) addChunk(ctx context.Context, n uint64, c *chunk, takeover bool) (ChunkResult, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	res := ChunkResult{Stream: st.name, Chunk: n}
	res.Note = source.AudioNote(c.audio != nil, c.ignored)
	switch {
	case st.gone:
		return res, errGone
	case st.state != "live":
		return res, &endedError{sums: maps.Clone(st.sums)}
	case st.pushing != nil:
		return res, fmt.Errorf("%w: it is being pushed as MPEG-TS", ErrBusy)
	}
	if err := st.own(ctx, modeChunks, takeover); err != nil {
		st.drop()
		return res, err
	}
	if sum, seen := st.sums[n]; seen {
		if sum != c.sum {
			return res, fmt.Errorf("%w: chunk %d was received before with other bytes; the first upload is kept", ErrConflict, n)
		}
		res.Status, res.Next = "duplicate", st.next
		return res, nil
	}
	if n < st.next {
		if st.given(n) {
			// Given up when the reorder window filled: the stream went on
			// after a discontinuity. The device must not take it as stored.
			return res, fmt.Errorf("%w: chunk %d came after the stream went on without it (a discontinuity at its place)", ErrConflict, n)
		}
		if n < st.forgotten {
			return res, fmt.Errorf("%w: chunk %d is older than the stream remembers (it went on after more than %d gaps); it may not be in the recording", ErrConflict, n, maxGaps)
		}
		// Recorded long ago: its digest is no longer kept.
		res.Status, res.Next = "duplicate", st.next
		res.Note = strings.TrimPrefix(res.Note+"; recorded before; too old to compare its bytes", "; ")
		return res, nil
	}
	if note := st.audioNote(c); note != "" {
		res.Note = strings.TrimPrefix(res.Note+"; "+note, "; ")
	}
	st.pending[n] = c
	st.sums[n] = c.sum
	st.received++
	st.active = time.Now()
	wctx, cancel := st.work(ctx)
	defer cancel()
	if err := st.persist(wctx); err != nil {
		st.drop()
		return res, err
	}
	res.Status = "buffered"
	if _, waiting := st.pending[n]; !waiting {
		res.Status = "recorded"
	}
	res.Next = st.next
	return res, nil
}

// persist feeds the chunks that are in order, makes what they produced
// durable, journals the chunks that wait, and creates the state version
// that says so.
func (st *stream) persist(ctx context.Context) error {
	fed, err := st.drain(ctx, false)
	if err != nil {
		return err
	}
	if err := st.settle(ctx, fed); err != nil {
		return err
	}
	for n, c := range st.pending {
		if _, ok := st.journaled[n]; !ok {
			if err := st.srv.store.putChunk(ctx, st.name, n, c.sum, c.body.reader()); err != nil {
				return err
			}
			st.journaled[n] = c.sum
		}
	}
	if err := st.commit(ctx, false); err != nil {
		return err
	}
	st.unjournal()
	// The chunks that wait are in the journal: their bytes here are let
	// go (their memory or spool room too), and read back when their turn
	// comes (drain), so that chunks sent ahead hold no room here while
	// they wait, for as long as the stream idles.
	for _, c := range st.pending {
		c.body.close()
	}
	return nil
}

// settle closes the open segment after chunks were fed and waits until
// it, and every segment before, is durable and listed.
func (st *stream) settle(ctx context.Context, fed int) error {
	if fed == 0 || st.p == nil {
		return nil
	}
	if err := st.p.Flush(ctx); err != nil {
		return err
	}
	return st.p.Wait(ctx)
}

// unjournal deletes the journaled chunks that were fed (the state no
// longer names them), in the background.
func (st *stream) unjournal() {
	for n, sum := range st.journaled {
		if _, waiting := st.pending[n]; !waiting {
			delete(st.journaled, n)
			st.srv.background(func(ctx context.Context) { st.srv.store.deleteChunk(ctx, st.name, n, sum) })
		}
	}
}

// maxGaps bounds the gaps (spans of chunks given up) a stream remembers.
const maxGaps = 256

// given reports whether chunk n was given up.
func (st *stream) given(n uint64) bool {
	for _, sp := range st.missing {
		if sp[0] <= n && n <= sp[1] {
			return true
		}
	}
	return false
}

// drain feeds pending chunks in order, and returns how many; with flush
// (the stream's end) every gap is given up.
func (st *stream) drain(ctx context.Context, flush bool) (fed int, err error) {
	for len(st.pending) > 0 {
		c, ok := st.pending[st.next]
		if !ok {
			if !flush && st.aheadCount() < st.srv.cfg.ReorderWindow {
				return fed, nil
			}
			// Give the missing chunks up, to the first one that waits:
			// the gap becomes a discontinuity.
			first := slices.Min(slices.Collect(maps.Keys(st.pending)))
			st.missing = append(st.missing, span{st.next, first - 1})
			if k := len(st.missing) - maxGaps; k > 0 {
				// The state, written with every chunk, stays bounded.
				st.forgotten = st.missing[k-1][1] + 1
				st.missing = slices.Clone(st.missing[k:])
			}
			st.srv.cfg.Logger.Warn("chunks missing; continuing after a discontinuity", "stream", st.name, "from", st.next, "to", first-1)
			if st.p != nil {
				if err := st.p.Break(ctx); err != nil {
					return fed, err
				}
			}
			st.next = first
			continue
		}
		if c.body.isClosed() {
			// It waited in the journal only (see journaledChunk).
			back, err := st.srv.store.getChunk(ctx, &st.srv.spool, st.srv.limits(), st.name, st.next, c.sum)
			if err != nil {
				return fed, err
			}
			back.kept.Store(true)
			c = back
		}
		delete(st.pending, st.next)
		st.next++
		fed++
		if err := st.feedChunk(ctx, c); err != nil {
			return fed, err
		}
	}
	return fed, nil
}

func (st *stream) aheadCount() int {
	n := 0
	for k := range st.pending {
		if k > st.next {
			n++
		}
	}
	return n
}

// audioNote tells why a chunk's AAC audio will not be recorded, when the
// stream's audio is known: the stream has none (its first chunk had
// none), or the chunk's configuration differs from the stream's (a
// microphone that changed the sample rate or channels): its frames cannot
// go into the stream's track, whose init section says otherwise.
func (st *stream) audioNote(c *chunk) string {
	switch {
	case st.p == nil || c.audio == nil || st.takesAudio(c):
		return ""
	case st.audio == nil:
		return "the chunk's audio is not recorded: the stream has no audio track (its first chunk had none)"
	}
	return fmt.Sprintf("the chunk's audio is not recorded: it is %s, the stream's audio track %s", audioDesc(c.audio), audioDesc(st.audio))
}

// takesAudio reports whether the stream's audio track takes the chunk's
// AAC frames: both have one, of the same configuration.
func (st *stream) takesAudio(c *chunk) bool {
	return st.audio != nil && c.audio != nil && bytes.Equal(c.audio.ASC, st.audio.ASC)
}

// audioDesc describes an AAC configuration for a note ("none" for nil).
func audioDesc(a *source.AudioInfo) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("%s at %d Hz, %d channels", a.Codec, a.SampleRate, a.Channels)
}

// feedChunk hands the next chunk in order to the stream's source and writes
// everything the source then yields into the pipeline (the first chunk
// starts both).
func (st *stream) feedChunk(ctx context.Context, c *chunk) error {
	if c.audio != nil && st.p != nil && !st.takesAudio(c) {
		// Said in the chunk's answer when the stream's audio was known
		// then (audioNote); a chunk that waited for an earlier one learns
		// it only here.
		st.srv.cfg.Logger.Warn("a chunk's audio is not recorded: it does not match the stream's audio track", "stream", st.name,
			"chunk", audioDesc(c.audio), "stream_audio", audioDesc(st.audio))
	}
	st.feed = append(st.feed, c)
	if st.src == nil {
		src, err := source.NewChunks(st.nextChunk, source.Options{Logger: st.srv.cfg.Logger})
		if err != nil {
			return err
		}
		// A stream whose state says nothing was fed: what a crash left
		// under its prefix is overwritten, under the same names. (With no
		// state, a recording there is older: it is resumed.)
		p, err := st.srv.newPipeline(ctx, st.name, src.Info(), nil, st.restored, true)
		if err != nil {
			return err
		}
		st.src, st.p, st.audio = src, p, src.Info().Audio
	}
	for {
		pk, err := st.src.NextPacket()
		if errors.Is(err, source.ErrPending) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.p.WritePacket(ctx, pk); err != nil {
			return err
		}
	}
}

// nextChunk is the open function of the stream's source.Chunks: the
// chunks fed in order, then source.ErrPending until the next one is.
func (st *stream) nextChunk(int) (io.Reader, error) {
	if len(st.feed) == 0 {
		return nil, source.ErrPending
	}
	c := st.feed[0]
	st.feed = st.feed[1:]
	return newClosingReader(c.body), nil
}

// PushResult is the JSON answer when a pushed body ends. What arrived
// before is recorded, whatever the Status.
type PushResult struct {
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// Samples is the number of video samples of the body written to the
	// stream (those before its first keyframe included, which no segment
	// holds).
	Samples int64 `json:"samples"`
	// Status is "ended" when the body ended: the stream has ended. It is
	// "suspended" when a shutdown of the server stopped the body, and
	// "suspended after an input error: " followed by the error when the
	// body broke, sent nothing for Config.PushIdleTimeout, or held what
	// the stream cannot take (a sample the recording refuses, or more
	// than Config.MaxKeyframeInterval, MaxSegmentBytes or MaxChunkSamples
	// without a picture a segment may start at). A suspended stream stays
	// live: a new push of it within Config.IdleTimeout continues it after
	// a discontinuity.
	Status string `json:"status"`
}

// idleReader extends the connection's read deadline while data flows, and
// ends the body early (as io.EOF) once stopped.
type idleReader struct {
	r       io.Reader
	rc      *http.ResponseController
	idle    time.Duration
	mu      sync.Mutex
	stopped bool
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.mu.Lock()
	if ir.stopped {
		ir.mu.Unlock()
		return 0, io.EOF
	}
	_ = ir.rc.SetReadDeadline(time.Now().Add(ir.idle))
	ir.mu.Unlock()
	n, err := ir.r.Read(p)
	ir.mu.Lock()
	if ir.stopped {
		err = io.EOF
	}
	ir.mu.Unlock()
	return n, err
}

// stop makes a blocked Read return at once and later ones return io.EOF.
func (ir *idleReader) stop() {
	ir.mu.Lock()
	ir.stopped = true
	_ = ir.rc.SetReadDeadline(time.Now())
	ir.mu.Unlock()
}

// push records an MPEG-TS (or raw H.264) request body as it streams in.
// A body that ends cleanly ends the stream; one that breaks, stalls for
// Config.PushIdleTimeout or is stopped by a shutdown suspends it: a new
// push of the same name within Config.IdleTimeout continues it (after a
// discontinuity).
func (st *stream) push(ctx context.Context, w http.ResponseWriter, r *http.Request) (PushResult, error) {
	// Writes are not tied to the request: a client that hangs up, or a
	// server shutdown, ends the body, and what arrived is still recorded.
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: st.srv.cfg.PushIdleTimeout}
	return st.record(context.WithoutCancel(ctx), false, body.stop, func() (source.Source, error) {
		return source.NewReader(body, source.Options{FrameRate: 30, Logger: st.srv.cfg.Logger})
	})
}

// openGuarded calls open, turning a panic of a parser into an error: a
// pushed body must not leave the stream marked as being pushed.
func openGuarded(open func() (source.Source, error)) (src source.Source, err error) {
	defer func() {
		if r := recover(); r != nil {
			src, err = nil, fmt.Errorf("%w: reading the start of the stream: %v", source.ErrInvalid, r)
		}
	}()
	return open()
}

// record writes every sample of the source that open returns into the
// stream. stop, called from another goroutine, must make the source end
// soon. The end of the source ends the stream, and so does a shutdown for
// an in-process source; otherwise a broken source or a shutdown suspends
// it (see push).
func (st *stream) record(ctx context.Context, inProcess bool, stop func(), open func() (source.Source, error)) (PushResult, error) {
	res := PushResult{Stream: st.name}
	st.mu.Lock()
	switch {
	case st.gone:
		st.mu.Unlock()
		return res, errGone
	case st.state != "live" || st.pushing != nil || st.p != nil:
		st.mu.Unlock()
		return res, fmt.Errorf("%w: it is already being recorded", ErrBusy)
	}
	if err := st.own(ctx, modePush, false); err != nil {
		st.drop()
		st.mu.Unlock()
		if o := (*ownedError)(nil); errors.As(err, &o) {
			err = fmt.Errorf("%w: %w", ErrBusy, err) // pushed to another node
		}
		return res, err
	}
	fresh := st.version == 1
	st.pushing, st.active = stop, time.Now()
	st.mu.Unlock()
	src, err := openGuarded(open)
	var p *livechunk.Pipeline
	if err == nil {
		p, err = st.srv.newPipeline(ctx, st.name, src.Info(), nil, false, false)
	}
	if err != nil {
		st.mu.Lock()
		st.pushing = nil
		st.abandon(ctx, fresh)
		st.mu.Unlock()
		return res, err // chunker.ErrBadParameterSets: the stream's own parameter sets
	}
	st.mu.Lock()
	st.p = p
	st.mu.Unlock()
	var readErr error
	keys := newKeyframeWatch(st.srv.limits(), src.Info().Timescale)
	segments := int64(0)
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if err := p.WritePacket(ctx, pk); err != nil {
			readErr = err
			break
		}
		if !src.Info().NoVideo {
			if n := p.Stats().Chunker.Segments; n != segments {
				segments = n
				keys.cut()
			}
			if err := keys.see(pk); err != nil {
				readErr = err
				break
			}
		}
		if pk.Kind == source.KindVideo {
			res.Samples++
		}
		if err := st.renew(ctx); err != nil {
			readErr = err
			break
		}
	}
	st.mu.Lock()
	st.pushing = nil
	suspend := st.suspend && !inProcess || readErr != nil
	st.mu.Unlock()
	if suspend {
		if err := st.pause(ctx); err != nil {
			return res, err
		}
		if readErr != nil {
			st.srv.cfg.Logger.Warn("stream input broke; the stream waits for it to come back", "stream", st.name, "err", readErr)
			res.Status = "suspended after an input error: " + readErr.Error()
		} else {
			res.Status = "suspended"
		}
		return res, nil
	}
	// The end of the input ends the stream; what was recorded stays
	// recorded.
	if err := st.end(ctx); err != nil {
		return res, err
	}
	res.Status = "ended"
	return res, nil
}

// renew renews a pushed stream's lease when half of it has passed (the
// state says the stream is active).
func (st *stream) renew(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if time.Until(st.lease) >= st.srv.cfg.LeaseDuration/2 {
		return nil
	}
	st.active = time.Now()
	return st.commit(ctx, false)
}

// pause suspends a pushed stream whose input stopped: what arrived is
// stored and listed, the playlist stays open, and the lease is given up,
// so that the push can come back to any node.
func (st *stream) pause(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		return errGone
	}
	err := st.p.Flush(ctx)
	if err == nil {
		err = st.p.Wait(ctx)
	}
	err = errors.Join(err, st.p.Abort(ctx))
	st.p = nil
	st.active = time.Now()
	if err == nil {
		err = st.commit(ctx, true)
	}
	st.setGone()
	st.srv.forget(st)
	return err
}

// abandon drops a pushed stream whose input was refused before anything
// was recorded: a new stream (fresh) leaves nothing behind, so that a bad
// push neither makes a stream nor holds one of the MaxStreams places.
// Called with st.mu held.
func (st *stream) abandon(ctx context.Context, fresh bool) {
	if fresh {
		_ = st.srv.store.b.Delete(ctx, st.srv.store.stateKey(st.name, st.version))
	} else {
		_ = st.commit(ctx, true)
	}
	st.drop()
}

// stopPush ends a pushed body early, for a shutdown (a pushed stream is
// then suspended, an in-process one ended); it reports whether one was
// running.
func (st *stream) stopPush() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pushing != nil {
		st.suspend = true
		st.pushing()
		return true
	}
	return false
}

// pauseChunks suspends a chunk stream for a shutdown: everything
// acknowledged is stored already; the lease is given up so that the next
// node (or this one restarted) takes the stream at once.
func (st *stream) pauseChunks(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone || st.state != "live" || !st.loaded {
		return nil
	}
	if !time.Now().Before(st.lease) {
		// The lease ran out (an idle stream): the stored state is this
		// node's last, and any node may take the stream from it.
		st.drop()
		return nil
	}
	err := st.commit(ctx, true)
	st.drop()
	return err
}

// end finishes the stream: pending chunks are fed (gaps given up), the
// pipeline closes (EXT-X-ENDLIST), and the VOD file is stitched in the
// background. The state says the stream ended before the playlist does:
// a node that dies in between leaves the rest to Server's sweep.
func (st *stream) end(ctx context.Context) error {
	st.mu.Lock()
	switch {
	case st.gone:
		st.mu.Unlock()
		return errGone
	case st.state != "live":
		st.mu.Unlock()
		return nil
	case st.pushing != nil:
		st.mu.Unlock()
		return fmt.Errorf("%w: it is being pushed; it ends with its body", ErrBusy)
	}
	if err := st.own(ctx, "", false); err != nil {
		st.drop()
		st.mu.Unlock()
		return err
	}
	wctx, cancel := st.work(ctx)
	defer cancel()
	fed, err := st.drain(wctx, true)
	if err == nil {
		err = st.settle(wctx, fed)
	}
	if err == nil && st.p == nil && st.received == 0 && st.version == 1 {
		// Nothing was ever recorded: no stream is left behind.
		st.abandon(wctx, true)
		st.mu.Unlock()
		return nil
	}
	recorded := st.p != nil
	if err == nil {
		// Ended, not done: if this node dies now, the sweep of any node
		// finishes the recording (Server.complete).
		st.setState("stitching")
		err = st.commit(wctx, false)
	}
	if err != nil {
		st.setState("live")
		st.drop()
		st.mu.Unlock()
		return err
	}
	st.unjournal()
	if recorded {
		err = st.p.Close(wctx)
	}
	st.mu.Unlock()
	if err != nil {
		st.finished(ctx, err)
		return err
	}
	if recorded && st.srv.cfg.Stitch == nil {
		st.finished(ctx, nil)
		return nil
	}
	st.srv.wg.Add(1)
	go func() {
		defer st.srv.wg.Done()
		// Without its pipeline here (a suspended push), the playlist is
		// finished from the bucket.
		stop := st.keepLease(context.WithoutCancel(ctx))
		err := st.srv.finishRecording(st.srv.finishing, st.name, !recorded)
		stop()
		st.finished(ctx, err)
	}()
	return nil
}

// finished records that the ended stream is done (or, after err, that it
// still needs finishing: its lease is given up, and the sweep of any node
// finishes it) and forgets it.
func (st *stream) finished(ctx context.Context, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case err != nil && st.srv.finishing.Err() != nil:
		st.srv.cfg.Logger.Info("shutting down: finishing the ended stream is handed over", "stream", st.name)
	case err != nil:
		st.srv.cfg.Logger.Error("finishing an ended stream failed; it is tried again later", "stream", st.name, "err", err)
	default:
		st.setState("ended")
	}
	if !st.gone {
		if err := st.commit(context.WithoutCancel(ctx), true); err != nil {
			st.srv.cfg.Logger.Warn("recording the end of a stream", "stream", st.name, "err", err)
		}
	}
	st.setGone()
	st.srv.forget(st)
}
