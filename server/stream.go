package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// chunk is an upload that passed checkChunk: its bytes, which the stream's
// source reads when the chunk's turn comes, and what the check learnt.
type chunk struct {
	body    []byte
	audio   *source.AudioInfo // its AAC track, nil without
	ignored []string          // audio codecs not recorded
	sum     [sha256.Size]byte // of the upload: a retry must be the same bytes
}

// checkChunk reads a whole uploaded chunk, audio included, as the stream's
// source will read it, and refuses what the stream would fail on in the
// middle of it, so that a bad upload changes nothing: not an MP4, no
// pictures, samples that cannot be read, access units, parameter sets or
// audio frames the chunker refuses, decode times that do not increase.
// The error wraps ErrInvalidChunk and what the reader found.
func checkChunk(body []byte) (*chunk, error) {
	bad := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalidChunk, err) }
	if len(body) == 0 {
		return nil, bad(errors.New("empty body"))
	}
	if source.Sniff(body) != source.FormatMP4 {
		return nil, bad(errors.New("not an MP4 file (a chunk is a self-contained MP4 with its own moov)"))
	}
	src, err := source.NewMP4(bytes.NewReader(body), source.Options{})
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
	pictures, lastDTS := 0, int64(0)
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bad(err)
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
	return &chunk{body: body, audio: info.Audio, ignored: info.IgnoredAudio, sum: sha256.Sum256(body)}, nil
}

// stream is one stream being recorded by this server.
//
// Chunks go through an ordering window (pending, next): each one is fed,
// in order, to src, the source.Chunks that joins the chunks into one
// timeline, whose packets go into the pipeline as a pushed stream's do.
// The server writes no joining of its own.
type stream struct {
	srv  *Server
	name string

	mu       sync.Mutex
	p        *livechunk.Pipeline
	src      *source.Chunks    // the chunks fed so far, joined
	feed     []*chunk          // chunks handed to src, not opened by it yet
	audio    *source.AudioInfo // the stream's audio track (from its first chunk), nil without
	next     uint64
	pending  map[uint64]*chunk
	sums     map[uint64][sha256.Size]byte // of every chunk accepted, for retries
	received uint64
	missing  []uint64
	state    string // "live", "stitching", "ended"
	pushing  func() // stops the pushed body
	err      error
}

func newStream(s *Server, name string) *stream {
	return &stream{srv: s, name: name, pending: map[uint64]*chunk{}, sums: map[uint64][sha256.Size]byte{}, state: "live"}
}

func (st *stream) active() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.state == "live"
}

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
	in.Missing = append([]uint64(nil), st.missing...)
}

// ChunkResult is the JSON answer to a chunk upload.
type ChunkResult struct {
	Stream string `json:"stream"`
	Chunk  uint64 `json:"chunk"`
	// Status is "recorded" (fed to the stream), "buffered" (waiting for an
	// earlier chunk) or "duplicate" (already received with the same bytes;
	// nothing changed). A chunk that comes after the stream went on
	// without it (a discontinuity), or again with other bytes, is answered
	// 409 Conflict: it is not recorded.
	Status string `json:"status"`
	// Next is the chunk number the stream waits for.
	Next uint64 `json:"next"`
	// Note tells the device about something in its chunk that is not
	// recorded (audio that is not AAC), "" otherwise.
	Note string `json:"note,omitempty"`
}

// addChunk takes chunk n into the ordering window and feeds what is in
// order: early chunks wait; a chunk still missing when the window is full
// is given up as a discontinuity.
func (st *stream) addChunk(ctx context.Context, n uint64, c *chunk) (ChunkResult, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	res := ChunkResult{Stream: st.name, Chunk: n}
	res.Note = source.AudioNote(c.audio != nil, c.ignored)
	switch {
	case st.state != "live":
		return res, ErrEnded
	case st.pushing != nil:
		return res, fmt.Errorf("%w: it is being pushed as MPEG-TS", ErrBusy)
	case st.err != nil:
		return res, fmt.Errorf("the stream failed earlier (%v); it takes no more chunks", st.err)
	}
	if sum, seen := st.sums[n]; seen {
		if sum != c.sum {
			return res, fmt.Errorf("%w: chunk %d was received before with other bytes; the first upload is kept", ErrConflict, n)
		}
		res.Status, res.Next = "duplicate", st.next
		return res, nil
	}
	if n < st.next {
		// Given up when the reorder window filled: the stream went on
		// after a discontinuity. The device must not take it as stored.
		return res, fmt.Errorf("%w: chunk %d came after the stream went on without it (a discontinuity at its place)", ErrConflict, n)
	}
	if note := st.audioNote(c); note != "" {
		res.Note = strings.TrimPrefix(res.Note+"; "+note, "; ")
	}
	st.pending[n] = c
	st.sums[n] = c.sum
	st.received++
	res.Status = "buffered"
	if err := st.drain(ctx, false); err != nil {
		st.err = err
		return res, err
	}
	if _, waiting := st.pending[n]; !waiting {
		res.Status = "recorded"
	}
	res.Next = st.next
	return res, nil
}

