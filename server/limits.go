package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// ErrRareKeyframes: input that goes longer than Config.MaxKeyframeInterval,
// or more bytes than Config.MaxSegmentBytes, or more samples than
// Config.MaxChunkSamples, without a picture a segment may start at (422):
// its segment could not be cut shorter, would be held in memory whole,
// and would set every viewer's target duration.
var ErrRareKeyframes = errors.New("too long without a keyframe")

// chunkLimits bound what one chunk, and one segment of a push, may hold
// (see Config).
type chunkLimits struct {
	samples int           // MaxChunkSamples, in a chunk and between keyframes
	keyint  time.Duration // MaxKeyframeInterval
	bytes   int64         // MaxSegmentBytes, between keyframes
	openGOP bool          // recovery points start segments too
}

// limits are the bounds of one chunk, and of a push's segments.
func (s *Server) limits() chunkLimits {
	return chunkLimits{samples: s.cfg.MaxChunkSamples, keyint: s.cfg.MaxKeyframeInterval,
		bytes: s.cfg.MaxSegmentBytes, openGOP: s.cfg.OpenGOP}
}

// keyframeWatch follows a stream's packets and refuses a stretch without
// a picture a segment may start at (IDR; with openGOP, a recovery point)
// that is longer, in time, bytes or samples, than the limits: the same
// rule for chunks (checkChunk, one timeline) and pushes (record, which
// calls cut where the chunker cut at a timestamp jump).
type keyframeWatch struct {
	lim       chunkLimits
	timescale int64 // of the video's DTS
	maxTicks  int64

	started        bool
	keyDTS, last   int64 // DTS of the last keyframe and of the last picture
	lastDur, bytes int64 // the last picture's declared duration; bytes since keyDTS
	samples        int   // since keyDTS
}

func newKeyframeWatch(lim chunkLimits, timescale uint32) *keyframeWatch {
	ts := max(int64(timescale), 1)
	return &keyframeWatch{lim: lim, timescale: ts, maxTicks: int64(lim.keyint.Seconds() * float64(ts))}
}

// cut starts the stretch again at the next picture: the chunker cut a
// segment there without a keyframe (at a timestamp jump: the chunker's
// rule, timeline.Classify, says where; the watch does not guess it).
func (k *keyframeWatch) cut() { k.started = false }

// see takes the next packet.
func (k *keyframeWatch) see(p source.Packet) error {
	if p.Kind == source.KindAudio {
		k.samples++
		k.bytes += int64(len(p.Audio.Data))
		return k.check(k.last)
	}
	v := p.Video
	if !k.started || chunker.IsIDR(v.NALUs) || k.lim.openGOP && chunker.IsRecoveryPoint(v.NALUs) {
		k.started, k.keyDTS, k.bytes, k.samples = true, v.DTS, 0, 0
	}
	k.samples++
	for _, n := range v.NALUs {
		k.bytes += int64(len(n))
	}
	k.last, k.lastDur = v.DTS, v.Duration
	return k.check(v.DTS)
}

// end checks the stretch from the last keyframe to the end of the last
// picture (the end of a chunk).
func (k *keyframeWatch) end() error {
	if !k.started {
		return nil
	}
	return k.check(k.last + max(k.lastDur, 0))
}

func (k *keyframeWatch) check(dts int64) error {
	switch {
	case k.started && dts-k.keyDTS > k.maxTicks:
		return fmt.Errorf("%w: %.1f s without a picture a segment can start at (from %.1f s; the limit is %s)",
			ErrRareKeyframes, float64(dts-k.keyDTS)/float64(k.timescale), float64(k.keyDTS)/float64(k.timescale), k.lim.keyint)
	case k.lim.bytes > 0 && k.bytes > k.lim.bytes:
		return fmt.Errorf("%w: over %d bytes without a picture a segment can start at (from %.1f s)",
			ErrRareKeyframes, k.lim.bytes, float64(k.keyDTS)/float64(k.timescale))
	case k.lim.samples > 0 && k.samples > k.lim.samples:
		return fmt.Errorf("%w: over %d samples without a picture a segment can start at (from %.1f s)",
			ErrRareKeyframes, k.lim.samples, float64(k.keyDTS)/float64(k.timescale))
	}
	return nil
}
