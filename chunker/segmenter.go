package chunker

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
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

// paramSets is the current SPS/PPS set and what was parsed from it.
type paramSets struct {
	sps, pps [][]byte
	parsed   *avc.SPS
	codec    string
	width    int
	height   int
	fps      float64 // from VUI timing, 0 if absent
}

func (p *paramSets) equalSPS(sps [][]byte) bool { return equalNALUs(p.sps, sps) }
func (p *paramSets) equalPPS(pps [][]byte) bool { return equalNALUs(p.pps, pps) }

func equalNALUs(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

func cloneNALUs(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, n := range in {
		out[i] = bytes.Clone(n)
	}
	return out
}

// CheckParameterSets reports whether sps and pps (NAL units without
// framing, as an MP4 avcC box or Config.SPS and Config.PPS carry them) can
// start a stream, as New checks them: at least one of each, and a first
// SPS that parses, with a picture size. The error wraps
// ErrBadParameterSets. Use it to refuse input before anything of it is
// recorded.
func CheckParameterSets(sps, pps [][]byte) error {
	_, err := parseParamSets(sps, pps)
	return err
}

func parseParamSets(sps, pps [][]byte) (ps *paramSets, err error) {
	defer func() {
		if r := recover(); r != nil {
			ps, err = nil, fmt.Errorf("%w: SPS parser panicked: %v", ErrBadParameterSets, r)
		}
	}()
	if len(sps) == 0 || len(pps) == 0 {
		return nil, fmt.Errorf("%w: need at least one SPS and one PPS", ErrBadParameterSets)
	}
	parsed, err := avc.ParseSPSNALUnit(sps[0], true)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadParameterSets, err)
	}
	if parsed.Width == 0 || parsed.Height == 0 || parsed.Width > 16384 || parsed.Height > 16384 {
		return nil, fmt.Errorf("%w: picture size %dx%d", ErrBadParameterSets, parsed.Width, parsed.Height)
	}
	if len(sps[0]) < 4 {
		return nil, fmt.Errorf("%w: SPS too short", ErrBadParameterSets)
	}
	ps = &paramSets{
		sps:    cloneNALUs(sps),
		pps:    cloneNALUs(pps),
		parsed: parsed,
		// RFC 6381: profile_idc, constraint flags byte, level_idc, straight
		// from the SPS bytes.
		codec:  fmt.Sprintf("avc1.%02x%02x%02x", sps[0][1], sps[0][2], sps[0][3]),
		width:  int(parsed.Width),
		height: int(parsed.Height),
	}
	if v := parsed.VUI; v != nil && v.TimingInfoPresentFlag && v.NumUnitsInTick > 0 {
		ps.fps = float64(v.TimeScale) / float64(2*v.NumUnitsInTick)
	}
	return ps, nil
}

// Pool recycles the buffers that segments are built in. A Chunker has its
// own unless Config.Pool is set; chunkers that share one (many streams in
// one process) keep fewer buffers idle, since the buffer that one stream's
// upload frees opens another stream's next segment. Each chunker still
// sizes its buffers for its own stream, and takes a spare buffer only when
// it fits (from three quarters to one and a half times the size it wants),
// so streams of very different bit rates can share a Pool; the oldest spare
// makes room for a new one. A Pool is safe for concurrent use; its zero
// value is an empty Pool, as NewPool's is.
type Pool struct{ p bufPool }

// NewPool returns an empty Pool.
func NewPool() *Pool { return &Pool{} }

// firstBufferSize is the capacity of a chunker's first segment buffer when
// it knows nothing of its stream's bit rate.
const firstBufferSize = 1 << 20

// minBufferSize is the least capacity that Config.Bitrate makes the
// segment buffers.
const minBufferSize = 64 << 10

// spareBuffers bounds the idle buffers that a bufPool keeps.
const spareBuffers = 4

// bufPool recycles segment buffers between segments (the "future writer
// already open" of the phone pattern is a pre-allocated buffer).
type bufPool struct {
	mu   sync.Mutex
	free [][]byte
}

// fitSize is the buffer capacity for segments of up to n bytes (plus an
// eighth for variation), so that they do not grow by copying.
func fitSize(n int) int { return n + n/8 }

// maxSizeHint bounds the segment sizes that expectedSize extrapolates
// (from Config.Bitrate or from a filling buffer).
const maxSizeHint = 64 << 20

