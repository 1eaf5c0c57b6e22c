package chunker

import "github.com/livechunk/livechunk/internal/timeline"

// videoClock places the video's decode times on the output timeline:
// output PTS = unwrapped input PTS + offset; output DTS = unwrapped input
// DTS + offset + dtsShift (fMP4, see startTimeline). The rules it applies
// (unwrapping, continuity, joining after a jump) are internal/timeline's.
type videoClock struct {
	unwrap   timeline.Unwrapper
	offset   int64
	dtsShift int64
	shiftSet bool

	have      bool  // a sample was placed: lastIn and lastOut are set
	lastIn    int64 // unwrapped input DTS of the previous sample
	lastOut   int64 // its output DTS
	lastDur   int64 // the typical frame duration: the last step that was not a pause
	lastHint  int64 // Sample.Duration of the previous sample
	closedDur int64 // duration given to the last sample of the segment last closed
	reorder   int64 // output PTS minus DTS of the last random access point placed
}

// unwrapSample unwraps s's timestamps (Config.WrapBits). The first one is
// unwrapped near the audio's timeline when audio came first, so both stay
// on the same side of a wrap; PTS is unwrapped as DTS plus the composition
// offset.
func (c *videoClock) unwrapSample(s *Sample, a *audioTrack, ts uint32) {
	if c.unwrap.Bits == 0 {
		return
	}
	var dts int64
	if a != nil && a.unwrap.Started() && !c.unwrap.Started() {
		dts = c.unwrap.Start(s.DTS, timeline.Rescale(a.unwrap.Last(), uint32(a.inTS), ts))
	} else {
		dts = c.unwrap.Unwrap(s.DTS)
	}
	cto := timeline.WrapDiff(s.PTS-s.DTS, c.unwrap.Bits)
	s.DTS, s.PTS = dts, dts+cto
}

// out returns s's output decode and presentation times.
func (c *videoClock) out(s *Sample) (dts, pts int64) {
	return s.DTS + c.offset + c.dtsShift, s.PTS + c.offset
}

// placed records s, placed at output decode time outDTS, as the previous
// sample.
func (c *videoClock) placed(s *Sample, outDTS int64) {
	c.have, c.lastIn, c.lastOut, c.lastHint = true, s.DTS, outDTS, s.Duration
}

// seen records the input times of s, a sample that is dropped without
// being placed.
func (c *videoClock) seen(s *Sample) {
	c.lastIn, c.lastHint = s.DTS, s.Duration
}

// follow continues the output timeline after a jump at s: s is presented
// right after the last sample placed (which lasted closedDur), by
// timeline.Follow. A sample that is not a random access point (it will be
// dropped until one comes) continues the decode times instead.
func (c *videoClock) follow(s *Sample, rap bool) {
	dts, pts := s.DTS+c.dtsShift, s.PTS
	reorder := c.reorder
	if !rap {
		pts, reorder = dts, 0
	}
	c.offset, _ = timeline.Follow(c.lastOut, c.closedDur, reorder, dts, pts)
}
