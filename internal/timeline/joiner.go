package timeline

import "time"

// Joining independently timed parts. Phone chunks each start at time 0,
// files joined end to end each have their own timestamps, a recording
// resumed after a restart starts its clock again. The rule that puts them
// on one timeline is written once, here:
//
//   - Pictures continue at their own frame step across a join: a part's
//     first picture is presented right where the previous part's pictures
//     end (the previous part's last decode time plus its duration, plus
//     its reorder delay), so there is no hole and no stretched frame.
//     Should that put the part's first decode time at or before the
//     previous one's (a deeper B-frame reorder delay than the part
//     before), the part moves later until its decode times continue.
//   - Audio is placed against the pictures: a part's audio moves with its
//     pictures, so each part keeps its own audio/video offset (the
//     encoder priming and lead that its edit lists declare included).
//     Audio that leads or trails a part's pictures is kept; a frame that
//     lands more than half a frame inside audio already placed (a true
//     overlap, as when every part's audio runs half a second longer than
//     its pictures) is dropped; a frame within JoinTolerance of the end
//     of the audio before it is placed exactly there.

// JoinTolerance is the largest distance between a part's first audio frame
// and the end of the audio before it that Joiner closes by moving the
// frame (rounding of the parts' timescales). Larger gaps stay as they are,
// so sync never moves by more than this.
const JoinTolerance = time.Millisecond

// Follow returns the offset (added to the new part's times) that
// presents the new part's first picture, with decode time dts and
// presentation time pts, right after the previous part's last picture,
// which has decode time lastDTS and duration lastDur and whose part was
// presented reorder ticks after its decode times (first PTS minus first
// DTS). shifted reports that this placed the first decode time at or
// before lastDTS, so the part was moved later to decode right after it.
func Follow(lastDTS, lastDur, reorder, dts, pts int64) (off int64, shifted bool) {
	lastDur = max(lastDur, 1)
	off = lastDTS + lastDur + reorder - pts
	if dts+off <= lastDTS {
		return lastDTS + lastDur - dts, true
	}
	return off, false
}

// FrameDuration is an audio frame's duration: the one its container
// declares when that is shorter than the nominal frame (the end of the
// recorded audio: an MP4's short last frame), else the nominal one. A
// longer declaration is not taken: one frame declared to last hours (a
// broken or hostile file) would push every later frame off as overlapping.
func FrameDuration(declared, nominal int64) int64 {
	if declared > 0 && declared < nominal {
		return declared
	}
	return nominal
}

// Clock is the timescales of a part's timestamps.
type Clock struct {
	Video, Audio uint32
}

// JoinStats counts what a Joiner did.
type JoinStats struct {
	Parts        int   // parts placed
	Shifted      int   // parts moved later so that decode times increase (see Follow)
	AudioDropped int64 // audio frames that overlapped audio placed before them
}

// Joiner places parts one after another on one output timeline, by the
// rule above. The first part keeps its own times (converted to the output
// timescales); each later part is placed by its first picture (Place, or
// the first Video call), or, when it has none, by its first audio frame
// (PlaceAudio). Within a part, Video takes pictures in decode order and
// Audio takes frames in presentation order. A Joiner is not safe for
// concurrent use.
type Joiner struct {
	video, audio uint32 // output timescales
	part         Clock  // of the current part
	placed       bool   // the current part is placed
	off          int64  // output video ticks added to the current part's rescaled times
	reorder      int64  // the current part's first PTS minus its first DTS (output)

	have             bool  // a picture was placed
	lastDTS, lastDur int64 // the last picture placed (output)
	step             int64 // the last step between two pictures of a part (output)
	// audioOnly: a part without pictures was placed after the last
	// picture; the next part's pictures start after its audio
	audioOnly    bool
	aHave        bool  // an audio frame was placed
	aStart, aEnd int64 // where the last frame placed starts and ends (output audio ticks)
	stats        JoinStats
}

// NewJoiner returns a Joiner whose output times are in ticks of the video
// timescale video and the audio timescale audio (0 without audio).
func NewJoiner(video, audio uint32) *Joiner {
	return &Joiner{video: video, audio: audio}
}

// Begin starts the next part, whose timestamps are in clock c. Its
// placement waits for its first picture or audio frame.
func (j *Joiner) Begin(c Clock) {
	j.part, j.placed = c, false
}

// Placed reports whether the current part is placed.
func (j *Joiner) Placed() bool { return j.placed }

// Stats returns the counters so far.
func (j *Joiner) Stats() JoinStats { return j.stats }

// Place places the current part by its first picture (decode time dts,
// presentation time pts, part ticks): right after the pictures before it
// (Follow), or, after a part of audio alone, where the later of those
// pictures and that audio ends.
func (j *Joiner) Place(dts, pts int64) {
	d, p := Rescale(dts, j.part.Video, j.video), Rescale(pts, j.part.Video, j.video)
	j.off = 0
	switch {
	case j.have:
		var shifted bool
		j.off, shifted = Follow(j.lastDTS, j.lastDur, j.reorder, d, p)
		if shifted {
			j.stats.Shifted++
		}
		if a := Rescale(j.aEnd, j.audio, j.video); j.audioOnly && a > p+j.off {
			j.off = a - p
		}
	case j.aHave:
		// Audio parts came first: the pictures start where their audio does.
		j.off = Rescale(j.aEnd, j.audio, j.video) - p
	}
	j.reorder = p - d
	j.placed, j.audioOnly = true, false
	j.stats.Parts++
}

