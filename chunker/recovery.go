package chunker

import "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

// Open-GOP random access points. An encoder with open GOPs (x264
// --open-gop, many broadcast and camera encoders) starts each GOP after the
// first with an I picture that is not an IDR picture and marks it with a
// recovery point SEI message (H.264 D.1.8) whose recovery_frame_cnt is 0:
// decoding can start there, except for the leading pictures that follow it
// in decode order but precede it in presentation order, which refer to the
// previous GOP. Such a stream may have a single IDR picture, at its start.

// seiRecoveryPoint is the SEI payload type of a recovery point message.
const seiRecoveryPoint = 6

// maxSEIScan bounds the bytes of an SEI NAL unit that are scanned for a
// recovery point message (x264 writes its long user-data message only in
// the first access unit; the recovery point comes in a NAL unit of its own).
const maxSEIScan = 512

// IsRecoveryPoint reports whether the access unit is an open-GOP random
// access point: an access unit without an IDR picture whose SEI carries a
// recovery point with recovery_frame_cnt 0 and whose slices are all I (or
// SI) slices. It allocates nothing.
func IsRecoveryPoint(nalus [][]byte) bool {
	rp := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch naluType(n) {
		case h264.NALUTypeIDR:
			return false
		case h264.NALUTypeSEI:
			if !rp {
				rp = seiHasRecoveryPoint(n)
			}
		}
	}
	if !rp {
		return false
	}
	slices := 0
	for _, n := range nalus {
		if len(n) == 0 || naluType(n) != h264.NALUTypeNonIDR {
			continue
		}
		st, ok := sliceType(n)
		if !ok || st%5 != 2 && st%5 != 4 { // I or SI
			return false
		}
		slices++
	}
	return slices > 0
}

// unescape copies the RBSP of the NAL unit n (without its header byte and
// its emulation prevention bytes) into dst, up to len(dst) bytes, and
// returns how many it copied.
func unescape(dst, n []byte) int {
	k, zeros := 0, 0
	for _, c := range n[1:] {
		if k == len(dst) {
			break
		}
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		dst[k] = c
		k++
	}
	return k
}

// seiHasRecoveryPoint reports whether the SEI NAL unit n holds a recovery
// point message with recovery_frame_cnt 0.
func seiHasRecoveryPoint(n []byte) bool {
	var buf [maxSEIScan]byte
	b := buf[:unescape(buf[:], n)]
	i := 0
	for i < len(b) && b[i] != 0x80 { // 0x80: rbsp_trailing_bits
		var typ, size int
		var ok bool
		if typ, i, ok = seiValue(b, i); !ok {
			return false
		}
		if size, i, ok = seiValue(b, i); !ok {
			return false
		}
		if typ == seiRecoveryPoint {
			r := bitReader{b: b[i:min(len(b), i+size)]}
			cnt, ok := r.ue()
			return ok && cnt == 0
		}
		i += size
	}
	return false
}

// seiValue reads an SEI payload type or size at b[i:] (a run of 0xff
// bytes, 255 each, and a last byte) and returns it with the index after it;
// ok is false when b ends first.
func seiValue(b []byte, i int) (v, next int, ok bool) {
	for i < len(b) && b[i] == 0xff {
		v += 255
		i++
	}
	if i >= len(b) {
		return 0, i, false
	}
	return v + int(b[i]), i + 1, true
}

// sliceType returns slice_type from the header of the slice NAL unit n.
func sliceType(n []byte) (uint32, bool) {
	var buf [16]byte
	r := bitReader{b: buf[:unescape(buf[:], n)]}
	if _, ok := r.ue(); !ok { // first_mb_in_slice
		return 0, false
	}
	return r.ue()
}

// ue reads an unsigned Exp-Golomb code (values up to 2^31-2).
func (r *bitReader) ue() (uint32, bool) {
	zeros := 0
	for r.read(1) == 0 {
		if r.bad || zeros == 31 {
			return 0, false
		}
		zeros++
	}
	v := r.read(zeros)
	if r.bad {
		return 0, false
	}
	return uint32(1<<zeros - 1 + v), true
}
