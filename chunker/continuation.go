package chunker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/livechunk/livechunk/internal/mpegts"
)

// Continuation is where a Chunker stands between two segments: the init
// section in force, the next sequence numbers, and the state of the output
// timeline of both tracks. A Chunker made with it (Config.Continue) goes on
// exactly where the one it came from stopped: the same init section (not
// emitted again), the next segment numbers, and output times that
// continue with no discontinuity, as if the stream had never stopped. A
// server that restarts, or another process that takes a stream over,
// continues it this way.
//
// It marshals to JSON (and back) so that it can be stored; its contents
// are not a stable format across versions of livechunk.
type Continuation struct{ s continuationState }

type continuationState struct {
	NextSequence     uint64 `json:"next_sequence"`
	NextInitSequence uint64 `json:"next_init_sequence"`
	Init             *Init  `json:"init,omitempty"`

	Offset    int64 `json:"offset"`
	DTSShift  int64 `json:"dts_shift"`
	ShiftSet  bool  `json:"shift_set,omitempty"`
	Placed    bool  `json:"placed,omitempty"`
	LastIn    int64 `json:"last_in"`
	LastOut   int64 `json:"last_out"`
	LastDur   int64 `json:"last_dur"`
	ClosedDur int64 `json:"closed_dur"`
	Reorder   int64 `json:"reorder"`
	Discont   bool  `json:"discontinuity,omitempty"`
	Segments  int64 `json:"segments"`

	Audio *audioContinuation `json:"audio,omitempty"`
	// TS is the MPEG-TS muxer's counters (continuity counters run on
	// from segment to segment).
	TS *mpegts.MuxState `json:"ts,omitempty"`
}

type audioContinuation struct {
	Off     int64 `json:"off"`
	OffFrom int64 `json:"off_from"`
	OffSet  bool  `json:"off_set,omitempty"`
	HaveOut bool  `json:"have_out,omitempty"`
	LastOut int64 `json:"last_out"`
	LastDur int64 `json:"last_dur"`
	HaveIn  bool  `json:"have_in,omitempty"`
	LastIn  int64 `json:"last_in"`
}

// MarshalJSON implements json.Marshaler.
func (c Continuation) MarshalJSON() ([]byte, error) { return json.Marshal(c.s) }

// UnmarshalJSON implements json.Unmarshaler.
func (c *Continuation) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &c.s) }

// NextSequence returns the sequence number of the next segment.
func (c Continuation) NextSequence() uint64 { return c.s.NextSequence }

// NextInitSequence returns the sequence number of the next init section.
func (c Continuation) NextInitSequence() uint64 { return c.s.NextInitSequence }

// ErrNotBetweenSegments is returned by Continuation while a segment is open
// or a cut waits for audio: call Flush first.
var ErrNotBetweenSegments = errors.New("chunker: not between segments (Flush first)")

// Continuation returns where the chunker stands, for a Chunker that goes
// on from here (Config.Continue). It is valid between segments only: after
// Flush (or Break), before the next Write; otherwise the error is
// ErrNotBetweenSegments. Audio still waiting for the video is not part of
// it: Flush puts it into the segment it closes.
func (k *chunker) Continuation() (Continuation, error) {
	if k.seg.open || k.cut.pending || k.aud != nil && k.aud.head < len(k.aud.queue) {
		return Continuation{}, ErrNotBetweenSegments
	}
	if k.cfg.WrapBits != 0 {
		return Continuation{}, fmt.Errorf("%w: no continuation of timestamps that wrap", ErrInvalidConfig)
	}
	c := &k.clk
	s := continuationState{
		NextSequence: k.seg.seq, NextInitSequence: k.par.nextInit,
		Offset: c.offset, DTSShift: c.dtsShift, ShiftSet: c.shiftSet, Placed: c.have,
		LastIn: c.lastIn, LastOut: c.lastOut, LastDur: c.lastDur, ClosedDur: c.closedDur, Reorder: c.reorder,
		Discont: k.seg.discont, Segments: k.stats.Segments,
	}
	if k.par.initSent {
		in := *k.par.init
		in.Data = nil // made again from the parameter sets
		s.Init = &in
	}
	if w, ok := k.c.(*tsWriter); ok {
		st := w.mux.State()
		s.TS = &st
	}
	if a := k.aud; a != nil {
		s.Audio = &audioContinuation{Off: a.off, OffFrom: a.offFrom, OffSet: a.offSet, HaveOut: a.haveOut,
			LastOut: a.lastOut, LastDur: a.lastDur, HaveIn: a.haveIn, LastIn: a.lastIn}
	}
	return Continuation{s}, nil
}

// resume sets up the chunker from a continuation (see Config.Continue).
func (k *chunker) resume(cont *Continuation) error {
	s := cont.s
	if k.cfg.WrapBits != 0 {
		return fmt.Errorf("%w: no continuation of timestamps that wrap", ErrInvalidConfig)
	}
	k.seg.seq, k.par.nextInit, k.seg.discont = s.NextSequence, s.NextInitSequence, s.Discont
	k.clk.offset, k.clk.dtsShift, k.clk.shiftSet, k.clk.have = s.Offset, s.DTSShift, s.ShiftSet, s.Placed
	k.clk.lastIn, k.clk.lastOut, k.clk.lastDur, k.clk.closedDur, k.clk.reorder = s.LastIn, s.LastOut, s.LastDur, s.ClosedDur, s.Reorder
	// Segments already made count for Break (a discontinuity needs a
	// segment before it).
	k.stats.Segments = s.Segments
	if in := s.Init; in != nil {
		if in.Codec != "" { // a video track
			ps, err := parseParamSets(in.SPS, in.PPS)
			if err != nil {
				return err
			}
			k.par.ps = ps
		}
		data, err := k.c.makeInit(k.par.ps)
		if err != nil {
			return err
		}
		init := *in
		init.Data = data
		init.ASC = bytes.Clone(in.ASC)
		if ps := k.par.ps; ps != nil && in.Codec != "" {
			init.SPS, init.PPS = ps.sps, ps.pps // copies
		}
		k.par.init, k.par.initSent = &init, true
	}
	if w, ok := k.c.(*tsWriter); ok && s.TS != nil {
		w.mux.SetState(*s.TS)
	}
	if a, sa := k.aud, s.Audio; a != nil && sa != nil {
		a.off, a.offFrom, a.offSet, a.haveOut = sa.Off, sa.OffFrom, sa.OffSet, sa.HaveOut
		a.lastOut, a.lastDur, a.haveIn, a.lastIn = sa.LastOut, sa.LastDur, sa.HaveIn, sa.LastIn
	}
	return nil
}
