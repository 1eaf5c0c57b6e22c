package mpegts

import (
	"encoding/binary"
	"errors"
)

// Program specific information (PSI): the program association table (PAT,
// on PID 0), which names the PID of each program's map, and the program map
// table (PMT), which lists a program's elementary streams.

// Table IDs and stream types that livechunk reads and writes.
const (
	TablePAT = 0x00
	TablePMT = 0x02
	// StreamH264 and StreamADTS are the PMT stream_type of H.264 video and
	// of AAC in ADTS framing.
	StreamH264 = 0x1b
	StreamADTS = 0x0f
)

// maxSection is the largest PSI section (section_length is 12 bits, at
// most 1021 for PAT and PMT).
const maxSection = 3 + 1024

// Section reassembles the PSI sections of one PID.
type Section struct {
	PID  uint16
	buf  []byte
	have bool // a section is in progress
}

// Packet takes a transport packet (of any PID) and returns the section
// that ends in it, table ID to CRC included, when one does and its CRC is
// right; it aliases a buffer that the next call reuses. A packet can end
// only one section and begin another; its further sections are ignored
// (PAT and PMT take one packet each in practice).
func (s *Section) Packet(p []byte) []byte {
	if PID(p) != s.PID || p[1]&0x80 != 0 || p[3]&0x10 == 0 {
		return nil // another PID, a transport error, no payload
	}
	payload := p[4:]
	if p[3]&0x20 != 0 { // adaptation field
		n := 1 + int(payload[0])
		if n > len(payload) {
			return nil
		}
		payload = payload[n:]
	}
	var done []byte
	if p[1]&0x40 != 0 { // payload unit start: a pointer field first
		if len(payload) == 0 || 1+int(payload[0]) > len(payload) {
			s.have = false
			return nil
		}
		ptr := int(payload[0])
		if s.have {
			s.buf = append(s.buf, payload[1:1+ptr]...)
			done = s.complete()
		}
		if done != nil {
			// Keep it apart from the section that begins here.
			done = append([]byte(nil), done...)
		}
		s.buf, s.have = append(s.buf[:0], payload[1+ptr:]...), true
	} else if s.have {
		s.buf = append(s.buf, payload...)
	}
	if done == nil && s.have {
		done = s.complete()
	}
	return done
}

// complete returns the section in s.buf when it is whole, ending it.
func (s *Section) complete() []byte {
	b := s.buf
	if len(b) >= 1 && b[0] == 0xff { // stuffing: no section
		s.have = false
		return nil
	}
	if len(b) < 3 {
		return nil
	}
	n := 3 + int(binary.BigEndian.Uint16(b[1:3])&0x0fff)
	if n > maxSection || n < 3+9 {
		s.have = false
		return nil
	}
	if len(b) < n {
		return nil
	}
	s.have = false
	if CRC32(b[:n]) != 0 { // over the section and its CRC: 0 when right
		return nil
	}
	return b[:n]
}

// CRC32 is the CRC of MPEG-2 sections (polynomial 0x04C11DB7, not
// reflected, initial value all ones).
func CRC32(b []byte) uint32 {
	crc := uint32(0xffffffff)
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

var errNotTable = errors.New("not the expected table")

// PATProgram returns the PMT PID of the first program (program_number
// other than 0, the network PID) of a PAT section.
func PATProgram(sec []byte) (pmtPID uint16, ok bool) {
	if len(sec) < 12 || sec[0] != TablePAT {
		return 0, false
	}
	for e := sec[8 : len(sec)-4]; len(e) >= 4; e = e[4:] {
		if binary.BigEndian.Uint16(e) != 0 {
			return binary.BigEndian.Uint16(e[2:]) & 0x1fff, true
		}
	}
	return 0, false
}

// ES is an elementary stream of a program map.
type ES struct {
	Type uint8  // stream_type
	PID  uint16 // elementary_PID
}

// PMTStreams appends to dst the elementary streams of a PMT section.
func PMTStreams(dst []ES, sec []byte) ([]ES, error) {
	if len(sec) < 16 || sec[0] != TablePMT {
		return dst, errNotTable
	}
	end := len(sec) - 4
	i := 12 + int(binary.BigEndian.Uint16(sec[10:12])&0x0fff) // after the program info
	for i+5 <= end {
		es := ES{Type: sec[i], PID: binary.BigEndian.Uint16(sec[i+1:]) & 0x1fff}
		i += 5 + int(binary.BigEndian.Uint16(sec[i+3:])&0x0fff)
		if i > end {
			return dst, errors.New("PMT: elementary stream info beyond the section")
		}
		dst = append(dst, es)
	}
	return dst, nil
}
