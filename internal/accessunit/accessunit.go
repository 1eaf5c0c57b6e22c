// Package accessunit holds the operations on H.264 access units (NAL
// units without framing, as the chunker's Sample carries them) that the
// sources, the chunker and stitch share.
package accessunit

import (
	"bytes"
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
