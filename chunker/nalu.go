package chunker

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

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

// IsIDR reports whether the access unit contains an IDR picture.
func IsIDR(nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) > 0 && naluType(n) == h264.NALUTypeIDR {
			return true
		}
	}
	return false
}

// naluType returns the type of the H.264 NAL unit n (not empty).
func naluType(n []byte) h264.NALUType { return h264.NALUType(n[0] & 0x1f) }
