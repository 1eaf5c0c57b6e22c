package stitch

import (
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// sample is one access unit of the joined stream: what the first pass
// keeps per sample (16 bytes), and all that the moov needs.
type sample struct {
	size uint32
	dur  uint32 // ticks to the next sample's DTS
	cto  int32  // PTS - DTS
	desc uint16 // index into index.descs
	sync bool
}

// localSample is a sample as read from one part, before it is placed on
// the joined timeline. Only one part's worth exists at a time.
type localSample struct {
	dts, pts int64 // part-local ticks (raw 33-bit values for MPEG-TS)
	off      int64 // object offset of the payload; -1 for MPEG-TS
	size     uint32
	dur      uint32 // 0 when unknown (MPEG-TS)
	sync     bool
	desc     int32 // MP4: 0-based sample description index of the track
}

// run is a range of consecutive samples stored back to back in an object.
type run struct {
	off int64
	n   int32
}

// partInfo locates the samples of one part.
type partInfo struct {
	part  *Part
	ts    bool  // MPEG-TS: payloads are converted from Annex-B
	first int   // index of the part's first sample in index.samples
	n     int   // number of samples kept
	skip  int   // MPEG-TS: access units before the first kept one
	runs  []run // MP4: where the kept samples are
	size  int64 // object size seen by the first pass
	voff  int64 // the part's video offset (output = local + voff), when vok
	vok   bool
	audio audioPart // the part's AAC frames
}

// timeline is a run of an MPEG-TS part's access units whose timestamps
// continue each other: from access unit j on, with unwrapped 90 kHz decode
// times from lo to hi, placed with offset off.
type timeline struct {
	j      int
	lo, hi int64
	off    int64
}

// desc is one sample description (stsd entry) of the output.
type desc struct {
	entry    mp4.Box // avc1 or avc3 VisualSampleEntryBox
	key      []byte  // the entry's encoding, for deduplication
	sps, pps [][]byte
	width    int
	height   int
}

// index is the result of the first pass: the joined stream's sample table.
type index struct {
	timescale uint32
	samples   []sample
	parts     []partInfo
	descs     []*desc
	origin    int64 // presentation start, ticks after the DTS of samples[0]
	dropped   int   // samples before the first keyframe, not kept
	discont   int   // places where the timeline was re-joined
	reads     int   // range requests made for MP4 indexes
	decErrs   int   // recoverable MPEG-TS demuxing errors
	stopped   bool  // indexing stopped early after Options.To
	hasTS     bool
	hasMP4    bool
	dts0      int64       // absolute output time of samples[0]
	audio     *audioIndex // the AAC track, nil if none
	matrix    [9]int32    // the first MP4 video track's tkhd matrix; zero: identity
}

// merger places the samples of consecutive parts on one timeline.
type merger struct {
	ix     *index
	log    *slog.Logger
	tracks map[*mp4.MoovBox]*trackInfo
	cur    *trackInfo // track of the last init section seen

	offset  int64 // output = converted local time + offset
	lastDTS int64 // DTS of the last sample kept
	lastDur int64 // its own duration, when the input says (0: unknown)
	lastGap int64 // the last DTS step
	dts0    int64

	// The last part with samples: its first DTS and its declared
	// duration (Part.Duration, 0 unknown), where the next part must begin
	// when the timestamps continue.
	partStart, partDur int64

	// timelines of the MPEG-TS part being merged: one, or more when its
	// timestamps jump inside it (streams joined end to end), each with the
	// offset its pictures got, for its audio (mergeAudio).
	timelines []timeline

	rawHave bool // MPEG-TS unwrapping of 33-bit timestamps
	rawLast int64
	rawAcc  int64

	sps, pps [][]byte // MPEG-TS: parameter sets in force
	tsDesc   int      // MPEG-TS: sample description in use, -1 none

	haveOrigin bool
	origin     int64 // absolute
	to         time.Duration
}

// buildIndex runs the first pass over in: it reads the index of every part
// (moov/moof boxes with range reads; MPEG-TS demuxed, keeping only
// metadata), several parts at once, and merges them in order.
func buildIndex(ctx context.Context, in *Input, opt Options) (*index, error) {
	if in == nil || len(in.parts) == 0 {
		return nil, fmt.Errorf("%w: no parts", ErrNoInput)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &merger{
		ix:     &index{},
		log:    opt.logger(),
		tracks: map[*mp4.MoovBox]*trackInfo{},
		tsDesc: -1,
		to:     opt.To,
	}
	parts := in.parts
	workers := opt.concurrency()
	inits := newInitCache()
	results := make([]chan scanResult, len(parts))
	defer func() {
		// Stop the scans still running and wait for them, so that no
		// part is opened after the call returns.
		cancel()
		for _, ch := range results {
			if ch != nil {
				<-ch
			}
		}
	}()
	started := 0
	launch := func() {
		if started < len(parts) {
			i := started
			started++
			ch := make(chan scanResult, 1)
			results[i] = ch
			go func() { ch <- scanPart(ctx, &parts[i], inits) }()
		}
	}
	for range workers {
		launch()
	}
	for i := range parts {
		res := <-results[i]
		results[i] = nil
		launch()
		if res.err != nil {
			return nil, partErr(parts[i].Name, res.err)
		}
		stop, err := m.addPart(&parts[i], res)
		if err != nil {
			return nil, partErr(parts[i].Name, err)
		}
		if len(m.ix.parts) == 1 && len(parts) > i+1 && cap(m.ix.samples) < 1<<24 {
			// Size the table for parts like the first one, so that it
			// does not grow by doubling (and copying) to twice its size.
			est := len(m.ix.samples) + len(m.ix.samples)*(len(parts)-i-1)*21/20 + 16
			m.ix.samples = slices.Grow(m.ix.samples, min(est, 1<<24)-len(m.ix.samples))
		}
		if stop {
			m.ix.stopped = true
			break
		}
	}
	ix := m.ix
	if len(ix.samples) == 0 && ix.audio != nil && len(ix.audio.samples) > 0 {
		ix.audio.finish()
		return ix, nil // audio only
	}
	if len(ix.samples) == 0 {
		if ix.dropped > 0 {
			return nil, fmt.Errorf("%w: %d pictures but no keyframe", ErrNoInput, ix.dropped)
		}
		return nil, fmt.Errorf("%w: no H.264 pictures in %d parts", ErrNoInput, len(parts))
	}
	if !ix.stopped {
		last := &ix.samples[len(ix.samples)-1]
		last.dur = clampDur(m.fallbackDur())
	}
	ix.origin = m.origin - m.dts0
	ix.dts0 = m.dts0
	if ix.audio != nil {
		ix.audio.finish()
	}
	if ix.dropped > 0 {
		m.log.Warn("stitch: pictures before the first keyframe dropped", "count", ix.dropped)
	}
	return ix, nil
}

// fallbackDur is the duration of the last sample when no following sample
// tells it: its own (MP4), else the last DTS step, else one tick.
func (m *merger) fallbackDur() int64 {
	switch {
	case m.lastDur > 0:
		return m.lastDur
	case m.lastGap > 0:
		return m.lastGap
	}
	return 1
}

// clampDur converts a duration in ticks to a sample duration.
func clampDur(d int64) uint32 { return uint32(min(max(d, 1), 1<<32-1)) }

// threshold is the largest DTS step still treated as continuous: ten
// frames, at least one second.
func (m *merger) threshold() int64 {
	return max(int64(m.ix.timescale), 10*m.lastGap)
}

// addPart merges one part. stop reports that Options.To was passed and no
// further part is needed.
func (m *merger) addPart(p *Part, res scanResult) (stop bool, err error) {
	defer guard(&err, "sample tables")
	switch {
	case res.ts != nil:
		return m.addTS(p, res.ts)
	case res.mp4 != nil:
		return m.addMP4(p, res)
	}
	return false, errorf(ErrInvalid, "nothing read")
}

func (m *merger) addMP4(p *Part, res scanResult) (bool, error) {
	s := res.mp4
	var ti *trackInfo
	own := false
	switch {
	case s.moov != nil:
		t, err := m.track(s.movie)
		if err != nil {
			return false, err
		}
		ti, m.cur = t, t
		own = t.hasSamples() || len(s.moofs) > 0
		if !own {
			return false, nil // an init section: used by the parts that follow
		}
	case res.init != nil:
		if _, seen := m.tracks[res.init.moov]; !seen {
			m.ix.reads += res.init.reads
		}
		t, err := m.track(res.init.movie)
		if err != nil {
			return false, err
		}
		ti, m.cur = t, t
	default:
		ti = m.cur
	}
	if len(s.moofs) == 0 && (ti == nil || !ti.hasSamples() || s.moov == nil) {
		return false, errorf(ErrInvalid, "no moov or moof box")
	}
	if ti == nil {
		return false, errorf(ErrInvalid, "movie fragments without an init section (moov) before them")
	}
	var ls []localSample
	var err error
	if s.moov != nil && ti.samples {
		ls, err = progressiveSamples(ti, s.size)
		if err != nil {
			return false, err
		}
	}
	noTFDT := false
	ls, noTFDT, err = fragmentSamples(ls, ti, s)
	if err != nil {
		return false, err
	}
	m.ix.reads += s.reads
	m.ix.hasMP4 = true
	if m.ix.timescale == 0 {
		m.ix.timescale = ti.timescale
		m.ix.matrix = ti.matrix
	}
	descOf := func(j int, x *localSample) (int, error) {
		if x.desc < 0 || int(x.desc) >= len(ti.descIdx) || ti.descIdx[x.desc] < 0 {
			return 0, errorf(ErrUnsupported, "sample description %d is not H.264 (avc1/avc3)", x.desc+1)
		}
		return ti.descIdx[x.desc], nil
	}
	pi := partInfo{part: p, size: s.size}
	stop, err := m.merge(&pi, ls, ti.timescale, ti.shift, false, noTFDT, own && ti.hasEdit, descOf, nil)
	if err != nil || stop {
		return stop, err
	}
	if a := ti.audio; a != nil {
		var als []localSample
		if s.moov != nil && a.samples {
			if als, err = progressiveSamples(a, s.size); err != nil {
				return false, err
			}
		}
		aNoTFDT := false
		if als, aNoTFDT, err = fragmentSamples(als, a, s); err != nil {
			return false, err
		}
		if err := m.mergeAudio(&pi, als, nil, a, false, aNoTFDT, own && a.hasEdit); err != nil {
			return false, err
		}
	}
	m.addPartInfo(&pi)
	return false, nil
}

func (m *merger) addTS(p *Part, s *tsScan) (bool, error) {
	m.ix.hasTS = true
	m.ix.decErrs += s.decErrs
	if m.ix.timescale == 0 {
		m.ix.timescale = 90000
	}
	k := 0
	descOf := func(j int, x *localSample) (int, error) {
		for k < len(s.ps) && s.ps[k].idx <= j {
			m.sps, m.pps = s.ps[k].sps, s.ps[k].pps
			k++
		}
		if x.sync || m.tsDesc < 0 {
			if m.tsDesc < 0 || !equalNALUs(m.ix.descs[m.tsDesc].sps, m.sps) || !equalNALUs(m.ix.descs[m.tsDesc].pps, m.pps) {
				d, err := m.descForPS(m.sps, m.pps)
				if err != nil {
					return 0, err
				}
				m.tsDesc = d
			}
		}
		return m.tsDesc, nil
	}
	pi := partInfo{part: p, ts: true, size: s.size}
	stop, err := m.merge(&pi, s.samples, 90000, 0, true, false, false, descOf, s.frames)
	if err != nil || stop {
		return stop, err
	}
	if s.audio != nil && len(s.frames) > 0 {
		ti := &trackInfo{timescale: 90000, ainfo: s.audio.info, asc: s.audio.asc}
		if err := m.mergeAudio(&pi, s.frames, s.frameAt, ti, true, false, false); err != nil {
			return false, err
		}
	}
	m.addPartInfo(&pi)
	return false, nil
}

// addPartInfo keeps a part that has video or audio samples.
func (m *merger) addPartInfo(pi *partInfo) {
	if pi.n > 0 || pi.audio.n > 0 {
		m.ix.parts = append(m.ix.parts, *pi)
	}
}

// merge places the samples ls of one part on the joined timeline.
// rebase: the part does not continue the previous one's timestamps.
// editOrigin: the part's local time 0 is where presentation starts.
// gapAudio: the part's MPEG-TS audio frames (raw PTS), which tell a pause
// of the video from a jump of its timestamps; nil for MP4, whose last
// sample's duration says it.
func (m *merger) merge(pi *partInfo, ls []localSample, ts uint32, shift int64, isTS, rebase, editOrigin bool,
	descOf func(j int, x *localSample) (int, error), gapAudio []localSample) (bool, error) {
	ix := m.ix
	out := ix.timescale
	pi.first = len(ix.samples)
	firstPart := len(ix.parts) == 0
	m.timelines = m.timelines[:0]
	partFirstDTS, partMinPTS := int64(0), int64(0)
	var runEnd int64
	for j := range ls {
		x := &ls[j]
		if len(ix.samples) == 0 && !x.sync {
			// Nothing before the first keyframe can be decoded.
			ix.dropped++
			pi.skip = j + 1
			if isTS {
				m.unwrap(x.dts) // keep the unwrapping state going
			}
			continue
		}
		d, err := descOf(j, x)
		if err != nil {
			return false, err
		}
		if d > 0xffff {
			return false, errorf(ErrUnsupported, "more than 65535 sample descriptions")
		}
		var dt, pt int64
		if isTS {
			dt = m.unwrap(x.dts)
			pt = dt + wrap33(x.pts-x.dts)
		} else {
			dt = rescale(x.dts+shift, ts, out)
			pt = rescale(x.pts+shift, ts, out)
		}
		D, P := dt+m.offset, pt+m.offset
		if len(ix.samples) == 0 {
			m.dts0 = D
			m.lastDTS = D
		} else {
			gap := D - m.lastDTS
			dur := int64(clampDur(m.fallbackDur()))
			jump := gap <= 0 || gap > m.threshold()
			var pause bool
			switch {
			case !jump || gap <= 0:
			case j > pi.skip:
				pause = audioInGap(gapAudio, ls[j-1].dts, x.dts) || gap < durationToTicks(pi.part.Duration, out)
			case !rebase && !pi.part.Discontinuity && m.partDur > 0:
				// The first sample of a part: where the previous part's
				// declared duration ends.
				pause = abs(D-(m.partStart+m.partDur)) <= gap/4
			}
			if pause {
				// The part's audio runs on through the step, or the step
				// fits in the part's declared duration, or the part begins
				// where the previous one's ends: the video paused (a
				// variable frame rate, as in a screen recording); its
				// timestamps did not jump.
				jump = false
			}
			if j == pi.skip && (rebase || (pi.part.Discontinuity && gap > 2*dur)) {
				// A declared discontinuity: close the gap unless the
				// timestamps plainly continue (as the chunker writes them).
				jump = true
			}
			if jump {
				m.offset += m.lastDTS + dur - D
				D, P = m.lastDTS+dur, pt+m.offset
				ix.samples[len(ix.samples)-1].dur = clampDur(dur)
				ix.discont++
				if isTS && len(m.timelines) > 0 {
					m.timelines = append(m.timelines, timeline{j: j, lo: dt, hi: dt, off: m.offset})
				}
				m.log.Debug("stitch: timestamps do not continue; joining the timeline", "part", pi.part.Name, "sample", j, "step", gap)
			} else {
				ix.samples[len(ix.samples)-1].dur = clampDur(gap)
				if !pause {
					m.lastGap = gap // a frame step: the jump threshold follows it
				}
			}
		}
		if editOrigin && !m.haveOrigin && firstPart {
			m.origin, m.haveOrigin = rescale(0, ts, out)+m.offset, true
		}
		cto := P - D
		if cto > 1<<31-1 || cto < -1<<31 {
			return false, errorf(ErrInvalid, "composition offset %d out of range", cto)
		}
		if len(ix.samples) == pi.first {
			partFirstDTS, partMinPTS = D, P
			pi.voff, pi.vok = m.offset, true
			if isTS {
				m.timelines = append(m.timelines, timeline{j: j, lo: dt, hi: dt, off: m.offset})
			}
		}
		if n := len(m.timelines); isTS && n > 0 {
			tl := &m.timelines[n-1]
			tl.lo, tl.hi = min(tl.lo, dt), max(tl.hi, dt)
		}
		partMinPTS = min(partMinPTS, P)
		ix.samples = append(ix.samples, sample{size: x.size, cto: int32(cto), desc: uint16(d), sync: x.sync})
		m.lastDTS = D
		m.lastDur = 0
		if x.dur > 0 && !isTS {
			m.lastDur = rescale(x.dts+shift+int64(x.dur), ts, out) - dt
		}
		if !isTS {
			if n := len(pi.runs); n > 0 && x.off == runEnd && pi.runs[n-1].n < 1<<31-1 {
				pi.runs[n-1].n++
			} else {
				pi.runs = append(pi.runs, run{off: x.off, n: 1})
			}
			runEnd = x.off + int64(x.size)
		}
	}
	pi.n = len(ix.samples) - pi.first
	if pi.n == 0 {
		return false, nil
	}
	m.partStart, m.partDur = partFirstDTS, durationToTicks(pi.part.Duration, out)
	if !m.haveOrigin {
		m.origin, m.haveOrigin = partMinPTS, true
	}
	if m.to > 0 && !firstPart {
		to := m.origin + durationToTicks(m.to, out)
		if partFirstDTS >= to && partMinPTS >= to {
			// Everything from here on is presented after To.
			ix.samples = ix.samples[:pi.first]
			return true, nil
		}
	}
	return false, nil
}

// unwrap returns the 33-bit MPEG-TS timestamp v made continuous with the
// previous one.
func (m *merger) unwrap(v int64) int64 {
	if !m.rawHave {
		m.rawHave, m.rawAcc, m.rawLast = true, v, v
		return v
	}
	m.rawAcc += wrap33(v - m.rawLast)
	m.rawLast = v
	return m.rawAcc
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// audioInGap reports whether the audio frames (raw 33-bit PTS, in stream
// order) fill most of the step from the raw decode time from to to: the
// frames that start inside it cover three quarters of it. Audio of
// another timeline in the same object (streams joined end to end) that
// merely falls inside a jump does not fill it.
func audioInGap(frames []localSample, from, to int64) bool {
	span := wrap33(to - from)
	var covered, prev int64
	have := false
	for _, f := range frames {
		d := wrap33(f.pts - from)
		if d <= 0 || d >= span {
			have = false
			continue
		}
		if have && d > prev && d-prev <= span/4 {
			covered += d - prev // from the frame before to this one
		}
		prev, have = d, true
	}
	return covered >= span*3/4
}

// wrap33 maps a difference of 33-bit timestamps to [-2^32, 2^32).
func wrap33(d int64) int64 {
	const w = int64(1) << 33
	d &= w - 1
	if d >= w/2 {
		d -= w
	}
	return d
}

// rescale converts t from timescale from to timescale to, rounding down.
func rescale(t int64, from, to uint32) int64 { return convertTicks(t, from, to, false) }

// rescaleRound converts t from timescale from to timescale to, rounding to
// the nearest tick (halves away from zero).
func rescaleRound(t int64, from, to uint32) int64 { return convertTicks(t, from, to, true) }

// convertTicks computes t*to/from in 128 bits, rounded down or to the
// nearest tick.
func convertTicks(t int64, from, to uint32, round bool) int64 {
	if from == to || from == 0 {
		return t
	}
	neg := t < 0
	u := uint64(t)
	if neg {
		u = uint64(-t)
	}
	hi, lo := bits.Mul64(u, uint64(to))
	if round {
		var carry uint64
		lo, carry = bits.Add64(lo, uint64(from/2), 0)
		hi += carry
	}
	if hi >= uint64(from) {
		hi %= uint64(from) // out of range anyway; avoid the panic
	}
	q, r := bits.Div64(hi, lo, uint64(from))
	v := int64(q)
	if neg {
		v = -v
		if r != 0 && !round {
			v-- // floor
		}
	}
	return v
}

// durationToTicks converts d to ticks of timescale ts, rounding down.
func durationToTicks(d time.Duration, ts uint32) int64 {
	return rescale(int64(d), 1e9, ts)
}

// ticksToDuration converts ticks of timescale ts to a duration.
func ticksToDuration(t int64, ts uint32) time.Duration {
	if ts == 0 {
		return 0
	}
	return time.Duration(rescale(t, ts, 1e9))
}
