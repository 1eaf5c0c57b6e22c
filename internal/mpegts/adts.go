package mpegts

import "errors"

// SplitADTS appends to dst the raw AAC frames of the ADTS frames in b
// (which alias b). A truncated or unsynchronized tail is reported; the
// frames before it are kept.
func SplitADTS(dst [][]byte, b []byte) ([][]byte, error) {
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xff || b[1]&0xf6 != 0xf0 {
			return dst, errors.New("ADTS: lost sync")
		}
		hdr := 7
		if b[1]&1 == 0 { // protection_absent == 0: a CRC follows
			hdr = 9
		}
		n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
		if n < hdr || n > len(b) {
			return dst, errors.New("ADTS: truncated frame")
		}
		if b[6]&3 != 0 {
			return dst, errors.New("ADTS: several raw data blocks in one frame")
		}
		if n > hdr {
			dst = append(dst, b[hdr:n])
		}
		b = b[n:]
	}
	return dst, nil
}
