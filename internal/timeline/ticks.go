// Package timeline owns the rules about media time that every stage of
// livechunk shares: integer ticks of an explicit timescale and their
// conversion (one rounding rule, no overflow), the unwrapping of MPEG-TS's
// 33-bit timestamps, the continuity rule that tells a frame step from a
// pause, a timestamp jump and a splice, and the joiner that places
// independently timed parts (phone chunks, files joined end to end, a
// recording resumed after a restart) on one timeline.
//
// The chunker, the sources, the server's chunk ingest and stitch all call
// it; none of them writes these rules again.
package timeline

import (
	"math/bits"
	"time"
)

// MPEGClock is the 90 kHz clock of MPEG-TS timestamps (PTS, DTS) and the
// default timescale of samples whose source declares none.
const MPEGClock = 90000

// Rescale converts t ticks of timescale from to ticks of timescale to,
// rounded to the nearest tick (halves away from zero). It computes
// t·to/from in 128 bits, so it does not overflow for any t and any
// timescales; a result beyond int64 is truncated. A zero from, or from ==
// to, returns t unchanged.
func Rescale(t int64, from, to uint32) int64 {
	if from == to || from == 0 {
		return t
	}
	neg := t < 0
	u := uint64(t)
	if neg {
		u = -u
	}
	hi, lo := bits.Mul64(u, uint64(to))
	lo, carry := bits.Add64(lo, uint64(from/2), 0)
	hi += carry
	var q uint64
	switch {
	case hi == 0:
		q = lo / uint64(from) // the common case: a 64-bit division
	case hi >= uint64(from):
		hi %= uint64(from) // the result does not fit in 64 bits anyway
		fallthrough
	default:
		q, _ = bits.Div64(hi, lo, uint64(from))
	}
	if neg {
		return -int64(q)
	}
	return int64(q)
}

// Ticks converts a duration to ticks of timescale ts (rounded to the
// nearest tick).
func Ticks(d time.Duration, ts uint32) int64 { return Rescale(int64(d), 1e9, ts) }

// Duration converts ticks of timescale ts to a duration (rounded to the
// nearest nanosecond); 0 when ts is 0.
func Duration(t int64, ts uint32) time.Duration {
	if ts == 0 {
		return 0
	}
	return time.Duration(Rescale(t, ts, 1e9))
}

// Before reports whether time a (ticks of timescale ta) is before time b
// (ticks of timescale tb), exactly: it compares a·tb with b·ta in 128
// bits.
func Before(a int64, ta uint32, b int64, tb uint32) bool {
	if ta == tb {
		return a < b
	}
	if (a < 0) != (b < 0) {
		return a < b
	}
	neg := a < 0
	ua, ub := uint64(a), uint64(b)
	if neg {
		ua, ub = -ua, -ub
	}
	ah, al := bits.Mul64(ua, uint64(tb))
	bh, bl := bits.Mul64(ub, uint64(ta))
	less := ah < bh || ah == bh && al < bl
	greater := ah > bh || ah == bh && al > bl
	if neg {
		return greater
	}
	return less
}
