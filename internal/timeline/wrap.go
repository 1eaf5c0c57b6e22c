package timeline

// Timestamps that wrap around: MPEG-TS carries 33-bit PTS and DTS, which
// return to 0 after 2^33 ticks of the 90 kHz clock (26.5 hours). The rule
// for making them continuous is written once, here: a step is the
// difference modulo 2^bits taken in [-2^(bits-1), 2^(bits-1)), so a step
// of less than half the range in either direction is read as such.

// WrapBitsTS is the width of MPEG-TS timestamps.
const WrapBitsTS = 33

// WrapDiff maps d, a difference of timestamps that wrap at 2^bits, to
// [-2^(bits-1), 2^(bits-1)). bits must be between 1 and 62; 0 returns d.
func WrapDiff(d int64, bits uint) int64 {
	if bits == 0 {
		return d
	}
	mod := int64(1) << bits
	d &= mod - 1
	if d >= mod/2 {
		d -= mod
	}
	return d
}

// Wrap returns t modulo 2^bits, in [0, 2^bits): a time written back in the
// width of wrapping timestamps. bits 0 returns t.
func Wrap(t int64, bits uint) int64 {
	if bits == 0 {
		return t
	}
	return t & (int64(1)<<bits - 1)
}

// Near returns the value congruent to raw modulo 2^bits that is nearest to
// ref (an unwrapped time of the same clock): the time of a second track
// placed on the same side of a wrap as the first.
func Near(raw, ref int64, bits uint) int64 {
	return ref + WrapDiff(raw-ref, bits)
}

// Unwrapper makes timestamps that wrap at 2^Bits continuous: each value is
// placed at the step from the previous one that WrapDiff gives. The zero
// value with Bits 0 passes values through. It is not safe for concurrent
// use.
type Unwrapper struct {
	// Bits is the width of the timestamps (WrapBitsTS for MPEG-TS); 0
	// means they do not wrap.
	Bits uint

	have bool
	last int64 // the previous raw value
	acc  int64 // its unwrapped value
}

// Unwrap returns raw made continuous with the previous value, and makes it
// the previous value. The first value is returned as it is (masked to
// Bits), unless Start placed it.
func (u *Unwrapper) Unwrap(raw int64) int64 {
	if u.Bits == 0 {
		return raw
	}
	raw &= int64(1)<<u.Bits - 1
	if !u.have {
		u.have, u.last, u.acc = true, raw, raw
		return raw
	}
	u.acc += WrapDiff(raw-u.last, u.Bits)
	u.last = raw
	return u.acc
}

// Start makes the first value unwrap near ref (see Near) instead of as it
// is: a track that starts after another one stays on its side of a wrap.
// It has no effect once a value was unwrapped.
func (u *Unwrapper) Start(raw, ref int64) int64 {
	if u.Bits == 0 || u.have {
		return u.Unwrap(raw)
	}
	raw &= int64(1)<<u.Bits - 1
	u.have, u.last, u.acc = true, raw, Near(raw, ref, u.Bits)
	return u.acc
}

// Peek returns what Unwrap would return for raw, without making it the
// previous value: a time of another track near this one's.
func (u *Unwrapper) Peek(raw int64) int64 {
	if u.Bits == 0 {
		return raw
	}
	if !u.have {
		return raw & (int64(1)<<u.Bits - 1)
	}
	return u.acc + WrapDiff(raw-u.last, u.Bits)
}

// Started reports whether a value was unwrapped.
func (u *Unwrapper) Started() bool { return u.have }

// Last returns the unwrapped previous value (0 before the first).
func (u *Unwrapper) Last() int64 { return u.acc }
