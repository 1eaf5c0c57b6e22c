package chunker

import (
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/livechunk/livechunk/internal/accessunit"
)

// SplitAnnexB appends to dst the NAL units of b, an Annex-B byte stream
// (NAL units separated by 00 00 01 or 00 00 00 01 start codes), and returns
// the extended slice. The NAL units alias b; nothing is copied. Trailing zero
// bytes of a NAL unit (trailing_zero_8bits) are dropped. b must begin with a
// start code; the error wraps ErrInvalidFraming.
func SplitAnnexB(dst [][]byte, b []byte) ([][]byte, error) { return accessunit.SplitAnnexB(dst, b) }

// SplitAVCC appends to dst the NAL units of b, a length-prefixed sample as
// stored in MP4 (and CMSampleBuffer), where each NAL unit is preceded by its
// size in lengthSize bytes (1, 2 or 4; 4 when lengthSize is 0). The NAL
// units alias b; nothing is copied. The error wraps ErrInvalidFraming.
func SplitAVCC(dst [][]byte, b []byte, lengthSize int) ([][]byte, error) {
	return accessunit.SplitAVCC(dst, b, lengthSize)
}

// AppendAnnexB appends the NAL units to dst in Annex-B framing (4-byte start
// codes) and returns the extended slice.
func AppendAnnexB(dst []byte, nalus [][]byte) []byte { return accessunit.AppendAnnexB(dst, nalus) }

// AppendAVCC appends the NAL units to dst with 4-byte length prefixes and
// returns the extended slice.
func AppendAVCC(dst []byte, nalus [][]byte) []byte { return accessunit.AppendAVCC(dst, nalus) }

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
