package chunker

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/livechunk/livechunk/internal/timeline"
)

// container writes the samples of one segment at a time in one format.
type container interface {
	// makeInit builds the init section data for the parameter sets (nil
	// for an audio-only stream).
	makeInit(ps *paramSets) ([]byte, error)
	// begin starts a segment whose first video sample has decode time dts.
	begin(seq uint64, buf []byte, dts int64)
	// add writes one sample; its duration is set later with setDuration.
	add(au [][]byte, dts, pts int64, idr bool, ps *paramSets) error
	// setDuration sets the duration of the last added sample.
	setDuration(d int64)
	// addAudio writes one AAC frame at time t (audio timescale ticks) with
	// the nominal frame duration; setAudioDuration changes the duration of
	// the last added frame. The frame's bytes are copied.
	addAudio(frame []byte, t int64) error
	setAudioDuration(d int64)
	// finish closes the segment and returns its bytes (a sub-slice of, or a
	// replacement for, the buffer given to begin) and the buffer to recycle.
	finish() (data, full []byte, err error)
}

// chunker is the Chunker implementation shared by both formats. Its state
// is grouped by concern: the parameter sets (par), the video's timeline
// (clk), the open segment (seg), the audio track (aud) and a cut that
// waits for the audio (cut).
type chunker struct {
	rate rateCheck

	// smu guards shown: the counters as of the last call that returned,
	// for Stats from any goroutine (stats changes in the hot path, with no
	// lock)
	smu   sync.Mutex
	shown Stats

	cfg  Config
	out  Output
	c    container
	pool *bufPool
	// size is the capacity of new segment buffers (see fitSize); it is
	// also read when an output releases a segment, on its own goroutine.
	size   atomic.Int64
	target int64 // target duration in ticks

	closed bool
	err    error // sticky error from the Output
	index  int64 // samples seen (for errors)

	par  params
	clk  videoClock
	seg  openSegment
	lead leadingSkip
	aud  *audioTrack // nil without an audio track
	cut  deferredCut
	// videoDropped: video samples were dropped since the last segment
	// closed (the audio before the next keyframe has no picture)
	videoDropped bool

	stats Stats
}

// params is the parameter sets in force and the init section made of them.
type params struct {
	ps       *paramSets // nil until the first SPS/PPS
	initSent bool       // ps has been emitted as an Init
	init     *Init
	nextInit uint64
	// reused for the in-band scan
	scratchPS, scratchPP [][]byte
}

// openSegment is the segment being built.
type openSegment struct {
	open         bool
	seq          uint64
	start, pts   int64 // output DTS and PTS of the first sample
	frames, keys int
	dur          int64 // sum of finalized durations
	discont      bool  // the next segment starts a discontinuity
}

// leadingSkip drops the leading pictures of a start at an open-GOP picture
// (input PTS before pts): their references were not recorded.
type leadingSkip struct {
	on  bool
	pts int64
}

