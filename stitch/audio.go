package stitch

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// asample is one AAC frame of the joined audio track: what the first pass
// keeps per frame (8 bytes). AAC frames are all sync samples and have no
// composition offset.
type asample struct {
	size uint32
	dur  uint32 // output ticks to the next frame
}

// audioPart locates the AAC frames of one part.
type audioPart struct {
	first int     // index of the part's first frame in audioIndex.samples
	n     int     // frames kept
	runs  []run   // MP4: where they are
	drop  []int32 // MPEG-TS: frames of the part (in stream order) left out
}

// audioIndex is the joined AAC track.
type audioIndex struct {
	timescale uint32 // output: the sample rate
	frame     int64  // nominal frame duration, ticks
	entry     *mp4.AudioSampleEntryBox
	asc       []byte
	info      chunker.AACInfo
	samples   []asample
	start     int64 // absolute output time of samples[0], audio ticks
	origin    int64 // where presentation starts (an input edit list), absolute
	hasOrigin bool
	lastStart int64 // absolute time of the last frame kept
	lastEnd   int64 // and its end
	aoff      int64 // audio only: output = converted local time + aoff
	dropped   int   // frames left out because they overlap the previous ones
}

// finish ends the table: the first frame's time is the default origin.
func (a *audioIndex) finish() {
	if !a.hasOrigin {
		a.origin, a.hasOrigin = a.start, true
	}
}

// audioIndexFor returns the joined AAC track, created from the first
// configuration seen; nil for a part whose configuration differs (a
// microphone that changed between chunks): its frames cannot go into a
// track whose sample entry says otherwise, and are left out, as a live
// recording of the same parts leaves them out.
func (m *merger) audioIndexFor(ti *trackInfo, asc []byte) *audioIndex {
	a := m.ix.audio
	if a == nil {
		rate := uint32(ti.ainfo.SampleRate)
		a = &audioIndex{timescale: rate, frame: int64(ti.ainfo.FrameSamples), info: ti.ainfo, asc: asc}
		// A new MP4 sample entry with the exact AudioSpecificConfig (as
		// the chunker writes it): the input's may be a QuickTime one.
		ch, r := ti.ainfo.Channels, ti.ainfo.SampleRate
		if ch <= 0 {
			ch = 2
		}
		if r > 0xffff {
			r = 0 // readers take the rate from the ASC
		}
		a.entry = mp4.CreateAudioSampleEntryBox("mp4a", uint16(ch), 16, uint16(r), mp4.CreateEsdsBox(asc))
		m.ix.audio = a
		return a
	}
	if !bytes.Equal(a.asc, asc) {
		return nil
	}
	return a
}

// mergeAudio places the AAC frames ls of one part on the joined timeline:
// with the part's video offset when the part has video (so that audio
// stays in sync with it), else continuing the previous part's audio.
// Frames that truly overlap the ones before them (timeline.FitAudio: the
// encoder priming of a chunk that starts again at 0) are left out; a
// frame within a millisecond of the end of the one before it starts
// there. frameAt (MPEG-TS, tsScan.frameAt; nil for MP4) is where each
// frame came among the part's access units, which tells its timeline when
// the part's timestamps jump (m.timelines).
func (m *merger) mergeAudio(pi *partInfo, ls []localSample, frameAt []int32, ti *trackInfo, isTS, rebase, editOrigin bool) error {
	if len(ls) == 0 {
		return nil
	}
	a := m.audioIndexFor(ti, ti.asc)
	if a == nil {
		m.ix.audioLeftOut += len(ls)
		m.log.Warn("stitch: a part's audio is left out: its AAC configuration differs from the first part's",
			"part", pi.part.Name, "frames", len(ls))
		return nil
	}
	am := &audioMerge{m: m, a: a, pi: pi, ti: ti, isTS: isTS}
	off := am.offset(ls, rebase)
	pi.audio.first = len(a.samples)
	// An MPEG-TS part whose timestamps jump inside it has more than one
	// timeline: each frame takes the offset of its own.
	multi := isTS && pi.vok && len(m.timelines) > 1 && len(frameAt) == len(ls)
	for j := range ls {
		x := &ls[j]
		if multi {
			off = am.timelineOffset(x, int(frameAt[j]))
		}
		t, dur := am.conv(x)+off, am.duration(x)
		if len(a.samples) == 0 {
			a.start, a.lastStart, a.lastEnd = t, t, t
			if editOrigin && !a.hasOrigin {
				a.origin, a.hasOrigin = off, true // local time 0 is where the input's edit starts
			}
		} else {
			var ok bool
			if t, ok = timeline.FitAudio(a.lastStart, a.lastEnd, t, dur, a.timescale); !ok {
				// Overlaps the frames before it.
				a.dropped++
				if isTS {
					pi.audio.drop = append(pi.audio.drop, int32(j))
				}
				continue
			}
			a.samples[len(a.samples)-1].dur = clampDur(t - a.lastStart)
		}
		a.samples = append(a.samples, asample{size: x.size, dur: clampDur(dur)})
		a.lastStart, a.lastEnd = t, t+dur
		am.addRun(x)
	}
	pi.audio.n = len(a.samples) - pi.audio.first
	return nil
}

