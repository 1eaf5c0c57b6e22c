package stitch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/timeline"
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

// tsTimeline is a run of an MPEG-TS part's access units whose timestamps
// continue each other: from access unit j on, with unwrapped 90 kHz decode
// times from lo to hi, placed with offset off.
type tsTimeline struct {
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
	// audioLeftOut counts the AAC frames of parts whose configuration
	// differs from the track's, which are left out.
	audioLeftOut int
	matrix       [9]int32 // the first MP4 video track's tkhd matrix; zero: identity
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
	timelines []tsTimeline

	unwrap  timeline.Unwrapper // MPEG-TS: 33-bit timestamps
	reorder int64              // PTS minus DTS of the last keyframe kept

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
	m := &merger{
		ix:     &index{},
		log:    opt.logger(),
		tracks: map[*mp4.MoovBox]*trackInfo{},
		tsDesc: -1,
		to:     opt.To,
		unwrap: timeline.Unwrapper{Bits: timeline.WrapBitsTS},
	}
	parts := in.parts
	scans := startScans(ctx, parts, opt.concurrency())
	defer scans.stop()
	for i := range parts {
		res := scans.next()
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
	return m.finish(len(parts))
}

// finish completes the index once every part is merged: the last
// picture's duration, the presentation origin, the audio track.
func (m *merger) finish(parts int) (*index, error) {
	ix := m.ix
	if len(ix.samples) == 0 && ix.audio != nil && len(ix.audio.samples) > 0 {
		ix.audio.finish()
		return ix, nil // audio only
	}
	if len(ix.samples) == 0 {
		if ix.dropped > 0 {
			return nil, fmt.Errorf("%w: %d pictures but no keyframe", ErrNoInput, ix.dropped)
		}
		return nil, fmt.Errorf("%w: no H.264 pictures in %d parts", ErrNoInput, parts)
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

// scans reads the indexes of parts ahead of the merge, up to a number of
// them at once, each with its init section through one cache.
type scans struct {
	ctx     context.Context
	cancel  context.CancelFunc
	parts   []Part
	inits   *initCache
	results []chan scanResult
	started int // parts whose scan has started
	taken   int // results taken by next
}

// startScans starts the scans of the first workers parts.
func startScans(ctx context.Context, parts []Part, workers int) *scans {
	ctx, cancel := context.WithCancel(ctx)
	s := &scans{ctx: ctx, cancel: cancel, parts: parts, inits: newInitCache(), results: make([]chan scanResult, len(parts))}
	for range workers {
		s.launch()
	}
	return s
}

// launch starts the scan of the next part, if any.
func (s *scans) launch() {
	if s.started == len(s.parts) {
		return
	}
	i := s.started
	s.started++
	ch := make(chan scanResult, 1)
	s.results[i] = ch
	go func() { ch <- scanPart(s.ctx, &s.parts[i], s.inits) }()
}

// next waits for the next part's scan, in order, and starts another.
func (s *scans) next() scanResult {
	res := <-s.results[s.taken]
	s.results[s.taken] = nil
	s.taken++
	s.launch()
	return res
}

// stop stops the scans still running and waits for them, so that no part
// is opened after the first pass returns.
func (s *scans) stop() {
	s.cancel()
	for _, ch := range s.results {
		if ch != nil {
			<-ch
		}
	}
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

// threshold is the largest DTS step still treated as continuous (see
// timeline.Threshold).
func (m *merger) threshold() int64 {
	return timeline.Threshold(m.lastGap, m.ix.timescale)
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
	ti, own, err := m.partTrack(res)
	if err != nil {
		return false, err
	}
	if s.moov != nil && !own {
		return false, nil // an init section: used by the parts that follow
	}
	if len(s.moofs) == 0 && (ti == nil || !ti.hasSamples() || s.moov == nil) {
		return false, errorf(ErrInvalid, "no moov or moof box")
	}
	if ti == nil {
		return false, errorf(ErrInvalid, "movie fragments without an init section (moov) before them")
	}
	ls, noTFDT, err := trackSamples(ti, s)
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
	stop, err := m.merge(&partMerge{pi: &pi, ls: ls, ts: ti.timescale, shift: ti.shift, rebase: noTFDT,
		editOrigin: own && ti.hasEdit, descOf: descOf})
	if err != nil || stop {
		return stop, err
	}
	if a := ti.audio; a != nil {
		als, aNoTFDT, err := trackSamples(a, s)
		if err != nil {
			return false, err
		}
		if err := m.mergeAudio(&pi, als, nil, a, false, aNoTFDT, own && a.hasEdit); err != nil {
			return false, err
		}
	}
	m.addPartInfo(&pi)
	return false, nil
}

// partTrack returns the track an MP4 part's samples belong to: its own
// moov's, its init section's, or (for a bare fragment) the last init
// section's. own reports that the part's moov lists samples or the part has
// fragments; a moov that does neither is an init section, for which ti is
// nil and own false (the track is kept for the parts that follow).
func (m *merger) partTrack(res scanResult) (ti *trackInfo, own bool, err error) {
	s := res.mp4
	switch {
	case s.moov != nil:
		t, err := m.track(s.movie)
		if err != nil {
			return nil, false, err
		}
		m.cur = t
		if own = t.hasSamples() || len(s.moofs) > 0; !own {
			return nil, false, nil
		}
		return t, true, nil
	case res.init != nil:
		if _, seen := m.tracks[res.init.moov]; !seen {
			m.ix.reads += res.init.reads
		}
		t, err := m.track(res.init.movie)
		if err != nil {
			return nil, false, err
		}
		m.cur = t
		return t, false, nil
	}
	return m.cur, false, nil
}

// trackSamples lists a track's samples in an MP4 part: its sample tables'
// (a progressive file), then its fragments'. noTFDT reports a first
// fragment without tfdt: its times are relative.
func trackSamples(ti *trackInfo, s *mp4Scan) (ls []localSample, noTFDT bool, err error) {
	if s.moov != nil && ti.samples {
		if ls, err = progressiveSamples(ti, s.size); err != nil {
			return nil, false, err
		}
	}
	return fragmentSamples(ls, ti, s)
}

func (m *merger) addTS(p *Part, s *tsScan) (bool, error) {
	m.ix.hasTS = true
	m.ix.decErrs += s.decErrs
	if m.ix.timescale == 0 {
		m.ix.timescale = timeline.MPEGClock
	}
	k := 0
	descOf := func(j int, x *localSample) (int, error) {
		for k < len(s.ps) && s.ps[k].idx <= j {
			m.sps, m.pps = s.ps[k].sps, s.ps[k].pps
			k++
		}
		if x.sync || m.tsDesc < 0 {
			if m.tsDesc < 0 || !accessunit.Equal(m.ix.descs[m.tsDesc].sps, m.sps) || !accessunit.Equal(m.ix.descs[m.tsDesc].pps, m.pps) {
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
	var frames *tsFrames
	if s.audio != nil {
		frames = &tsFrames{frames: s.frames, frame: timeline.Rescale(int64(s.audio.info.FrameSamples), uint32(s.audio.info.SampleRate), timeline.MPEGClock)}
	}
	stop, err := m.merge(&partMerge{pi: &pi, ls: s.samples, ts: timeline.MPEGClock, isTS: true, descOf: descOf, gapAudio: frames})
	if err != nil || stop {
		return stop, err
	}
	if s.audio != nil && len(s.frames) > 0 {
		ti := &trackInfo{timescale: timeline.MPEGClock, ainfo: s.audio.info, asc: s.audio.asc}
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

// partMerge is the merging of one part's samples (see merge).
type partMerge struct {
	pi *partInfo
	ls []localSample
	ts uint32 // timescale of ls
	// shift (MP4): the edit list, added to the part's times
	shift int64
	isTS  bool
	// rebase: the part does not continue the previous one's timestamps.
	// editOrigin: the part's local time 0 is where presentation starts.
	rebase, editOrigin bool
	descOf             func(j int, x *localSample) (int, error)
	// gapAudio: the part's MPEG-TS audio frames, which tell a pause of
	// the video from a jump of its timestamps; nil for MP4, whose last
	// sample's duration says it.
	gapAudio *tsFrames

	firstPart        bool
	firstDTS, minPTS int64 // of the part's samples on the joined timeline
	runEnd           int64 // MP4: where the current run of samples ends
}

// merge places the samples of one part on the joined timeline, in named
// steps: the samples before the stream's first keyframe are dropped; each
// other sample is placed (its step classified, the timeline re-joined
// where the timestamps do not continue) and kept. stop reports that
// Options.To was passed.
func (m *merger) merge(p *partMerge) (bool, error) {
	p.pi.first = len(m.ix.samples)
	p.firstPart = len(m.ix.parts) == 0
	m.timelines = m.timelines[:0]
	for j := range p.ls {
		x := &p.ls[j]
		if len(m.ix.samples) == 0 && !x.sync {
			// Nothing before the first keyframe can be decoded.
			m.ix.dropped++
			p.pi.skip = j + 1
			if p.isTS {
				m.unwrap.Unwrap(x.dts) // keep the unwrapping state going
			}
			continue
		}
		d, err := p.descOf(j, x)
		if err != nil {
			return false, err
		}
		if d > 0xffff {
			return false, errorf(ErrUnsupported, "more than 65535 sample descriptions")
		}
		dt, pt := m.local(p, x)
		D, P := m.place(p, j, dt, pt)
		if err := m.keep(p, j, x, d, dt, D, P); err != nil {
			return false, err
		}
	}
	return m.endPart(p), nil
}

// local returns a sample's decode and presentation times in the output
// timescale, before the joined timeline's offset: MPEG-TS times unwrapped,
// MP4 times with the edit list applied.
func (m *merger) local(p *partMerge, x *localSample) (dt, pt int64) {
	if p.isTS {
		dt = m.unwrap.Unwrap(x.dts)
		return dt, dt + timeline.WrapDiff(x.pts-x.dts, timeline.WrapBitsTS)
	}
	out := m.ix.timescale
	return timeline.Rescale(x.dts+p.shift, p.ts, out), timeline.Rescale(x.pts+p.shift, p.ts, out)
}

// place returns sample j's decode and presentation times on the joined
// timeline: its local times moved by the offset, which a step that does
// not continue (continues) changes (rejoin).
func (m *merger) place(p *partMerge, j int, dt, pt int64) (D, P int64) {
	D, P = dt+m.offset, pt+m.offset
	switch {
	case len(m.ix.samples) == 0:
		m.dts0, m.lastDTS = D, D
	case m.continues(p.pi, p.ls, j, D, p.rebase, p.gapAudio):
		m.ix.samples[len(m.ix.samples)-1].dur = clampDur(D - m.lastDTS)
	default:
		D, P = m.rejoin(D, P, p.ls[j].sync)
		if p.isTS && len(m.timelines) > 0 {
			m.timelines = append(m.timelines, tsTimeline{j: j, lo: dt, hi: dt, off: m.offset})
		}
		m.log.Debug("stitch: timestamps do not continue; joining the timeline", "part", p.pi.part.Name, "sample", j)
	}
	if p.editOrigin && !m.haveOrigin && p.firstPart {
		m.origin, m.haveOrigin = timeline.Rescale(0, p.ts, m.ix.timescale)+m.offset, true
	}
	return D, P
}

// keep adds sample j, placed at D and P with description d, to the joined
// table, and to the part's runs (MP4) or timelines (MPEG-TS).
func (m *merger) keep(p *partMerge, j int, x *localSample, d int, dt, D, P int64) error {
	cto := P - D
	if cto > 1<<31-1 || cto < -1<<31 {
		return errorf(ErrInvalid, "composition offset %d out of range", cto)
	}
	if x.sync {
		m.reorder = cto
	}
	pi := p.pi
	if len(m.ix.samples) == pi.first {
		p.firstDTS, p.minPTS = D, P
		pi.voff, pi.vok = m.offset, true
		if p.isTS {
			m.timelines = append(m.timelines, tsTimeline{j: j, lo: dt, hi: dt, off: m.offset})
		}
	}
	if n := len(m.timelines); p.isTS && n > 0 {
		tl := &m.timelines[n-1]
		tl.lo, tl.hi = min(tl.lo, dt), max(tl.hi, dt)
	}
	p.minPTS = min(p.minPTS, P)
	m.ix.samples = append(m.ix.samples, sample{size: x.size, cto: int32(cto), desc: uint16(d), sync: x.sync})
	m.lastDTS = D
	m.lastDur = 0
	if p.isTS {
		return nil
	}
	if x.dur > 0 {
		m.lastDur = timeline.Rescale(x.dts+p.shift+int64(x.dur), p.ts, m.ix.timescale) - dt
	}
	if n := len(pi.runs); n > 0 && x.off == p.runEnd && pi.runs[n-1].n < 1<<31-1 {
		pi.runs[n-1].n++
	} else {
		pi.runs = append(pi.runs, run{off: x.off, n: 1})
	}
	p.runEnd = x.off + int64(x.size)
	return nil
}

// endPart closes the part's samples: it records where the part began and
// what it declares, the presentation origin, and reports whether
// Options.To was passed before the part (which is then not kept).
func (m *merger) endPart(p *partMerge) (stop bool) {
	ix, pi := m.ix, p.pi
	pi.n = len(ix.samples) - pi.first
	if pi.n == 0 {
		return false
	}
	out := ix.timescale
	m.partStart, m.partDur = p.firstDTS, timeline.Ticks(pi.part.Duration, out)
	if !m.haveOrigin {
		m.origin, m.haveOrigin = p.minPTS, true
	}
	if m.to > 0 && !p.firstPart {
		to := m.origin + timeline.Ticks(m.to, out)
		if p.firstDTS >= to && p.minPTS >= to {
			// Everything from here on is presented after To.
			ix.samples = ix.samples[:pi.first]
			return true
		}
	}
	return false
}

// continues reports whether sample j of the part, at decode time D on the
// joined timeline, continues the sample before it, by the continuity rule
// (timeline.Classify): a step over the threshold is a pause of the video
// when the part's audio runs on through it, when it fits in the part's
// declared duration, or when the part begins where the previous part's
// declared duration ends. A declared discontinuity at the part's first
// sample (rebase, or Part.Discontinuity with a step of more than two
// frames) does not continue, unless the timestamps plainly do (as the
// chunker writes them).
func (m *merger) continues(pi *partInfo, ls []localSample, j int, D int64, rebase bool, audio *tsFrames) bool {
	x := &ls[j]
	gap := D - m.lastDTS
	e := timeline.Evidence{Step: gap, Threshold: m.threshold(), Keyframe: x.sync}
	if gap > e.Threshold {
		switch {
		case j > pi.skip:
			e.AudioRanOn = audio.ranOn(ls[j-1].dts, x.dts)
			e.Declared = gap < timeline.Ticks(pi.part.Duration, m.ix.timescale)
		case !rebase && !pi.part.Discontinuity && m.partDur > 0:
			e.Declared = abs(D-(m.partStart+m.partDur)) <= gap/4
		}
	}
	st := timeline.Classify(e)
	if j == pi.skip && (rebase || (pi.part.Discontinuity && gap > 2*int64(clampDur(m.fallbackDur())))) {
		return false
	}
	if st == timeline.Continue {
		m.lastGap = gap // a frame step: the jump threshold follows it
	}
	return st == timeline.Continue || st == timeline.Pause
}

// rejoin places a sample whose timestamps do not continue right after the
// last one kept (timeline.Follow: presented where the pictures before end;
// a picture that is not a keyframe continues the decode times), and
// returns its decode and presentation times.
func (m *merger) rejoin(D, P int64, keyframe bool) (int64, int64) {
	dur := int64(clampDur(m.fallbackDur()))
	reorder, pts := m.reorder, P
	if !keyframe {
		reorder, pts = 0, D
	}
	off, _ := timeline.Follow(m.lastDTS, dur, reorder, D, pts)
	m.offset += off
	m.ix.samples[len(m.ix.samples)-1].dur = clampDur(dur)
	m.ix.discont++
	return D + off, P + off
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// tsFrames are the AAC frames of an MPEG-TS part (raw 33-bit PTS, in
// stream order) and their nominal duration in 90 kHz ticks.
type tsFrames struct {
	frames []localSample
	frame  int64
}

// ranOn reports whether the audio went on through the video's step from
// the raw decode time from to to (timeline.AudioRun.RanOn over the frames
// around the step, in stream order). Audio of another timeline in the
// same object (streams joined end to end) that falls inside a jump does
// not run on from the step's start.
func (a *tsFrames) ranOn(from, to int64) bool {
	if a == nil || len(a.frames) == 0 {
		return false
	}
	span := timeline.WrapDiff(to-from, timeline.WrapBitsTS)
	th := timeline.Threshold(a.frame, timeline.MPEGClock)
	var run timeline.AudioRun
	for _, f := range a.frames {
		d := timeline.WrapDiff(f.pts-from, timeline.WrapBitsTS)
		if d < -th || d > span {
			continue
		}
		run.Add(d, a.frame, th)
	}
	return run.RanOn(0, span, a.frame, timeline.MPEGClock)
}
