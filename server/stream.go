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

// chunk is one parsed upload: its samples on its own timeline.
type chunk struct {
	samples   []chunker.Sample
	audio     []chunker.AudioSample
	isAudio   []bool // packet order: true for the next audio frame, false for the next sample
	timescale uint32
	sps, pps  [][]byte
	matrix    [9]int32
	ainfo     *source.AudioInfo
	bitrate   int64    // the chunk's own average bit rate
	ignored   []string // audio codecs not recorded
	span      int64    // first DTS to end of the last sample, in timescale ticks
	// aStart and aEnd are where the chunk's audio starts and ends, in
	// timescale ticks (its first frame's PTS, its last frame's end), when
	// it has audio; vStart is its first picture's presentation time.
	aStart, aEnd, vStart int64
	bytes                int
	sum                  [sha256.Size]byte // of the upload: a retry must be the same bytes
}

// parseChunk reads a whole self-contained MP4 chunk. The samples alias one
// copy of the payloads.
func parseChunk(body []byte) (*chunk, int, error) {
	if len(body) == 0 {
		return nil, http.StatusBadRequest, errors.New("empty body")
	}
	if source.Sniff(body) != source.FormatMP4 {
		return nil, http.StatusBadRequest, errors.New("not an MP4 file (a chunk is a self-contained MP4 with its own moov)")
	}
	src, err := source.NewMP4(bytes.NewReader(body), source.Options{})
	if err != nil {
		return nil, statusFor(err), err
	}
	info := src.Info()
	if len(info.SPS) > 0 || len(info.PPS) > 0 {
		// The chunker would refuse them when the chunk starts the stream's
		// recording (or the stream's parameter sets change to them): refuse
		// the chunk now, before the stream depends on it.
		if err := chunker.CheckParameterSets(info.SPS, info.PPS); err != nil {
			return nil, http.StatusBadRequest, err
		}
	}
	c := &chunk{timescale: info.Timescale, sps: info.SPS, pps: info.PPS, matrix: info.Matrix, ainfo: info.Audio,
		bitrate: info.Bitrate, ignored: info.IgnoredAudio, bytes: len(body), sum: sha256.Sum256(body)}
	var payload []byte
	type span struct{ off, n int }
	var spans [][]span
	var aspans []span
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, statusFor(err), err
		}
		if p.Kind == source.KindAudio {
			aspans = append(aspans, span{len(payload), len(p.Audio.Data)})
			payload = append(payload, p.Audio.Data...)
			p.Audio.Data = nil
			c.audio = append(c.audio, p.Audio)
			c.isAudio = append(c.isAudio, true)
			continue
		}
		c.isAudio = append(c.isAudio, false)
		s := p.Video
		if err := checkNALUs(len(c.samples), s.NALUs, c.sps, c.pps); err != nil {
			return nil, http.StatusBadRequest, err
		}
		var sp []span
		for _, n := range s.NALUs {
			sp = append(sp, span{len(payload), len(n)})
			payload = append(payload, n...)
		}
		spans = append(spans, sp)
		s.NALUs = nil
		c.samples = append(c.samples, s)
	}
	if len(c.samples) == 0 {
		return nil, http.StatusBadRequest, errors.New("chunk holds no video samples")
	}
	if err := checkSamples(c.samples); err != nil {
		return nil, http.StatusBadRequest, err
	}
	for i := range c.samples {
		nal := make([][]byte, len(spans[i]))
		for j, sp := range spans[i] {
			nal[j] = payload[sp.off : sp.off+sp.n : sp.off+sp.n]
		}
		c.samples[i].NALUs = nal
	}
	for i, sp := range aspans {
		c.audio[i].Data = payload[sp.off : sp.off+sp.n : sp.off+sp.n]
	}
	first, last := c.samples[0], c.samples[len(c.samples)-1]
	dur := last.Duration
	if dur <= 0 && len(c.samples) > 1 {
		dur = last.DTS - c.samples[len(c.samples)-2].DTS
	}
	c.span = last.DTS - first.DTS + dur
	c.vStart = first.PTS
	for _, s := range c.samples {
		c.vStart = min(c.vStart, s.PTS)
	}
	if n := len(c.audio); n > 0 && c.ainfo != nil && c.ainfo.SampleRate > 0 {
		ats := c.ainfo.Timescale
		c.aStart = rescale(c.audio[0].PTS, ats, c.timescale)
		c.aEnd = rescale(c.audio[n-1].PTS+int64(c.ainfo.FrameSamples)*int64(ats)/int64(c.ainfo.SampleRate), ats, c.timescale)
	}
	return c, 0, nil
}

// extent returns where the chunk starts and ends on its own timeline
// (timescale ticks), with its audio when that is recorded: see
// source.ChunkExtent.
func (c *chunk) extent(withAudio bool) (start, end int64) {
	if !withAudio || c.ainfo == nil || len(c.audio) == 0 || c.ainfo.SampleRate <= 0 {
		return c.samples[0].DTS, c.samples[0].DTS + c.span
	}
	tol := 2 * int64(c.ainfo.FrameSamples) * int64(c.timescale) / int64(c.ainfo.SampleRate)
	return source.ChunkExtent(c.samples[0].DTS, c.span, c.vStart, c.aStart, c.aEnd, tol)
}