// grow makes room for n more bytes in a segment buffer. A full buffer
// grows to want, the size the segment is expected to reach (see
// expectedSize; 0 when unknown), and at least doubles: one that grows (in
// the first segment, before the chunker knows its stream's segment size)
// copies once instead of at every doubling, and leaves less garbage than
// append's 1.25x steps, which copy a 6 MB segment nine times.
func grow(b []byte, n, want int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), max(2*cap(b), len(b)+n, want))
	copy(nb, b)
	return nb
}

// expectedSize extrapolates a segment that holds cur bytes after elapsed
// ticks to 1.5 target durations (a segment runs past the target to the
// next keyframe). 0 when elapsed or target is not known; at most
// maxSizeHint.
func expectedSize(cur int, elapsed, target int64) int {
	if elapsed <= 0 || target <= 0 {
		return 0
	}
	return int(min(float64(cur)*float64(target)*1.5/float64(elapsed), maxSizeHint))
}

// fits reports whether a spare buffer of capacity c serves a chunker whose
// buffers are size bytes: from three quarters of size (size has an eighth
// of headroom over the largest segment so far, so such a buffer seldom
// needs to grow) to one and a half times size (larger is wasted on it, and
// put drops such a buffer).
func fits(c, size int) bool { return c >= size-size/4 && c <= size+size/2 }

// get returns an empty buffer for a segment of a chunker whose buffers are
// size bytes: the smallest spare that fits and holds size, else the
// largest that fits, else a new one.
func (p *bufPool) get(size int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	// better reports whether a spare of capacity c serves better than one
	// of capacity d: one that holds size beats one that does not; of two
	// that hold it the smaller, of two that do not the larger.
	better := func(c, d int) bool {
		if (c >= size) != (d >= size) {
			return c >= size
		}
		if c >= size {
			return c < d
		}
		return c > d
	}
	best := -1
	for i, b := range p.free {
		if fits(cap(b), size) && (best < 0 || better(cap(b), cap(p.free[best]))) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, 0, size)
	}
	b := p.free[best]
	p.free = slices.Delete(p.free, best, best+1) // the spares stay oldest first
	return b[:0]
}

// put takes back a buffer of a chunker whose buffers are now size bytes.
// One that grew past what fits (doubled in the first segment) is dropped,
// so that a buffer of the right size replaces it, which matters when many
// streams each hold theirs. When the spares are full the oldest goes: in a
// shared Pool, spares that no stream takes (those of streams that ended)
// must not stay for good.
func (p *bufPool) put(b []byte, size int) {
	if b == nil || !fits(cap(b), size) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == spareBuffers {
		p.free = slices.Delete(p.free, 0, 1)
	}
	p.free = append(p.free, b[:0])
}

// chunker is the Chunker implementation shared by both formats.
type chunker struct {
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

	// parameter sets
	ps        *paramSets // current, nil until the first SPS/PPS
	initSent  bool       // ps has been emitted as an Init
	init      *Init      // current init
	nextInit  uint64
	scratchPS [][]byte // reused for SPS scan
	scratchPP [][]byte

	// timestamps
	index      int64 // samples seen (for errors)
	haveRaw    bool
	rawPrevDTS int64 // previous raw (wrapped) DTS
	unwrapped  int64 // unwrapped DTS of the previous sample
	offset     int64 // output = unwrapped input + offset
	dtsShift   int64 // added to output decode times (fMP4), see Write
	shiftSet   bool
	haveLast   bool
	lastInDTS  int64 // unwrapped input DTS of the previous sample
	lastOutDTS int64
	lastDur    int64 // duration of the sample before the last one, or a hint
	lastHint   int64 // Sample.Duration of the last sample
	// lastClosedDur is the duration given to the last sample of the
	// segment most recently closed by closeSegment.
	lastClosedDur int64

	// audio track, nil without one
	aud          *audioTrack
	videoDropped bool  // video samples were dropped since the last segment closed
	leadSkip     bool  // dropping the leading pictures of an open-GOP start
	leadPTS      int64 // input PTS of that start
	cut          deferredCut

	// open segment
	open      bool
	seq       uint64
	segStart  int64 // output DTS of the first sample
	segPTS    int64
	segFrames int
	segKeys   int
	segDur    int64 // sum of finalized durations
	discont   bool  // the next segment starts a discontinuity

	stats Stats
}