// audioMerge is the merging of one part's audio frames (see mergeAudio).
type audioMerge struct {
	m      *merger
	a      *audioIndex
	pi     *partInfo
	ti     *trackInfo
	isTS   bool
	runEnd int64 // MP4: where the current run of frames ends
	// MPEG-TS parts of several timelines: the previous frame's timeline
	// and unwrapped time
	tl      int
	prevRaw int64
	started bool
}

// conv returns a frame's time in output audio ticks, before the part's
// offset.
func (am *audioMerge) conv(x *localSample) int64 {
	out := am.a.timescale
	if !am.isTS {
		return timeline.Rescale(x.dts+am.ti.shift, am.ti.timescale, out)
	}
	if am.pi.vok {
		return timeline.Rescale(am.m.unwrap.Peek(x.dts), timeline.MPEGClock, out)
	}
	return timeline.Rescale(am.m.unwrap.Unwrap(x.dts), timeline.MPEGClock, out)
}

// duration returns a frame's duration in output audio ticks: as the MP4
// declares it when that is shorter than the nominal one
// (timeline.FrameDuration), else the nominal one.
func (am *audioMerge) duration(x *localSample) int64 {
	if x.dur > 0 && !am.isTS {
		ts, out := am.ti.timescale, am.a.timescale
		return timeline.FrameDuration(timeline.Rescale(x.dts+int64(x.dur), ts, out)-timeline.Rescale(x.dts, ts, out), am.a.frame)
	}
	return am.a.frame
}

// offset returns the part's audio offset (output audio ticks): its video's
// when it has video (video local times map to output video ticks as
// Rescale(local) + voff), else the audio's own, continuing the previous
// part's audio when the part's audio does not continue it.
func (am *audioMerge) offset(ls []localSample, rebase bool) int64 {
	a, pi, out := am.a, am.pi, am.a.timescale
	if pi.vok {
		if am.isTS {
			return timeline.Rescale(pi.voff, timeline.MPEGClock, out) // MPEG-TS video times are not rescaled
		}
		return timeline.Rescale(pi.voff, am.m.ix.timescale, out)
	}
	if len(a.samples) > 0 {
		t := am.conv(&ls[0]) + a.aoff
		if gap := t - a.lastEnd; rebase || gap < -a.frame/2 || gap > timeline.Threshold(a.frame, out) {
			a.aoff += a.lastEnd - t
			am.m.ix.discont++
		}
	}
	return a.aoff
}

// timelineOffset returns the offset of the timeline of an MPEG-TS frame
// that came after k access units: a frame that follows the one before it
// (within two frames) is on its timeline; after a step of the audio's own
// times, its stream position (or its time) tells (timelineOf).
func (am *audioMerge) timelineOffset(x *localSample, k int) int64 {
	out := am.a.timescale
	frame90 := timeline.Rescale(am.a.frame, out, timeline.MPEGClock)
	raw := am.m.unwrap.Peek(x.dts)
	if d := raw - am.prevRaw; !am.started || d < -frame90 || d > 3*frame90 {
		am.tl = am.m.timelineOf(k, raw)
	}
	am.started, am.prevRaw = true, raw
	return timeline.Rescale(am.m.timelines[am.tl].off, timeline.MPEGClock, out)
}

// addRun records where a kept MP4 frame is, extending the run it
// continues.
func (am *audioMerge) addRun(x *localSample) {
	if am.isTS {
		return
	}
	runs := &am.pi.audio.runs
	if n := len(*runs); n > 0 && x.off == am.runEnd && (*runs)[n-1].n < 1<<31-1 {
		(*runs)[n-1].n++
	} else {
		*runs = append(*runs, run{off: x.off, n: 1})
	}
	am.runEnd = x.off + int64(x.size)
}

// timelineOf returns the index in m.timelines of the timeline an audio
// frame that does not follow the one before it belongs to: the one its
// stream position k (access units before it) falls in, unless its
// unwrapped time raw lies outside that timeline's decode times (a
// second's margin) and inside a neighbour's: around a jump, a muxer sends
// some audio of one timeline among the pictures of the other.
func (m *merger) timelineOf(k int, raw int64) int {
	tls := m.timelines
	c := 0
	for c+1 < len(tls) && tls[c+1].j <= k {
		c++
	}
	margin := timeline.Ticks(timeline.MinJump, timeline.MPEGClock)
	within := func(i int) bool { return raw >= tls[i].lo-margin && raw <= tls[i].hi+margin }
	switch {
	case within(c):
	case c+1 < len(tls) && within(c+1):
		c++
	case c > 0 && within(c-1):
		c--
	}
	return c
}

// audioSelection is the part of the AAC track that is written and the
// edit that presents it.
type audioSelection struct {
	a, b      int
	pres      int64 // absolute audio ticks where presentation starts
	mediaTime int64 // audio ticks after sample a where presentation starts
	editDur   int64 // audio ticks presented
}