// drain feeds pending chunks in order; with flush (the stream's end) every
// gap is given up.
func (st *stream) drain(ctx context.Context, flush bool) error {
	for len(st.pending) > 0 {
		c, ok := st.pending[st.next]
		if !ok {
			if !flush && st.aheadCount() < st.srv.cfg.ReorderWindow {
				return nil
			}
			// Give the missing chunk up: the gap becomes a discontinuity.
			st.missing = append(st.missing, st.next)
			st.srv.cfg.Logger.Warn("chunk missing; continuing after a discontinuity", "stream", st.name, "chunk", st.next)
			if st.p != nil {
				if err := st.p.Break(ctx); err != nil {
					return err
				}
			}
			st.next++
			continue
		}
		delete(st.pending, st.next)
		st.next++
		if err := st.feedChunk(ctx, c); err != nil {
			return err
		}
	}
	return nil
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
		p, err := st.srv.newPipeline(ctx, st.name, src.Info())
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
	return bytes.NewReader(c.body), nil
}

// PushResult is the JSON answer when a pushed body ends.
type PushResult struct {
	Stream  string `json:"stream"`
	Samples int64  `json:"samples"`
	Status  string `json:"status"`
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

// push records an MPEG-TS (or raw H.264) request body as it streams in; the
// stream ends with the body.
func (st *stream) push(ctx context.Context, w http.ResponseWriter, r *http.Request) (PushResult, error) {
	// Writes are not tied to the request: a client that hangs up, or a
	// server shutdown, ends the body, and what arrived is still recorded.
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: st.srv.cfg.PushIdleTimeout}
	return st.record(context.WithoutCancel(ctx), body.stop, func() (source.Source, error) {
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
// stream, then ends the stream. stop, called from another goroutine, must
// make the source end soon.
func (st *stream) record(ctx context.Context, stop func(), open func() (source.Source, error)) (PushResult, error) {
	res := PushResult{Stream: st.name}
	st.mu.Lock()
	if st.state != "live" || st.pushing != nil || st.p != nil {
		st.mu.Unlock()
		return res, fmt.Errorf("%w: it is already being recorded", ErrBusy)
	}
	st.pushing = stop
	st.mu.Unlock()
	release := func() {
		st.mu.Lock()
		st.pushing = nil
		st.mu.Unlock()
	}
	src, err := openGuarded(open)
	if err != nil {
		release()
		st.abandon()
		return res, err
	}
	p, err := st.srv.newPipeline(ctx, st.name, src.Info())
	if err != nil {
		release()
		st.abandon()
		return res, err // chunker.ErrBadParameterSets: the stream's own parameter sets
	}
	st.mu.Lock()
	st.p = p
	st.mu.Unlock()
	var readErr error
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
		if pk.Kind == source.KindVideo {
			res.Samples++
		}
	}
	release()
	// The end of the input (or a broken one) ends the stream; what was
	// recorded stays recorded.
	if err := st.end(ctx); err != nil {
		return res, err
	}
	if readErr != nil {
		st.srv.cfg.Logger.Warn("stream input ended with an error", "stream", st.name, "err", readErr)
		res.Status = "ended after an input error: " + readErr.Error()
		return res, nil
	}
	res.Status = "ended"
	return res, nil
}

// abandon drops a stream whose input was refused before anything was
// recorded, so that a bad push leaves no stream behind (nor holds one of
// the MaxStreams places).
func (st *stream) abandon() {
	st.mu.Lock()
	idle := st.state == "live" && st.p == nil && st.pushing == nil && st.received == 0
	if idle {
		st.state = "ended"
	}
	st.mu.Unlock()
	if idle {
		st.srv.forget(st)
	}
}

// stopPush ends a pushed body early; it reports whether one was running (it
// then ends the stream itself).
func (st *stream) stopPush() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pushing != nil {
		st.pushing()
		return true
	}
	return false
}

// end finishes the stream: pending chunks are fed (gaps given up), the
// pipeline closes (EXT-X-ENDLIST), and the VOD file is stitched in the
// background.
func (st *stream) end(ctx context.Context) error {
	st.mu.Lock()
	if st.state != "live" {
		st.mu.Unlock()
		return nil
	}
	if st.pushing != nil {
		st.mu.Unlock()
		return fmt.Errorf("%w: it is being pushed; it ends with its body", ErrBusy)
	}
	err := st.drain(ctx, true)
	if st.p != nil {
		err = errors.Join(err, st.p.Close(ctx))
	}
	recorded := st.p != nil
	st.state = "ended"
	if recorded && st.srv.cfg.Stitch != nil {
		st.state = "stitching"
	}
	st.mu.Unlock()
	if !recorded || st.srv.cfg.Stitch == nil {
		st.srv.forget(st)
	} else {
		st.srv.wg.Add(1)
		go func() {
			defer st.srv.wg.Done()
			prefix := st.srv.streamPrefix(st.name)
			serr := st.srv.cfg.Stitch(context.WithoutCancel(ctx), st.srv.cfg.Bucket, prefix+"index.m3u8", prefix+"vod.mp4")
			if serr != nil {
				st.srv.cfg.Logger.Error("stitching failed", "stream", st.name, "err", serr)
			}
			st.mu.Lock()
			st.state = "ended"
			st.mu.Unlock()
			st.srv.forget(st)
		}()
	}
	return err
}