// New returns a Chunker that emits segments of cfg.Format to out.
func New(cfg Config, out Output) (Chunker, error) {
	if out == nil {
		return nil, fmt.Errorf("chunker: nil Output")
	}
	cfg = cfg.withDefaults()
	if cfg.WrapBits > 62 {
		return nil, fmt.Errorf("chunker: WrapBits %d out of range", cfg.WrapBits)
	}
	k := &chunker{
		cfg:      cfg,
		out:      out,
		pool:     &NewPool().p,
		target:   durationToTicks(cfg.TargetDuration, cfg.Timescale),
		seq:      cfg.FirstSequence,
		nextInit: cfg.FirstInitSequence,
		discont:  cfg.StartWithDiscontinuity,
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
	if cfg.NoVideo && cfg.Audio == nil {
		return nil, fmt.Errorf("chunker: NoVideo without an Audio track")
	}
	if cfg.Audio != nil {
		a, err := newAudioTrack(cfg)
		if err != nil {
			return nil, err
		}
		k.aud = a
		if cfg.NoVideo {
			k.target = durationToTicks(cfg.TargetDuration, uint32(a.outTS))
		}
	}
	if len(cfg.SPS) > 0 || len(cfg.PPS) > 0 {
		ps, err := parseParamSets(cfg.SPS, cfg.PPS)
		if err != nil {
			return nil, err
		}
		k.ps = ps
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
		w.mux.target = k.target
		k.c = w
	default:
		return nil, fmt.Errorf("chunker: unknown format %v", cfg.Format)
	}
	return k, nil
}

func durationToTicks(d time.Duration, timescale uint32) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*int64(timescale) + rem*int64(timescale)/int64(time.Second)
}

func (k *chunker) Stats() Stats { return k.stats }

// jumpThreshold returns the largest DTS step treated as continuous.
func (k *chunker) jumpThreshold() int64 {
	if k.cfg.JumpThreshold > 0 {
		return durationToTicks(k.cfg.JumpThreshold, k.cfg.Timescale)
	}
	th := int64(k.cfg.Timescale) // 1 s
	if d := k.lastDur * 10; d > th {
		th = d
	}
	return th
}

func (k *chunker) unwrap(s *Sample) {
	if k.cfg.WrapBits == 0 {
		return
	}
	mod := int64(1) << k.cfg.WrapBits
	mask := mod - 1
	half := mod / 2
	raw := s.DTS & mask
	if !k.haveRaw {
		k.haveRaw = true
		k.unwrapped = raw
		if a := k.aud; a != nil && a.haveRaw {
			// Audio came first: stay on its side of a wrap.
			k.unwrapped = near(raw, rescale(a.unwrapped, a.inTS, int64(k.cfg.Timescale)), k.cfg.WrapBits)
		}
	} else {
		diff := (raw - k.rawPrevDTS) & mask
		if diff >= half {
			diff -= mod
		}
		k.unwrapped += diff
	}
	k.rawPrevDTS = raw
	cto := (s.PTS - s.DTS) & mask
	if cto >= half {
		cto -= mod
	}
	s.DTS = k.unwrapped
	s.PTS = k.unwrapped + cto
}