// selectAudio chooses the AAC frames presented in the movie range that
// starts at movieStart (absolute audio ticks) and ends at movieEnd
// (math.MaxInt64: the end), and the edit that presents them. head keeps
// every frame before movieStart (hidden by the edit list, like encoder
// priming), tail every frame after movieEnd. Otherwise the first frame
// presented is preceded by one more, which the decoder needs to
// reconstruct it.
func (a *audioIndex) selectAudio(movieStart, movieEnd int64, head, tail bool) (audioSelection, bool) {
	var s audioSelection
	s.a, s.b = 0, len(a.samples)
	tA := a.start
	t := a.start
	if !tail {
		s.b = 0
	}
	for i := range a.samples {
		d := int64(a.samples[i].dur)
		if !head && t+d <= movieStart {
			s.a, tA = i, t // one frame of preroll before the first presented
		}
		if !tail && t < movieEnd {
			s.b = i + 1
		}
		t += d
	}
	if s.b <= s.a {
		return s, false
	}
	// Where presentation of this track starts, and ends.
	pres := max(movieStart, a.origin, tA)
	t = tA
	for i := s.a; i < s.b; i++ {
		t += int64(a.samples[i].dur)
	}
	end := min(t, movieEnd)
	if end <= pres {
		return s, false
	}
	s.pres = pres
	s.mediaTime = pres - tA
	s.editDur = end - pres
	return s, true
}

// buildAudioTrak builds the AAC track: stts from the frame durations, no
// ctts or stss (every AAC frame is a sync sample), one chunk per part, and
// an edit list that starts presentation where the input's did, after an
// empty edit when the video starts first.
func (ix *index) buildAudioTrak(sel selection, chunks []chunk, co64 bool) (*mp4.TrakBox, error) {
	a, as := ix.audio, sel.audio
	var st sampleTable
	for _, s := range a.samples[as.a:as.b] {
		st.add(s.size, s.dur)
	}
	stsd := mp4.NewStsdBox()
	stsd.AddChild(a.entry)
	trak, err := newTrak(trakSpec{
		handler:   "audio",
		timescale: a.timescale,
		stsd:      stsd,
		table:     &st,
		chunks:    chunks,
		descIndex: map[uint16]uint32{0: 1},
		co64:      co64,
		empty:     sel.aEmpty,
		editDur:   uint64(timeline.Rescale(as.editDur, a.timescale, sel.movieTS)),
		mediaTime: as.mediaTime,
	})
	if err != nil {
		return nil, err
	}
	trak.Tkhd.Volume = 0x0100
	trak.Tkhd.AlternateGroup = 1
	return trak, nil
}

// selectAll chooses what is written for presentation range [from, to):
// the pictures (selectRange), the audio frames, and the movie timeline
// they share. Without a clip the movie starts with whichever track the
// input presents first (ffmpeg does the same when it remuxes): audio that
// starts before the first picture stays audible and the video gets an
// empty edit, so the offset between the tracks is the input's. A clip
// starts at From on the video's timeline for both tracks.
func (ix *index) selectAll(from, to time.Duration) (selection, error) {
	a := ix.audio
	if len(ix.samples) == 0 {
		if a == nil || len(a.samples) == 0 {
			return selection{}, fmt.Errorf("%w: nothing to write", ErrNoInput)
		}
		if from < 0 || to < 0 || (to > 0 && to <= from) {
			return selection{}, fmt.Errorf("%w: [%v, %v)", ErrEmptyRange, from, to)
		}
		start, end := a.origin+timeline.Ticks(from, a.timescale), int64(math.MaxInt64)
		if to > 0 {
			end = a.origin + timeline.Ticks(to, a.timescale)
		}
		as, ok := a.selectAudio(start, end, from == 0, to == 0)
		if !ok {
			return selection{}, fmt.Errorf("%w: [%v, %v) holds no audio", ErrEmptyRange, from, to)
		}
		return selection{movieTS: a.timescale, movieDur: as.editDur, audio: &as}, nil
	}
	sel, err := ix.selectRange(from, to)
	if err != nil || a == nil || len(a.samples) == 0 {
		return sel, err
	}
	vts, ats := ix.timescale, a.timescale
	vStart := ix.toAudio(sel.start)
	movieStart, movieEnd := vStart, int64(math.MaxInt64)
	if to > 0 {
		movieEnd = ix.toAudio(sel.end)
	}
	if from == 0 {
		movieStart = min(movieStart, a.origin)
	}
	as, ok := a.selectAudio(movieStart, movieEnd, from == 0, to == 0)
	if !ok {
		return sel, nil // no audio in the range
	}
	movieStart = min(movieStart, as.pres)
	sel.audio = &as
	sel.vEmpty = timeline.Rescale(vStart-movieStart, ats, vts)
	sel.aEmpty = timeline.Rescale(as.pres-movieStart, ats, vts)
	sel.movieDur = max(sel.vEmpty+sel.editDur, sel.aEmpty+timeline.Rescale(as.editDur, ats, vts))
	return sel, nil
}

// toAudio converts a video time, ticks after the DTS of the first picture,
// to absolute audio ticks.
func (ix *index) toAudio(rel int64) int64 {
	return timeline.Rescale(rel+ix.dts0, ix.timescale, ix.audio.timescale)
}