// checkSamples refuses, before the stream is touched, decode times that do
// not increase, which the chunker would refuse in the middle of feeding the
// chunk (with checkNALUs, run on each sample as it is read).
func checkSamples(samples []chunker.Sample) error {
	for i := 1; i < len(samples); i++ {
		if samples[i].DTS <= samples[i-1].DTS {
			return fmt.Errorf("%w: sample %d: DTS %d after %d", chunker.ErrNonMonotonicDTS, i, samples[i].DTS, samples[i-1].DTS)
		}
	}
	return nil
}

// checkNALUs refuses what the chunker would refuse in an access unit:
// no NAL units, an empty one, a set forbidden_zero_bit, no coded slice, or
// in-band parameter sets that do not parse (completed by the chunk's own,
// sps and pps, where the access unit has only one kind, as the chunker
// completes them with the stream's).
func checkNALUs(i int, nalus [][]byte, sps, pps [][]byte) error {
	if len(nalus) == 0 {
		return fmt.Errorf("%w: sample %d: empty access unit", chunker.ErrInvalidSample, i)
	}
	vcl := false
	for _, n := range nalus {
		if len(n) == 0 {
			return fmt.Errorf("%w: sample %d: empty NAL unit", chunker.ErrInvalidSample, i)
		}
		if n[0]&0x80 != 0 {
			return fmt.Errorf("%w: sample %d: forbidden_zero_bit set", chunker.ErrInvalidSample, i)
		}
		if t := n[0] & 0x1f; t >= 1 && t <= 5 {
			vcl = true
		}
	}
	if !vcl {
		return fmt.Errorf("%w: sample %d: access unit without a coded slice", chunker.ErrInvalidSample, i)
	}
	var inSPS, inPPS [][]byte
	for _, n := range nalus {
		switch n[0] & 0x1f {
		case 7:
			inSPS = append(inSPS, n)
		case 8:
			inPPS = append(inPPS, n)
		}
	}
	if len(inSPS) == 0 && len(inPPS) == 0 {
		return nil
	}
	if len(inSPS) == 0 {
		inSPS = sps
	}
	if len(inPPS) == 0 {
		inPPS = pps
	}
	if len(inSPS) > 0 && len(inPPS) > 0 {
		if err := chunker.CheckParameterSets(inSPS, inPPS); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

// statusFor maps a source error to an HTTP status.
func statusFor(err error) int {
	if errors.Is(err, source.ErrUnsupported) {
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}

// stream is one stream being recorded by this server.
type stream struct {
	srv  *Server
	name string

	mu        sync.Mutex
	p         *livechunk.Pipeline
	timescale uint32
	audio     *source.AudioInfo // the stream's audio track (from its first chunk), nil without
	offset    int64             // pipeline ticks where the next chunk starts
	haveAudio bool
	lastAudio int64 // PTS of the last audio frame fed, in audio.Timescale ticks
	next      uint64
	pending   map[uint64]*chunk
	sums      map[uint64][sha256.Size]byte // of every chunk accepted, for retries
	received  uint64
	missing   []uint64
	state     string // "live", "stitching", "ended"
	pushing   func() // stops the pushed body
	err       error
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

// addChunk feeds chunk n in order: early chunks wait in a window; a chunk
// still missing when the window is full is given up as a discontinuity.
func (st *stream) addChunk(ctx context.Context, n uint64, c *chunk) (ChunkResult, int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	res := ChunkResult{Stream: st.name, Chunk: n}
	res.Note = source.AudioNote(c.ainfo != nil, c.ignored)
	if st.state != "live" {
		return res, http.StatusConflict, fmt.Errorf("stream has ended")
	}
	if st.pushing != nil {
		return res, http.StatusConflict, fmt.Errorf("stream is being pushed as MPEG-TS")
	}
	if st.err != nil {
		return res, http.StatusInternalServerError, st.err
	}
	if sum, seen := st.sums[n]; seen {
		if sum != c.sum {
			return res, http.StatusConflict, fmt.Errorf("chunk %d was received before with other bytes; the first upload is kept", n)
		}
		res.Status, res.Next = "duplicate", st.next
		return res, 0, nil
	}
	if n < st.next {
		// Given up when the reorder window filled: the stream went on
		// after a discontinuity. The device must not take it as stored.
		return res, http.StatusConflict, fmt.Errorf("chunk %d came after the stream went on without it (a discontinuity at its place); it is not recorded", n)
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
		return res, http.StatusInternalServerError, err
	}
	if _, waiting := st.pending[n]; !waiting {
		res.Status = "recorded"
	}
	res.Next = st.next
	return res, 0, nil
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
		if err := st.feed(ctx, c); err != nil {
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
	case st.p == nil || c.ainfo == nil || st.takesAudio(c):
		return ""
	case st.audio == nil:
		return "the chunk's audio is not recorded: the stream has no audio track (its first chunk had none)"
	}
	return fmt.Sprintf("the chunk's audio is not recorded: it is %s, the stream's audio track %s", audioDesc(c.ainfo), audioDesc(st.audio))
}

// takesAudio reports whether the stream's audio track takes the chunk's
// AAC frames: both have one, of the same configuration.
func (st *stream) takesAudio(c *chunk) bool {
	return st.audio != nil && c.ainfo != nil && bytes.Equal(c.ainfo.ASC, st.audio.ASC)
}

// audioDesc describes an AAC configuration for a note ("none" for nil).
func audioDesc(a *source.AudioInfo) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("%s at %d Hz, %d channels", a.Codec, a.SampleRate, a.Channels)
}

// feed writes a chunk's samples, shifted to continue the stream's timeline.
// Its audio frames are shifted by the same time as its video (their
// offset to the video is kept); a frame that would not come after the
// previous chunk's last one (encoder priming overlapping it) is left out.
func (st *stream) feed(ctx context.Context, c *chunk) error {
	if st.p == nil {
		// One timeline: feed makes each chunk continue the one before
		// (a missing chunk is a Break), so a step forward inside a chunk
		// is a pause of the video, not a jump.
		p, err := st.srv.newPipeline(ctx, st.name, source.Info{Timescale: c.timescale, SPS: c.sps, PPS: c.pps,
			Matrix: c.matrix, Audio: c.ainfo, Bitrate: c.bitrate, OneTimeline: true})
		if err != nil {
			return err
		}
		st.p, st.timescale, st.audio = p, c.timescale, c.ainfo
	}
	recordAudio := st.takesAudio(c)
	if c.ainfo != nil && !recordAudio {
		// Said in the chunk's answer when the stream's audio was known
		// then (audioNote); a chunk that waited for an earlier one learns
		// it only here.
		st.srv.cfg.Logger.Warn("a chunk's audio is not recorded: it does not match the stream's audio track", "stream", st.name,
			"chunk", audioDesc(c.ainfo), "stream_audio", audioDesc(st.audio))
	}
	first, end := c.extent(recordAudio)
	conv := func(t int64) int64 { return rescale(t, c.timescale, st.timescale) }
	vi, ai := 0, 0
	for _, isAudio := range c.isAudio {
		if isAudio {
			a := c.audio[ai]
			ai++
			if !recordAudio {
				continue // see audioNote
			}
			ats := st.audio.Timescale
			a.PTS = rescale(st.offset, st.timescale, ats) + rescale(a.PTS, c.ainfo.Timescale, ats) - rescale(first, c.timescale, ats)
			if st.haveAudio && a.PTS <= st.lastAudio {
				continue
			}
			st.haveAudio, st.lastAudio = true, a.PTS
			if err := st.p.WriteAudio(ctx, a); err != nil {
				return err
			}
			continue
		}
		s := c.samples[vi]
		vi++
		s.DTS = st.offset + conv(s.DTS-first)
		s.PTS = st.offset + conv(s.PTS-first)
		s.Duration = conv(s.Duration)
		if err := st.p.Write(ctx, s); err != nil {
			return err
		}
	}
	st.offset += conv(end - first)
	return nil
}

func rescale(t int64, from, to uint32) int64 {
	if from == to || from == 0 {
		return t
	}
	return (t*int64(to) + int64(from)/2) / int64(from)
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
func (st *stream) push(ctx context.Context, w http.ResponseWriter, r *http.Request) (PushResult, int, error) {
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
func (st *stream) record(ctx context.Context, stop func(), open func() (source.Source, error)) (PushResult, int, error) {
	res := PushResult{Stream: st.name}
	st.mu.Lock()
	if st.state != "live" || st.pushing != nil || st.p != nil {
		st.mu.Unlock()
		return res, http.StatusConflict, errors.New("stream is already being recorded")
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
		return res, statusFor(err), err
	}
	info := src.Info()
	p, err := st.srv.newPipeline(ctx, st.name, info)
	if err != nil {
		release()
		st.abandon()
		status := http.StatusInternalServerError
		if errors.Is(err, chunker.ErrBadParameterSets) {
			status = http.StatusBadRequest // the stream's own parameter sets
		}
		return res, status, err
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
		if pk.Kind == source.KindAudio {
			if info.Audio == nil {
				continue
			}
			err = p.WriteAudio(ctx, pk.Audio)
		} else {
			err = p.Write(ctx, pk.Video)
		}
		if err != nil {
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
		return res, http.StatusInternalServerError, err
	}
	if readErr != nil {
		st.srv.cfg.Logger.Warn("stream input ended with an error", "stream", st.name, "err", readErr)
		res.Status = "ended after an input error: " + readErr.Error()
		return res, 0, nil
	}
	res.Status = "ended"
	return res, 0, nil
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
		return errors.New("stream is still being pushed; it ends with its body")
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
