package timeline

import "time"

// The continuity rule. Between two consecutive pictures of a stream the
// decode time steps by a frame duration. A larger step is either a pause
// of the video (a variable frame rate, as screen recordings and phones
// write: the picture before lasts until the next one, and the timeline
// goes on) or a jump of the timestamps (a restarted encoder, files joined
// end to end: the next picture is placed right after the previous one and
// the timeline is re-joined). A step back is a jump too when it is large,
// or a splice when it lands on a keyframe (a new stream begins); a small
// step back elsewhere is an error of the input.

// Step is how the decode time of a picture follows the one before it.
type Step uint8

const (
	// Continue is a step of a frame duration (or any step up to the
	// threshold).
	Continue Step = iota
	// Pause is a step over the threshold that the input shows to be a
	// pause of the video: the picture before lasts until this one.
	Pause
	// Jump is a step over the threshold in either direction that is not a
	// pause, or a step back to a keyframe (a splice): the timestamps do
	// not continue, and the picture is placed right after the one before.
	Jump
	// Back is a step of zero or back, up to the threshold, to a picture
	// that is not a keyframe: decode times that do not increase.
	Back
)

// String names the step.
func (s Step) String() string {
	switch s {
	case Continue:
		return "continue"
	case Pause:
		return "pause"
	case Jump:
		return "jump"
	case Back:
		return "back"
	}
	return "step?"
}

// MinJump is the least step that Threshold lets count as a jump or pause
// (whole seconds, so that its ticks are exact).
const MinJump = time.Second

// Threshold is the largest step of decode times still taken as continuous
// in a stream whose frames last frame ticks of timescale ts: ten frames,
// and at least MinJump. It serves video (frame: the typical picture
// duration) and audio (frame: an audio frame's duration) alike. It is
// cheap enough for every sample.
func Threshold(frame int64, ts uint32) int64 {
	return max(int64(ts)*int64(MinJump/time.Second), 10*frame)
}

// Evidence is what a caller knows about a step of decode times.
type Evidence struct {
	// Step is the picture's decode time minus the previous picture's, in
	// ticks of the stream.
	Step int64
	// Threshold is the largest step taken as continuous (see Threshold).
	Threshold int64
	// Declared reports that the input declared the step as a duration:
	// the picture before carried it (an MP4 trun or stts duration), or
	// the part that holds both pictures declares a duration that covers
	// it.
	Declared bool
	// AudioRanOn reports that the stream's audio went on through the step
	// without a jump of its own (see AudioRun.RanOn).
	AudioRanOn bool
	// Keyframe reports that the picture is a random access point (IDR).
	Keyframe bool
}

// Classify applies the continuity rule: a step over the threshold is a
// pause when the input declared it or the audio ran on through it, else
// a jump; a step back beyond the threshold is a jump; a step of zero or
// back to a keyframe is a jump (a splice), to another picture Back.
func Classify(e Evidence) Step {
	switch {
	case e.Step > e.Threshold && (e.Declared || e.AudioRanOn):
		return Pause
	case e.Step > e.Threshold || e.Step < -e.Threshold:
		return Jump
	case e.Step <= 0 && e.Keyframe:
		return Jump
	case e.Step <= 0:
		return Back
	}
	return Continue
}

// AudioRun follows the audio of a stream frame by frame, in the order the
// frames come, to tell a pause of the video from a jump of the timestamps:
// during a pause the audio goes on; when the timestamps jump, the audio
// jumps too. It keeps the current run of frames that continue each other
// by the same rule as pictures (each frame starts after the one before,
// by no more than the threshold), in ticks of the clock of the video it
// is compared with. The zero value is empty.
type AudioRun struct {
	start, last, end int64 // the run's first frame's start, its last frame's start and end
	have             bool
}

// Add records a frame that starts at t and lasts frame ticks; threshold is
// the largest step of the audio still continuous (see Threshold).
func (r *AudioRun) Add(t, frame, threshold int64) {
	if step := t - r.last; !r.have || step <= 0 || step > threshold {
		r.start, r.have = t, true
	}
	r.last, r.end = t, t+frame
}

// Reset forgets the run.
func (r *AudioRun) Reset() { r.have = false }

// Last returns the start of the last frame, and whether there is one.
func (r *AudioRun) Last() (int64, bool) { return r.last, r.have }

// RanOn reports whether the run went on through the video's step from
// decode time from to decode time to: it began by from (give or take
// slack: audio frames and pictures interleave at the grain of a frame)
// and reaches past the step's middle, but not more than MinJump (in ticks
// of ts) past to. The audio of a pause arrives before the picture after
// it, its first half at least, even from a muxer that delays audio; after
// a jump of both tracks, the audio's run began after from.
func (r *AudioRun) RanOn(from, to, slack int64, ts uint32) bool {
	return r.have && r.start <= from+slack && r.end > from+(to-from)/2 && r.last <= to+Ticks(MinJump, ts)
}