func (k *chunker) Write(ctx context.Context, s Sample) error {
	if k.closed {
		return ErrClosed
	}
	if k.err != nil {
		return k.err
	}
	if k.cfg.NoVideo {
		return fmt.Errorf("%w: Write on an audio-only chunker", ErrNoTrack)
	}
	idx := k.index
	k.index++
	if len(s.NALUs) == 0 {
		return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: empty access unit", ErrInvalidSample)}
	}
	vcl := false
	for _, n := range s.NALUs {
		if len(n) == 0 {
			return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: empty NAL unit", ErrInvalidSample)}
		}
		if n[0]&0x80 != 0 {
			return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: forbidden_zero_bit set", ErrInvalidSample)}
		}
		if t := naluType(n); t >= naluNonIDR && t <= naluIDR {
			vcl = true
		}
	}
	if !vcl {
		return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: access unit without a coded slice", ErrInvalidSample)}
	}
	k.unwrap(&s)
	if s.PTS < s.DTS && k.cfg.Format == TS {
		return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: PTS %d before DTS %d", ErrInvalidSample, s.PTS, s.DTS)}
	}

	// Timestamp continuity.
	jump, pause := false, false
	if k.haveLast {
		step := s.DTS - k.lastInDTS
		th := k.jumpThreshold()
		switch {
		case step > th && (absi(step-k.lastHint) <= 1 || k.audioRanOn(k.lastInDTS, s.DTS)):
			// A pause of the video, as the picture before declared
			// (a fragmented MP4's trun duration) or the audio going on
			// shows: that picture lasts until this one (which is not a
			// frame duration: lastDur keeps the one before).
			k.stats.VideoPauses++
			pause = true
		case step > th || step < -th:
			jump = true
		case step <= 0 && IsIDR(s.NALUs):
			// A short step back at an IDR picture: a new stream spliced
			// in (two short MPEG-TS files joined end to end).
			jump = true
		case step <= 0:
			return &SampleError{Index: idx, DTS: s.DTS, Err: fmt.Errorf("%w: %d after %d", ErrNonMonotonicDTS, s.DTS, k.lastInDTS)}
		}
	}

	// Parameter sets carried in-band.
	k.scratchPS, k.scratchPP = k.scratchPS[:0], k.scratchPP[:0]
	for _, n := range s.NALUs {
		switch naluType(n) {
		case naluSPS:
			k.scratchPS = append(k.scratchPS, n)
		case naluPPS:
			k.scratchPP = append(k.scratchPP, n)
		}
	}
	var newPS *paramSets
	if len(k.scratchPS) > 0 || len(k.scratchPP) > 0 {
		sps, pps := k.scratchPS, k.scratchPP
		if k.ps != nil {
			if len(sps) == 0 {
				sps = k.ps.sps
			}
			if len(pps) == 0 {
				pps = k.ps.pps
			}
		}
		if k.ps == nil || !k.ps.equalSPS(sps) || !k.ps.equalPPS(pps) {
			if len(sps) > 0 && len(pps) > 0 {
				ps, err := parseParamSets(sps, pps)
				if err != nil {
					return &SampleError{Index: idx, DTS: s.DTS, Err: err}
				}
				newPS = ps
			}
		}
	}

	// rap: a random access point, where a segment may start. idr: one
	// that needs nothing before it.
	idr := IsIDR(s.NALUs)
	rap := idr
	if !idr && IsRecoveryPoint(s.NALUs) {
		k.stats.RecoveryPoints++
		rap = k.cfg.OpenGOP
	}

	if k.cut.pending && (jump || newPS != nil) {
		if err := k.resolveCut(ctx); err != nil {
			return err
		}
	}
	if jump {
		k.stats.TimestampJumps++
		if a := k.aud; a != nil {
			a.haveFloor = false // input times before and after differ
		}
		// Audio of the old timeline goes into the closing segment.
		if err := k.releaseAudioBeforeJump(ctx, k.lastInDTS, s.DTS); err != nil {
			return err
		}
		if k.open && newPS == nil && k.audioMayLagJump(k.lastInDTS, s.DTS) {
			// More audio of the old timeline may still come: the segment
			// waits for it (see deferredCut), the sample before the jump
			// gets its hinted or the typical duration now.
			d := k.fallbackDuration()
			k.c.setDuration(d)
			k.segDur += d
			k.lastClosedDur = d
			k.cut.startJump(k.lastInDTS, s.DTS, k.offset)
		} else {
			// The sample before the jump gets its hinted or the typical
			// duration.
			if err := k.closeSegment(ctx, k.fallbackDuration()); err != nil {
				return err
			}
			k.discont = true
		}
		// Continue the output timeline right after the previous sample.
		k.offset = k.lastOutDTS + k.lastClosedDur - s.DTS - k.dtsShift
	}
	if newPS != nil {
		if k.ps != nil {
			// New parameters: close the segment at this sample; the next one
			// needs a new init and is a discontinuity.
			if k.open {
				if err := k.releaseAudio(ctx, s.PTS, false); err != nil {
					return err
				}
				if err := k.closeSegment(ctx, s.DTS+k.offset+k.dtsShift-k.lastOutDTS); err != nil {
					return err
				}
			}
			k.discont = true
		}
		k.ps = newPS
		k.initSent = false
	}

	if !k.haveLast {
		// First sample of the stream: choose the output timeline so that
		// decode times are not negative (fMP4 tfdt is unsigned) and TS
		// timestamps leave room for the PCR ahead of the first DTS.
		// Audio that came before it counts too.
		min := int64(0)
		if k.cfg.Format == TS {
			min = (int64(k.cfg.Timescale)*tsPCRLead + 89999) / 90000
		}
		lowest := s.DTS
		if a := k.aud; a != nil {
			for _, q := range a.queue[a.head:] {
				lowest = mini(lowest, q.pv)
			}
		}
		if lowest < min {
			k.offset = min - lowest
		}
	}
	if !k.shiftSet && rap && k.ps != nil && k.cfg.Format == FMP4 {
		// fMP4: decode times are shifted by the stream's initial
		// composition delay (B-frame reordering), with negative composition
		// offsets where needed, so that the first picture's presentation
		// time equals its segment's tfdt. Players (hls.js) otherwise leave
		// a hole of that delay at every discontinuity.
		k.shiftSet = true
		if d := s.PTS - s.DTS; d > 0 {
			k.dtsShift = d
		}
	}
	outDTS := s.DTS + k.offset + k.dtsShift
	outPTS := s.PTS + k.offset

	if k.leadSkip {
		// The stream (re)started at an open-GOP picture: its leading
		// pictures refer to pictures that were not recorded.
		if s.PTS < k.leadPTS {
			k.stats.DroppedLeading++
			k.lastInDTS, k.lastHint = s.DTS, s.Duration
			return nil
		}
		k.leadSkip = false
	}

	if k.cut.pending {
		// A cut waits for the audio: this sample waits with it.
		if len(k.cut.samples) == 0 && (!rap || k.ps == nil) {
			// After a jump, the next segment starts at a keyframe too.
			k.stats.DroppedNoKey++
			k.videoDropped = true
			k.haveLast, k.lastInDTS, k.lastOutDTS, k.lastHint = true, s.DTS, outDTS, s.Duration
			return nil
		}
		d := outDTS - k.lastOutDTS
		k.cut.setLastDur(d)
		if !pause {
			k.lastDur = d
		}
		k.haveLast, k.lastInDTS, k.lastOutDTS, k.lastHint = true, s.DTS, outDTS, s.Duration
		if len(k.cut.samples) == 0 && !idr {
			k.leadSkip, k.leadPTS = true, s.PTS
		}
		k.cut.add(idx, s, outDTS, outPTS, rap)
		if outDTS-k.cut.samples[0].dts > k.maxCutWait() || len(k.cut.samples) >= maxCutSamples {
			return k.resolveCut(ctx)
		}
		return nil
	}
	cutHere := false // the open segment closed at this sample
	if k.open {
		d := outDTS - k.lastOutDTS
		if !jump {
			k.c.setDuration(d)
			k.segDur += d
			if !pause {
				k.lastDur = d
			}
		}
		// The cut compares presentation times, as players see segments:
		// an open-GOP I picture is decoded ahead of its presentation by a
		// number of leading pictures that varies from GOP to GOP, so decode
		// times would put some cuts a GOP late.
		if rap && outPTS-k.segPTS >= k.target {
			if k.audioMayLag(s.PTS) {
				// Audio before this picture's presentation time may still
				// come (inputs interleave by decode time, muxers buffer
				// audio): the cut waits for it.
				k.haveLast, k.lastInDTS, k.lastOutDTS, k.lastHint = true, s.DTS, outDTS, s.Duration
				k.cut.start(s.PTS)
				k.cut.add(idx, s, outDTS, outPTS, rap)
				return nil
			}
			// Audio before this picture's presentation time closes with
			// the segment.
			if err := k.releaseAudio(ctx, s.PTS, false); err != nil {
				return err
			}
			if err := k.emit(ctx); err != nil {
				return err
			}
			cutHere = true
		}
	}
	k.haveLast = true
	k.lastInDTS = s.DTS
	k.lastOutDTS = outDTS
	k.lastHint = s.Duration

	if !k.open {
		if !rap || k.ps == nil {
			k.stats.DroppedNoKey++
			k.videoDropped = true
			return nil
		}
		if !idr && !cutHere {
			// A start, not a cut in a continuous stream: the leading
			// pictures' references were not recorded.
			k.leadSkip, k.leadPTS = true, s.PTS
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
	if err := k.c.add(s.NALUs, outDTS, outPTS, rap, k.ps); err != nil {
		return &SampleError{Index: idx, DTS: s.DTS, Err: err}
	}
	k.segFrames++
	if rap {
		k.segKeys++
	}
	k.stats.Samples++
	// Audio the video has passed belongs to this segment.
	return k.releaseAudio(ctx, s.DTS, true)
}

// fallbackDuration is the duration given to a last sample whose successor is
// unknown: its own hint, else the previous sample's duration, else one frame
// at the VUI frame rate, else 1/30 s.
func (k *chunker) fallbackDuration() int64 {
	if k.lastHint > 0 {
		return k.lastHint
	}
	if k.lastDur > 0 {
		return k.lastDur
	}
	if k.ps != nil && k.ps.fps > 0 {
		if d := int64(float64(k.cfg.Timescale)/k.ps.fps + 0.5); d > 0 {
			return d
		}
	}
	if d := int64(k.cfg.Timescale) / 30; d > 0 {
		return d
	}
	return 1
}

func (k *chunker) openSegment(ctx context.Context, dts, pts int64) error {
	if !k.initSent {
		data, err := k.c.makeInit(k.ps)
		if err != nil {
			return err
		}
		k.init = &Init{
			Seq:       k.nextInit,
			Format:    k.cfg.Format,
			Data:      data,
			Timescale: k.timescale(),
		}
		if ps := k.ps; ps != nil {
			k.init.SPS, k.init.PPS, k.init.Codec = ps.sps, ps.pps, ps.codec
			k.init.Width, k.init.Height = ps.width, ps.height
		}
		if a := k.aud; a != nil {
			k.init.AudioCodec, k.init.ASC = a.info.Codec, a.asc
			k.init.AudioTimescale = uint32(a.outTS)
			k.init.SampleRate, k.init.Channels = a.info.SampleRate, a.info.Channels
		}
		k.nextInit++
		k.initSent = true
		k.stats.Inits++
		if err := k.out.WriteInit(ctx, k.init); err != nil {
			k.err = err
			return err
		}
	}
	k.open = true
	k.segStart = dts
	k.segPTS = pts
	k.segFrames = 0
	k.segKeys = 0
	k.segDur = 0
	k.c.begin(k.seq, k.pool.get(int(k.size.Load())), dts)
	return nil
}

// closeSegment gives the last sample of the open segment its duration and
// emits the segment.
func (k *chunker) closeSegment(ctx context.Context, lastDur int64) error {
	k.lastClosedDur = lastDur
	if !k.open {
		return nil
	}
	if lastDur <= 0 {
		lastDur = k.fallbackDuration()
		k.lastClosedDur = lastDur
	}
	k.c.setDuration(lastDur)
	k.segDur += lastDur
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
	k.open = false
	if err != nil {
		return err
	}
	pool := k.pool
	k.size.Store(max(k.size.Load(), int64(fitSize(len(full)))))
	size := &k.size
	ts := k.timescale()
	seg := &Segment{
		Seq:           k.seq,
		Format:        k.cfg.Format,
		Init:          k.init,
		Data:          data,
		Timescale:     ts,
		FirstDTS:      k.segStart,
		FirstPTS:      k.segPTS,
		Duration:      k.segDur,
		Frames:        k.segFrames,
		Keyframes:     k.segKeys,
		Discontinuity: k.discont,
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
	k.seq++
	k.discont = false
	k.stats.Segments++
	k.stats.Bytes += int64(len(data))
	k.stats.MediaTicks += seg.Duration
	k.stats.LastSegmentSeq = seg.Seq
	k.stats.HaveLastSegment = true
	if seg.Discontinuity {
		k.stats.Discontinuities++
	}
	if seg.Long {
		k.stats.LongSegments++
	}
	if err := k.out.WriteSegment(ctx, seg); err != nil {
		k.err = err
		return err
	}
	return nil
}

func (k *chunker) Flush(ctx context.Context) error {
	if k.closed {
		return ErrClosed
	}
	if k.err != nil {
		return k.err
	}
	if k.cut.pending {
		if err := k.resolveCut(ctx); err != nil {
			return err
		}
	}
	if !k.open {
		return nil
	}
	if k.cfg.NoVideo {
		return k.emit(ctx)
	}
	// The open segment takes every audio frame still waiting.
	if err := k.releaseAudio(ctx, maxTime, true); err != nil {
		return err
	}
	d := k.fallbackDuration()
	if err := k.closeSegment(ctx, d); err != nil {
		return err
	}
	return nil
}

func (k *chunker) Break(ctx context.Context) error {
	if err := k.Flush(ctx); err != nil {
		return err
	}
	if k.stats.Segments > 0 {
		k.discont = true
	}
	return nil
}

func (k *chunker) Close(ctx context.Context) error {
	if k.closed {
		return nil
	}
	err := k.Flush(ctx)
	k.closed = true
	if a := k.aud; a != nil {
		k.stats.AudioDropped += int64(len(a.queue) - a.head)
		a.clearQueue()
	}
	if err != nil {
		return err
	}
	if k.stats.Samples == 0 && k.stats.DroppedNoKey > 0 && k.ps == nil {
		return ErrNoParameterSets
	}
	return nil
}