// New returns a Chunker that emits segments of cfg.Format to out. It
// starts no goroutines and copies what it keeps of cfg. The error wraps
// ErrInvalidConfig (also for a nil out), ErrBadParameterSets (Config.SPS
// and PPS) or ErrBadAudioConfig (Config.Audio).
func New(cfg Config, out Output) (Chunker, error) {
	if out == nil {
		return nil, fmt.Errorf("%w: nil Output", ErrInvalidConfig)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	k := &chunker{
		cfg:    cfg,
		out:    out,
		pool:   &NewPool().p,
		target: timeline.Ticks(cfg.TargetDuration, cfg.Timescale),
		par:    params{nextInit: cfg.FirstInitSequence},
		seg:    openSegment{seq: cfg.FirstSequence, discont: cfg.StartWithDiscontinuity},
		clk:    videoClock{unwrap: timeline.Unwrapper{Bits: cfg.WrapBits}},
	}
	k.size.Store(firstBufferSize)
	if cfg.Pool != nil {
		k.pool = &cfg.Pool.p
	}
	if cfg.Bitrate > 0 {
		// A second of the stream's bytes, extrapolated like a buffer that
		// fills; a low-rate stream (audio only, a phone's) gets a buffer of
		// its size rather than the default one.
		k.size.Store(int64(max(minBufferSize, fitSize(expectedSize(int(cfg.Bitrate/8), int64(cfg.Timescale), k.target)))))
	}
	if cfg.Audio != nil {
		a, err := newAudioTrack(cfg)
		if err != nil {
			return nil, err
		}
		k.aud = a
		if cfg.NoVideo {
			k.target = timeline.Ticks(cfg.TargetDuration, uint32(a.outTS))
		}
	}
	if len(cfg.SPS) > 0 || len(cfg.PPS) > 0 {
		ps, err := parseParamSets(cfg.SPS, cfg.PPS)
		if err != nil {
			return nil, err
		}
		k.par.ps = ps
	}
	switch cfg.Format {
	case FMP4:
		f := newFMP4(cfg.Timescale, !cfg.NoVideo, k.aud)
		f.matrix = cfg.Matrix
		f.target = k.target
		k.c = f
	case TS:
		w, err := newTSWriter(cfg.Timescale, !cfg.NoVideo, k.aud)
		if err != nil {
			return nil, err
		}
		w.target = k.target
		k.c = w
	default:
		return nil, fmt.Errorf("chunker: unknown format %v", cfg.Format)
	}
	if cfg.Continue != nil {
		if err := k.resume(cfg.Continue); err != nil {
			return nil, err
		}
	}
	k.publish()
	return k, nil
}

// Stats returns the counters as of the last Write, WriteAudio, Flush,
// Break or Close that returned; it is safe to call from any goroutine.
func (k *chunker) Stats() Stats {
	k.smu.Lock()
	defer k.smu.Unlock()
	return k.shown
}

// publish makes the counters what Stats returns.
func (k *chunker) publish() {
	k.smu.Lock()
	k.shown = k.stats
	k.smu.Unlock()
}

// rateCheck compares the first pictures' decode steps with the frame rate
// that the SPS declares (VUI timing): samples timed in another timescale
// than Config.Timescale say (15360 ticks a second read as 90000, say)
// play at the wrong speed with no other sign. Pictures may come slower
// than declared (variable frame rate), not more than twice as fast.
type rateCheck struct {
	steps []int64
	last  int64
	done  bool
}

// rateSamples is how many decode steps rateCheck looks at.
const rateSamples = 16

func (r *rateCheck) check(dts int64, ps *paramSets, timescale uint32) error {
	if r.done {
		return nil
	}
	if r.steps == nil {
		r.steps, r.last = make([]int64, 0, rateSamples), dts
		return nil
	}
	if d := dts - r.last; d > 0 {
		r.steps = append(r.steps, d)
	}
	r.last = dts
	if len(r.steps) < rateSamples {
		return nil
	}
	r.done = true
	slices.Sort(r.steps)
	median := r.steps[len(r.steps)/2]
	if ps == nil || ps.fps <= 0 {
		return nil
	}
	declared := float64(timescale) / ps.fps
	if float64(median)*2 < declared {
		return fmt.Errorf("%w: pictures step %d ticks (%.0f a second at the timescale of %d), the stream declares %.3g frames a second: are the samples in another timescale?",
			ErrTimescale, median, float64(timescale)/float64(median), timescale, ps.fps)
	}
	// Slower than declared is common (dropped or variable frames), except
	// at the exact ratio of a finer clock that timestamps come in:
	// microseconds, 100 ns units, nanoseconds.
	if float64(median) > 2*declared {
		implied := float64(median) * ps.fps
		for _, clock := range []float64{1e6, 1e7, 1e9} {
			if math.Abs(implied-clock) < 0.005*clock && float64(timescale) < clock/2 {
				return fmt.Errorf("%w: pictures step %d ticks (%.3g s at the timescale of %d), the stream declares %.3g frames a second: the samples look timed in %.0f ticks a second",
					ErrTimescale, median, float64(median)/float64(timescale), timescale, ps.fps, clock)
			}
		}
	}
	return nil
}

// usable returns why the chunker takes no more input, or nil.
func (k *chunker) usable() error {
	if k.closed {
		return ErrClosed
	}
	return k.err
}

// Write adds an access unit in flat steps: check it, place it on the
// timeline, take its parameter sets, then either wait with a cut that waits
// for the audio, cut the open segment, or add it to the open segment.
func (k *chunker) Write(ctx context.Context, s Sample) error {
	defer k.publish()
	if err := k.usable(); err != nil {
		return err
	}
	if k.cfg.NoVideo {
		return fmt.Errorf("%w: Write on an audio-only chunker", ErrNoTrack)
	}
	idx := k.index
	k.index++
	fail := func(err error) error { return &SampleError{Index: idx, DTS: s.DTS, Err: err} }
	if err := checkAccessUnit(s.NALUs); err != nil {
		return fail(err)
	}
	k.clk.unwrapSample(&s, k.aud, k.cfg.Timescale)
	if s.PTS < s.DTS {
		return fail(fmt.Errorf("%w: PTS %d before DTS %d", ErrInvalidSample, s.PTS, s.DTS))
	}
	if s.PTS-s.DTS > math.MaxInt32 {
		// Refused here, before the sample is placed: fMP4 cannot carry
		// the composition offset.
		return fail(fmt.Errorf("%w: composition offset %d out of range", ErrInvalidSample, s.PTS-s.DTS))
	}
	step := k.step(&s)
	if step == timeline.Back {
		return fail(fmt.Errorf("%w: %d after %d", ErrNonMonotonicDTS, s.DTS, k.clk.lastIn))
	}
	newPS, err := k.inBandParams(s.NALUs)
	if err != nil {
		return fail(err)
	}
	idr, rap := k.randomAccess(s.NALUs)
	if k.cut.pending && (step == timeline.Jump || newPS != nil) {
		if err := k.resolveCut(ctx); err != nil {
			return err
		}
	}
	if step == timeline.Jump {
		if err := k.jump(ctx, &s, rap, newPS != nil); err != nil {
			return err
		}
	}
	if newPS != nil {
		if err := k.changeParams(ctx, &s, newPS); err != nil {
			return err
		}
	}
	if err := k.rate.check(s.DTS, k.par.ps, k.cfg.Timescale); err != nil {
		k.err = err
		return fail(err)
	}
	k.startTimeline(&s, rap)
	outDTS, outPTS := k.clk.out(&s)
	if k.skipLeading(&s) {
		return nil
	}
	pause := step == timeline.Pause
	if k.cut.pending {
		return k.stash(ctx, idx, &s, outDTS, outPTS, rap, idr, pause)
	}
	cutHere, waits, err := k.advance(ctx, idx, &s, outDTS, outPTS, rap, step == timeline.Jump, pause)
	if err != nil || waits {
		return err
	}
	k.clk.placed(&s, outDTS)
	return k.add(ctx, idx, &s, outDTS, outPTS, rap, idr, cutHere)
}

// checkAccessUnit refuses what cannot be an access unit: no NAL units, an
// empty one, a set forbidden_zero_bit, or no coded slice. (One pass over
// the NAL units, the errors made only on the way out: it runs for every
// sample.)
func checkAccessUnit(nalus [][]byte) error {
	vcl := false
	for _, n := range nalus {
		if len(n) == 0 {
			return fmt.Errorf("%w: empty NAL unit", ErrInvalidSample)
		}
		if n[0]&0x80 != 0 {
			return fmt.Errorf("%w: forbidden_zero_bit set", ErrInvalidSample)
		}
		vcl = vcl || n[0]&0x1f-1 < byte(h264.NALUTypeIDR) // types 1 to 5: coded slices
	}
	switch {
	case len(nalus) == 0:
		return fmt.Errorf("%w: empty access unit", ErrInvalidSample)
	case !vcl:
		return fmt.Errorf("%w: access unit without a coded slice", ErrInvalidSample)
	}
	return nil
}

// CheckAccessUnit reports what Write would refuse in the NAL units of an
// access unit before it touches the stream: no NAL units, an empty one, a
// set forbidden_zero_bit, no coded slice, or in-band parameter sets that
// do not parse (completed by sps and pps, the parameter sets in force,
// where the access unit carries only one kind, as Write completes them).
// The error wraps ErrInvalidSample or ErrBadParameterSets. Use it to refuse
// input that arrives whole (an uploaded chunk) before any of it is
// recorded.
func CheckAccessUnit(nalus, sps, pps [][]byte) error {
	if err := checkAccessUnit(nalus); err != nil {
		return err
	}
	var inSPS, inPPS [][]byte
	for _, n := range nalus {
		switch naluType(n) {
		case h264.NALUTypeSPS:
			inSPS = append(inSPS, n)
		case h264.NALUTypePPS:
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
		return CheckParameterSets(inSPS, inPPS)
	}
	return nil
}

// step classifies the step from the previous picture to s (see
// timeline.Classify): a pause when the picture before declared the step as
// its duration (a fragmented MP4's trun) or the audio went on through it.
// A frame step, every sample's case, is told without the evidence.
func (k *chunker) step(s *Sample) timeline.Step {
	if !k.clk.have {
		return timeline.Continue
	}
	step := s.DTS - k.clk.lastIn
	th := k.jumpThreshold()
	if step > 0 && step <= th {
		return timeline.Continue
	}
	e := timeline.Evidence{Step: step, Threshold: th}
	if step > th {
		e.Declared = absi(step-k.clk.lastHint) <= 1
		e.AudioRanOn = k.audioRanOn(k.clk.lastIn, s.DTS)
	} else {
		e.Keyframe = IsIDR(s.NALUs)
	}
	st := timeline.Classify(e)
	if st == timeline.Pause {
		k.stats.VideoPauses++
	}
	return st
}

// jumpThreshold returns the largest DTS step treated as continuous:
// Config.JumpThreshold, else timeline.Threshold of the typical frame.
func (k *chunker) jumpThreshold() int64 {
	if k.cfg.JumpThreshold > 0 {
		return timeline.Ticks(k.cfg.JumpThreshold, k.cfg.Timescale)
	}
	return timeline.Threshold(k.clk.lastDur, k.cfg.Timescale)
}

// inBandParams returns the parameter sets that s's in-band SPS and PPS
// (completed by those in force) make, when they differ from those in
// force; nil otherwise.
func (k *chunker) inBandParams(nalus [][]byte) (*paramSets, error) {
	p := &k.par
	p.scratchPS, p.scratchPP = p.scratchPS[:0], p.scratchPP[:0]
	for _, n := range nalus {
		switch naluType(n) {
		case h264.NALUTypeSPS:
			p.scratchPS = append(p.scratchPS, n)
		case h264.NALUTypePPS:
			p.scratchPP = append(p.scratchPP, n)
		}
	}
	if len(p.scratchPS) == 0 && len(p.scratchPP) == 0 {
		return nil, nil
	}
	sps, pps := p.scratchPS, p.scratchPP
	if p.ps != nil {
		if len(sps) == 0 {
			sps = p.ps.sps
		}
		if len(pps) == 0 {
			pps = p.ps.pps
		}
		if p.ps.equalSPS(sps) && p.ps.equalPPS(pps) {
			return nil, nil
		}
	}
	if len(sps) == 0 || len(pps) == 0 {
		return nil, nil
	}
	return parseParamSets(sps, pps)
}

// randomAccess reports whether the access unit is an IDR picture, and
// whether a segment may start at it: an IDR picture, or with
// Config.OpenGOP an open-GOP random access point.
func (k *chunker) randomAccess(nalus [][]byte) (idr, rap bool) {
	idr = IsIDR(nalus)
	rap = idr
	if !idr && IsRecoveryPoint(nalus) {
		k.stats.RecoveryPoints++
		rap = k.cfg.OpenGOP
	}
	return idr, rap
}

// jump handles a timestamp jump at s: the audio of the old timeline goes
// into the closing segment (or waits with it, see deferredCut), the sample
// before the jump gets its hinted or typical duration, and the new
// timeline continues right after it (timeline.Follow).
func (k *chunker) jump(ctx context.Context, s *Sample, rap, newParams bool) error {
	k.stats.TimestampJumps++
	if a := k.aud; a != nil {
		a.haveFloor = false // input times before and after differ
	}
	if err := k.releaseAudioBeforeJump(ctx, k.clk.lastIn, s.DTS); err != nil {
		return err
	}
	if k.seg.open && !newParams && k.audioMayLagJump(k.clk.lastIn, s.DTS) {
		// More audio of the old timeline may still come: the segment
		// waits for it (see deferredCut).
		d := k.fallbackDuration()
		k.c.setDuration(d)
		k.seg.dur += d
		k.clk.closedDur = d
		k.cut.startJump(k.clk.lastIn, s.DTS, k.clk.offset)
	} else {
		if err := k.closeSegment(ctx, k.fallbackDuration()); err != nil {
			return err
		}
		k.seg.discont = true
	}
	k.clk.follow(s, rap)
	return nil
}

// changeParams closes the open segment at s, whose parameter sets differ:
// the next segment needs a new init and is a discontinuity.
func (k *chunker) changeParams(ctx context.Context, s *Sample, ps *paramSets) error {
	if k.par.ps != nil {
		if k.seg.open {
			if err := k.releaseAudio(ctx, s.PTS, false); err != nil {
				return err
			}
			outDTS, _ := k.clk.out(s)
			if err := k.closeSegment(ctx, outDTS-k.clk.lastOut); err != nil {
				return err
			}
		}
		k.seg.discont = true
	}
	k.par.ps = ps
	k.par.initSent = false
	return nil
}

// startTimeline chooses the output timeline at the stream's first sample,
// and the fMP4 decode-time shift at its first random access point.
func (k *chunker) startTimeline(s *Sample, rap bool) {
	if !k.clk.have {
		// Decode times must not be negative (fMP4 tfdt is unsigned) and
		// TS timestamps leave room for the PCR ahead of the first DTS;
		// audio that came before the first sample counts too.
		lowest := s.DTS
		if a := k.aud; a != nil {
			for _, q := range a.queue[a.head:] {
				lowest = min(lowest, q.pv)
			}
		}
		if m := k.minTime(k.cfg.Timescale); lowest < m {
			k.clk.offset = m - lowest
		}
	}
	if !k.clk.shiftSet && rap && k.par.ps != nil && k.cfg.Format == FMP4 {
		// fMP4: decode times are shifted by the stream's initial
		// composition delay (B-frame reordering), with negative composition
		// offsets where needed, so that the first picture's presentation
		// time equals its segment's tfdt. Players (hls.js) otherwise leave
		// a hole of that delay at every discontinuity.
		k.clk.shiftSet = true
		if d := s.PTS - s.DTS; d > 0 {
			k.clk.dtsShift = d
		}
	}
}

// minTime is the earliest output time, in ticks of timescale ts: 0, or
// for MPEG-TS the PCR's lead (the PCR runs behind the first DTS), a tick
// more than that so the rounding back to 90 kHz cannot fall short of it.
func (k *chunker) minTime(ts uint32) int64 {
	if k.cfg.Format != TS {
		return 0
	}
	return timeline.Rescale(tsPCRLead, timeline.MPEGClock, ts) + 1
}

// skipLeading drops s when it is a leading picture of an open-GOP start.
func (k *chunker) skipLeading(s *Sample) bool {
	if !k.lead.on {
		return false
	}
	if s.PTS < k.lead.pts {
		k.stats.DroppedLeading++
		k.clk.seen(s)
		return true
	}
	k.lead.on = false
	return false
}

// stash adds s to the cut that waits for the audio.
func (k *chunker) stash(ctx context.Context, idx int64, s *Sample, outDTS, outPTS int64, rap, idr, pause bool) error {
	if len(k.cut.samples) == 0 && (!rap || k.par.ps == nil) {
		// After a jump, the next segment starts at a keyframe too.
		k.stats.DroppedNoKey++
		k.videoDropped = true
		k.clk.placed(s, outDTS)
		return nil
	}
	d := outDTS - k.clk.lastOut
	k.cut.setLastDur(d)
	if !pause {
		k.clk.lastDur = d
	}
	k.clk.placed(s, outDTS)
	if len(k.cut.samples) == 0 && !idr {
		k.lead = leadingSkip{on: true, pts: s.PTS}
	}
	k.cut.add(idx, *s, outDTS, outPTS, rap)
	if outDTS-k.cut.samples[0].dts > k.maxCutWait() || len(k.cut.samples) >= maxCutSamples {
		return k.resolveCut(ctx)
	}
	return nil
}

// advance gives the open segment's last sample its duration and cuts the
// segment at s when s is a random access point presented a target duration
// after the segment's start. The cut compares presentation times, as
// players see segments: an open-GOP I picture is decoded ahead of its
// presentation by a number of leading pictures that varies from GOP to GOP,
// so decode times would put some cuts a GOP late. waits reports that the
// cut waits for audio (s is stashed with it); cutHere that the segment
// closed at s.
func (k *chunker) advance(ctx context.Context, idx int64, s *Sample, outDTS, outPTS int64, rap, jump, pause bool) (cutHere, waits bool, err error) {
	if !k.seg.open {
		return false, false, nil
	}
	if !jump {
		d := outDTS - k.clk.lastOut
		k.c.setDuration(d)
		k.seg.dur += d
		if !pause {
			k.clk.lastDur = d
		}
	}
	if !rap || outPTS-k.seg.pts < k.target {
		return false, false, nil
	}
	if k.audioMayLag(s.PTS) {
		// Audio before this picture's presentation time may still come
		// (inputs interleave by decode time, muxers buffer audio): the
		// cut waits for it.
		k.clk.placed(s, outDTS)
		k.cut.start(s.PTS)
		k.cut.add(idx, *s, outDTS, outPTS, rap)
		return false, true, nil
	}
	// Audio before this picture's presentation time closes with the
	// segment.
	if err := k.releaseAudio(ctx, s.PTS, false); err != nil {
		return false, false, err
	}
	if err := k.emit(ctx); err != nil {
		return false, false, err
	}
	return true, false, nil
}

// add writes s into the open segment, opening one at a random access
// point (samples before one are dropped and counted).
func (k *chunker) add(ctx context.Context, idx int64, s *Sample, outDTS, outPTS int64, rap, idr, cutHere bool) error {
	if !k.seg.open {
		if !rap || k.par.ps == nil {
			k.stats.DroppedNoKey++
			k.videoDropped = true
			return nil
		}
		if !idr && !cutHere {
			// A start, not a cut in a continuous stream: the leading
			// pictures' references were not recorded.
			k.lead = leadingSkip{on: true, pts: s.PTS}
		}
		if k.videoDropped {
			// Audio before this picture has no picture to go with.
			k.dropAudioBefore(s.PTS)
			k.videoDropped = false
		}
		if err := k.openSegment(ctx, outDTS, outPTS); err != nil {
			return err
		}
	}
	if err := k.c.add(s.NALUs, outDTS, outPTS, rap, k.par.ps); err != nil {
		return &SampleError{Index: idx, DTS: s.DTS, Err: err}
	}
	k.seg.frames++
	if rap {
		k.seg.keys++
		k.clk.reorder = outPTS - outDTS
	}
	k.stats.Samples++
	// Audio the video has passed belongs to this segment.
	return k.releaseAudio(ctx, s.DTS, true)
}

// fallbackDuration is the duration given to a last sample whose successor is
// unknown: its own hint, else the previous sample's duration, else one frame
// at the VUI frame rate, else 1/30 s.
func (k *chunker) fallbackDuration() int64 {
	if k.clk.lastHint > 0 {
		return k.clk.lastHint
	}
	if k.clk.lastDur > 0 {
		return k.clk.lastDur
	}
	if ps := k.par.ps; ps != nil && ps.fps > 0 {
		if d := int64(float64(k.cfg.Timescale)/ps.fps + 0.5); d > 0 {
			return d
		}
	}
	if d := int64(k.cfg.Timescale) / 30; d > 0 {
		return d
	}
	return 1
}

func (k *chunker) openSegment(ctx context.Context, dts, pts int64) error {
	if !k.par.initSent {
		if err := k.sendInit(ctx); err != nil {
			return err
		}
	}
	k.seg = openSegment{open: true, seq: k.seg.seq, start: dts, pts: pts, discont: k.seg.discont}
	k.c.begin(k.seg.seq, k.pool.get(int(k.size.Load())), dts)
	return nil
}

// sendInit emits the init section of the parameter sets in force.
func (k *chunker) sendInit(ctx context.Context) error {
	p := &k.par
	data, err := k.c.makeInit(p.ps)
	if err != nil {
		return err
	}
	p.init = &Init{
		Seq:       p.nextInit,
		Format:    k.cfg.Format,
		Data:      data,
		Timescale: k.timescale(),
	}
	if ps := p.ps; ps != nil {
		p.init.SPS, p.init.PPS, p.init.Codec = ps.sps, ps.pps, ps.codec
		p.init.Width, p.init.Height = ps.width, ps.height
	}
	if a := k.aud; a != nil {
		p.init.AudioCodec, p.init.ASC = a.info.Codec, a.asc
		p.init.AudioTimescale = uint32(a.outTS)
		p.init.SampleRate, p.init.Channels = a.info.SampleRate, a.info.Channels
	}
	p.nextInit++
	p.initSent = true
	k.stats.Inits++
	if err := k.out.WriteInit(ctx, p.init); err != nil {
		k.err = err
		return err
	}
	return nil
}

// closeSegment gives the last sample of the open segment its duration and
// emits the segment.
func (k *chunker) closeSegment(ctx context.Context, lastDur int64) error {
	k.clk.closedDur = lastDur
	if !k.seg.open {
		return nil
	}
	if lastDur <= 0 {
		lastDur = k.fallbackDuration()
		k.clk.closedDur = lastDur
	}
	k.c.setDuration(lastDur)
	k.seg.dur += lastDur
	return k.emit(ctx)
}

// timescale is the timescale of Segment and Init timestamps: the video's,
// or the audio's for an audio-only stream.
func (k *chunker) timescale() uint32 {
	if k.cfg.NoVideo {
		return uint32(k.aud.outTS)
	}
	return k.cfg.Timescale
}

// emit closes the open segment (all durations set) and hands it to out.
func (k *chunker) emit(ctx context.Context) error {
	data, full, err := k.c.finish()
	k.seg.open = false
	if err != nil {
		k.err = err // the segment is lost: nothing after it may follow
		return err
	}
	pool := k.pool
	k.size.Store(max(k.size.Load(), int64(fitSize(len(full)))))
	size := &k.size
	ts := k.timescale()
	seg := &Segment{
		Seq:           k.seg.seq,
		Format:        k.cfg.Format,
		Init:          k.par.init,
		Data:          data,
		Timescale:     ts,
		FirstDTS:      k.seg.start,
		FirstPTS:      k.seg.pts,
		Duration:      k.seg.dur,
		Frames:        k.seg.frames,
		Keyframes:     k.seg.keys,
		Discontinuity: k.seg.discont,
		release:       func() { pool.put(full, int(size.Load())) },
	}
	if a := k.aud; a != nil && a.segFrames > 0 {
		seg.AudioFrames = a.segFrames
		seg.AudioPTS = a.segStart
		seg.AudioDuration = a.lastOut + a.lastDur - a.segStart
		a.segFrames = 0
		if k.cfg.NoVideo {
			seg.Duration = seg.AudioDuration
		}
	}
	seg.Long = seg.Duration > k.target+int64(ts)/2
	if seg.Duration > 0 && seg.Frames > 0 {
		seg.FrameRate = float64(seg.Frames) * float64(ts) / float64(seg.Duration)
	}
	k.seg.seq++
	k.seg.discont = false
	k.countSegment(seg)
	if err := k.out.WriteSegment(ctx, seg); err != nil {
		k.err = err
		return err
	}
	return nil
}

// countSegment adds an emitted segment to the stats.
func (k *chunker) countSegment(seg *Segment) {
	k.stats.Segments++
	k.stats.Bytes += int64(len(seg.Data))
	k.stats.MediaTicks += seg.Duration
	k.stats.LastSegmentSeq = seg.Seq
	k.stats.HaveLastSegment = true
	if seg.Discontinuity {
		k.stats.Discontinuities++
	}
	if seg.Long {
		k.stats.LongSegments++
	}
}

func (k *chunker) Flush(ctx context.Context) error {
	defer k.publish()
	if err := k.usable(); err != nil {
		return err
	}
	if k.cut.pending {
		if err := k.resolveCut(ctx); err != nil {
			return err
		}
	}
	if !k.seg.open {
		return nil
	}
	if k.cfg.NoVideo {
		return k.emit(ctx)
	}
	// The open segment takes every audio frame still waiting.
	if err := k.releaseAudio(ctx, maxTime, true); err != nil {
		return err
	}
	return k.closeSegment(ctx, k.fallbackDuration())
}

func (k *chunker) Break(ctx context.Context) error {
	defer k.publish()
	if err := k.Flush(ctx); err != nil {
		return err
	}
	if k.stats.Segments > 0 {
		k.seg.discont = true
	}
	return nil
}

func (k *chunker) Close(ctx context.Context) error {
	if k.closed {
		return nil
	}
	defer k.publish()
	err := k.Flush(ctx)
	k.closed = true
	if a := k.aud; a != nil {
		k.stats.AudioDropped += int64(len(a.queue) - a.head)
		a.clearQueue()
	}
	if err != nil {
		return err
	}
	if k.stats.Samples == 0 && k.stats.DroppedNoKey > 0 && k.par.ps == nil {
		return ErrNoParameterSets
	}
	return nil
}