// PlaceAudio places a part that has no pictures by its first audio frame
// (presentation time pts, part ticks): where the part before it ends, the
// later of its pictures and its audio.
func (j *Joiner) PlaceAudio(pts int64) {
	t := Rescale(pts, j.part.Audio, j.audio)
	at := t
	if j.aHave {
		at = j.aEnd
	}
	if j.have {
		at = max(at, Rescale(j.lastDTS+j.lastDur+j.reorder, j.video, j.audio))
	}
	j.off = Rescale(at-t, j.audio, j.video)
	j.placed, j.audioOnly = true, j.have
	j.stats.Parts++
}

// Offset returns the current part's offset: output video ticks added to
// its times once converted to the output timescale.
func (j *Joiner) Offset() int64 { return j.off }

// Video returns the output decode and presentation times and the duration
// of a picture of the current part, given in part ticks; the part's first
// picture places it (see Place) unless it is placed. Durations are
// converted as differences of converted times, so that they add up.
func (j *Joiner) Video(dts, pts, dur int64) (odts, opts, odur int64) {
	if !j.placed {
		j.Place(dts, pts)
	}
	from, to := j.part.Video, j.video
	odts = Rescale(dts, from, to) + j.off
	opts = Rescale(pts, from, to) + j.off
	odur = Rescale(dts+dur, from, to) + j.off - odts
	if odts > j.lastDTS && j.have && dur > 0 {
		j.step = odts - j.lastDTS
	}
	if dur <= 0 {
		// A picture without a duration (the last of a file whose stts
		// says 0): the step before it, so that the next part follows.
		odur = max(j.step, 1)
	}
	j.have, j.lastDTS, j.lastDur = true, odts, odur
	return odts, opts, odur
}

// Audio returns the output presentation time and duration of an audio
// frame of the current part (pts and its duration dur in part ticks),
// moved by the part's offset, or ok false for a frame that overlaps the
// audio placed before it (see FitAudio), which is dropped (and counted). A
// frame within JoinTolerance of the end of the previous one is placed
// exactly there. The current part must be placed.
func (j *Joiner) Audio(pts, dur int64) (t, d int64, ok bool) {
	from, to := j.part.Audio, j.audio
	t = Rescale(pts, from, to) + Rescale(j.off, j.video, to)
	d = Rescale(pts+dur, from, to) - Rescale(pts, from, to)
	if j.aHave {
		if t, ok = FitAudio(j.aStart, j.aEnd, t, d, to); !ok {
			j.stats.AudioDropped++
			return t, d, false
		}
	}
	j.aHave, j.aStart, j.aEnd = true, t, t+d
	return t, d, true
}

// FitAudio applies the joining rule to an audio frame that starts at t and
// lasts dur ticks (timescale ts) after audio whose last frame starts at
// last and ends at end: a frame that starts more than half its duration
// before end, or not after last, overlaps what is there and is dropped
// (ok false); one within JoinTolerance of end starts exactly at end; any
// other keeps its time (a gap in the audio stays a gap).
func FitAudio(last, end, t, dur int64, ts uint32) (int64, bool) {
	gap := t - end
	if gap < -dur/2 || t <= last {
		return t, false
	}
	if tol := max(1, Ticks(JoinTolerance, ts)); gap >= -tol && gap <= tol {
		return end, true
	}
	return t, true
}

// JoinState is where a Joiner stands between parts: what it needs to place
// the next part. A Joiner made from it (ResumeJoiner), in another process
// say, places the next part exactly where this one would have. Its fields
// are exported for encoding only.
type JoinState struct {
	Video     uint32    `json:"video"`
	Audio     uint32    `json:"audio"`
	Have      bool      `json:"have,omitempty"`
	LastDTS   int64     `json:"last_dts"`
	LastDur   int64     `json:"last_dur"`
	Step      int64     `json:"step"`
	Reorder   int64     `json:"reorder"`
	AHave     bool      `json:"audio_have,omitempty"`
	AStart    int64     `json:"audio_start"`
	AEnd      int64     `json:"audio_end"`
	AudioOnly bool      `json:"audio_only,omitempty"`
	Stats     JoinStats `json:"stats"`
}

// State returns where the joiner stands; call it between parts (after
// the last picture and audio frame of one, before Begin of the next).
func (j *Joiner) State() JoinState {
	return JoinState{Video: j.video, Audio: j.audio, Have: j.have, LastDTS: j.lastDTS, LastDur: j.lastDur, Step: j.step,
		Reorder: j.reorder, AHave: j.aHave, AStart: j.aStart, AEnd: j.aEnd, AudioOnly: j.audioOnly, Stats: j.stats}
}

// ResumeJoiner returns a Joiner that goes on from a state (see State):
// Begin the next part, and it is placed right after the parts before.
func ResumeJoiner(s JoinState) *Joiner {
	return &Joiner{video: s.Video, audio: s.Audio, have: s.Have, lastDTS: s.LastDTS, lastDur: s.LastDur, step: s.Step,
		reorder: s.Reorder, aHave: s.AHave, aStart: s.AStart, aEnd: s.AEnd, audioOnly: s.AudioOnly, stats: s.Stats}
}
