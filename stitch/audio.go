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
// there.
// frameAt (MPEG-TS, tsScan.frameAt; nil for MP4) is where each frame
// came among the part's access units, which tells its timeline when the
// part's timestamps jump (m.timelines).
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
	out := a.timescale
	vts := m.ix.timescale
	// conv returns a frame's time in output audio ticks, before the
	// part's offset.
	conv := func(x *localSample) int64 {
		if isTS {
			if pi.vok {
				return timeline.Rescale(m.unwrap.Peek(x.dts), timeline.MPEGClock, out)
			}
			return timeline.Rescale(m.unwrap.Unwrap(x.dts), timeline.MPEGClock, out)
		}
		return timeline.Rescale(x.dts+ti.shift, ti.timescale, out)
	}
	var off int64
	firstAudio := len(a.samples) == 0
	if pi.vok {
		// Video local times map to output video ticks as
		// timeline.Rescale(local) + voff: audio takes the same offset.
		off = timeline.Rescale(pi.voff, vts, out)
		if isTS && vts != timeline.MPEGClock {
			off = timeline.Rescale(pi.voff, timeline.MPEGClock, out) // MPEG-TS video times are not rescaled
		}
	} else {
		t := conv(&ls[0]) + a.aoff
		if !firstAudio {
			gap := t - a.lastEnd
			if rebase || gap < -a.frame/2 || gap > timeline.Threshold(a.frame, out) {
				a.aoff += a.lastEnd - t
				m.ix.discont++
			}
		}
		off = a.aoff
	}
	pi.audio.first = len(a.samples)
	// An MPEG-TS part whose timestamps jump inside it has more than one
	// timeline: each frame takes the offset of its own.
	multi := isTS && pi.vok && len(m.timelines) > 1 && len(frameAt) == len(ls)
	var runEnd int64
	tl, prevRaw := -1, int64(0) // the previous frame's timeline and unwrapped time
	frame90 := timeline.Rescale(a.frame, out, timeline.MPEGClock)
	for j := range ls {
		x := &ls[j]
		if multi {
			// A frame that follows the one before it (within two frames)
			// is on its timeline; after a step of the audio's own times,
			// its stream position (or its time) tells.
			raw := m.unwrap.Peek(x.dts)
			if d := raw - prevRaw; tl < 0 || d < -frame90 || d > 3*frame90 {
				tl = m.timelineOf(int(frameAt[j]), raw)
			}
			prevRaw = raw
			off = timeline.Rescale(m.timelines[tl].off, timeline.MPEGClock, out)
		}
		t := conv(x) + off
		dur := a.frame
		if x.dur > 0 && !isTS {
			dur = timeline.Rescale(x.dts+int64(x.dur), ti.timescale, out) - timeline.Rescale(x.dts, ti.timescale, out)
		}
		if len(a.samples) == 0 {
			a.start, a.lastStart, a.lastEnd = t, t, t
			if editOrigin && !a.hasOrigin {
				a.origin, a.hasOrigin = off, true // local time 0 is where the input's edit starts
			}
		} else {
			var ok bool
			if t, ok = timeline.FitAudio(a.lastStart, a.lastEnd, t, dur, out); !ok {
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
		if !isTS {
			if n := len(pi.audio.runs); n > 0 && x.off == runEnd && pi.audio.runs[n-1].n < 1<<31-1 {
				pi.audio.runs[n-1].n++
			} else {
				pi.audio.runs = append(pi.audio.runs, run{off: x.off, n: 1})
			}
			runEnd = x.off + int64(x.size)
		}
	}
	pi.audio.n = len(a.samples) - pi.audio.first
	return nil
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
