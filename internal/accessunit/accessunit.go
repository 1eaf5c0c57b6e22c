// Package accessunit holds the operations on H.264 access units (NAL
// units without framing, as the chunker's Sample carries them) that the
// sources, the chunker and stitch share.
package accessunit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Equal reports whether two lists of NAL units hold the same bytes.
func Equal(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

// Clone returns a deep copy of NAL units that alias a reused buffer.
func Clone(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, n := range in {
		out[i] = bytes.Clone(n)
	}
	return out
}

// Type returns the type of a NAL unit (not empty).
func Type(n []byte) h264.NALUType { return h264.NALUType(n[0] & 0x1f) }

// HasParamSets reports whether the access unit carries an SPS and a PPS.
func HasParamSets(au [][]byte) bool {
	var sps, pps bool
	for _, n := range au {
		switch Type(n) {
		case h264.NALUTypeSPS:
			sps = true
		case h264.NALUTypePPS:
			pps = true
		}
	}
	return sps && pps
}

// AppendWithParamSets appends to dst the access unit au with the
// parameter sets sps and pps in band, so that it decodes on its own: its
// leading access unit delimiter (if any), then sps and pps, then the rest
// of it as it is (a parameter set of its own follows, and so overrides,
// the one given). Callers use it for an access unit that does not carry
// both already (HasParamSets).
func AppendWithParamSets(dst, au, sps, pps [][]byte) [][]byte {
	rest := au
	if len(au) > 0 && Type(au[0]) == h264.NALUTypeAccessUnitDelimiter {
		dst = append(dst, au[0])
		rest = au[1:]
	}
	dst = append(dst, sps...)
	dst = append(dst, pps...)
	return append(dst, rest...)
}

// ErrInvalidFraming reports bytes that are not valid Annex-B or AVCC
// framing (chunker.ErrInvalidFraming is the same error).
var ErrInvalidFraming = errors.New("chunker: invalid NAL unit framing")

var startCode = []byte{0, 0, 1}

// SplitAnnexB appends to dst the NAL units of b, an Annex-B byte stream
// (NAL units separated by 00 00 01 or 00 00 00 01 start codes), and returns
// the extended slice. The NAL units alias b; nothing is copied. Trailing zero
// bytes of a NAL unit (trailing_zero_8bits) are dropped. b must begin with a
// start code.
func SplitAnnexB(dst [][]byte, b []byte) ([][]byte, error) {
	n := len(b)
	// find first start code
	i := 0
	for i < n && b[i] == 0 {
		i++
	}
	if i < 2 || i >= n || b[i] != 1 {
		return dst, fmt.Errorf("%w: Annex-B data does not begin with a start code", ErrInvalidFraming)
	}
	start := i + 1
	for {
		// The next 00 00 01: bytes.Index looks for it with vector
		// instructions, several times faster than a loop over the bytes
		// (compressed slice data hold few zero bytes).
		next := bytes.Index(b[start:], startCode)
		end := n
		if next >= 0 {
			next += start
			end = next
		}
		// strip trailing zeros (part of a 4-byte start code or trailing_zero_8bits)
		e := end
		for e > start && b[e-1] == 0 {
			e--
		}
		if e > start {
			dst = append(dst, b[start:e:e])
		}
		if next < 0 {
			break
		}
		start = next + 3
	}
	return dst, nil
}

// SplitAVCC appends to dst the NAL units of b, a length-prefixed sample as
// stored in MP4 (and CMSampleBuffer), where each NAL unit is preceded by its
// size in lengthSize bytes (1, 2 or 4; 4 when lengthSize is 0). The NAL
// units alias b; nothing is copied.
func SplitAVCC(dst [][]byte, b []byte, lengthSize int) ([][]byte, error) {
	if lengthSize == 0 {
		lengthSize = 4
	}
	if lengthSize != 1 && lengthSize != 2 && lengthSize != 4 {
		return dst, fmt.Errorf("%w: NAL length size %d", ErrInvalidFraming, lengthSize)
	}
	for len(b) > 0 {
		if len(b) < lengthSize {
			return dst, fmt.Errorf("%w: truncated AVCC length", ErrInvalidFraming)
		}
		var l uint64
		switch lengthSize {
		case 1:
			l = uint64(b[0])
		case 2:
			l = uint64(binary.BigEndian.Uint16(b))
		case 4:
			l = uint64(binary.BigEndian.Uint32(b))
		}
		b = b[lengthSize:]
		if l == 0 {
			continue
		}
		if l > uint64(len(b)) {
			return dst, fmt.Errorf("%w: AVCC NAL unit of %d bytes, %d left", ErrInvalidFraming, l, len(b))
		}
		dst = append(dst, b[:l:l])
		b = b[l:]
	}
	return dst, nil
}

// AppendAnnexB appends the NAL units to dst in Annex-B framing (4-byte start
// codes) and returns the extended slice.
func AppendAnnexB(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = append(dst, 0, 0, 0, 1)
		dst = append(dst, n...)
	}
	return dst
}

// AppendAVCC appends the NAL units to dst with 4-byte length prefixes and
// returns the extended slice.
func AppendAVCC(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(n)))
		dst = append(dst, n...)
	}
	return dst
}
