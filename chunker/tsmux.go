package chunker

// MPEG-TS packetization (ISO/IEC 13818-1), written straight into the
// segment buffer: each payload byte is copied once, from the caller's NAL
// units or AAC frames into its 188-byte packet, and nothing is allocated per
// sample. The layout follows what mediacommon's writer (over astits)
// produced before, which ffmpeg, hls.js and Safari read: PAT and PMT before
// every random-access point of the PCR stream and every 40 PES packets,
// PIDs 0x100 and up for the elementary streams, PMT on 0x1000, a PCR
// 9000 ticks (0.1 s) behind the DTS on random-access points and every third
// PES of the leading stream, and adaptation-field stuffing in the last
// packet of a PES.

const (
	tsPacketSize = 188
	tsPMTPID     = 0x1000
	// tsTablesPeriod is the largest number of PES packets between two
	// copies of PAT and PMT.
	tsTablesPeriod = 40
	// tsStreamH264 and tsStreamADTS are PMT stream_type values.
	tsStreamH264 = 0x1b
	tsStreamADTS = 0x0f
	// PES stream_id values.
	tsStreamIDVideo = 0xe0
	tsStreamIDAudio = 0xc0
)

// tsStream is one elementary stream of the program.
type tsStream struct {
	pid      uint16
	typ      byte // stream_type in the PMT
	streamID byte // PES stream_id
	cc       byte // continuity counter of the next packet
}

// tsMux writes the packets of one program with a video and/or an audio
// stream. Continuity counters continue across segments.
type tsMux struct {
	target   int64 // target duration in the stream's ticks
	elapsed  int64 // decode time of the last picture since the segment's first (see expectedSize)
	streams  []*tsStream
	pcr      *tsStream // the leading stream, which carries the PCR
	tables   [2 * tsPacketSize]byte
	tablesCC byte // continuity counter of the next PAT and PMT
	sinceT   int  // PES packets since PAT and PMT were last written
	pcrLeft  int  // PES packets of the leading stream until the next PCR
	payload  pieces
}

// newTSMux returns a muxer for the given streams; the first one carries the
// PCR.
func newTSMux(streams ...*tsStream) *tsMux {
	m := &tsMux{streams: streams, pcr: streams[0], sinceT: tsTablesPeriod}
	for i, s := range streams {
		s.pid = 0x100 + uint16(i)
	}
	m.buildTables()
	return m
}

// buildTables builds the PAT and PMT packets (their continuity counters are
// set when they are written).
func (m *tsMux) buildTables() {
	pat := m.tables[:tsPacketSize]
	// program 1 on the PMT PID
	section := []byte{0x00, 0x01, 0xe0 | tsPMTPID>>8, tsPMTPID & 0xff}
	psiPacket(pat, 0, 0x00, 0, section)

	pmt := m.tables[tsPacketSize:]
	section = []byte{0xe0 | byte(m.pcr.pid>>8), byte(m.pcr.pid), 0xf0, 0x00} // PCR PID, no program info
	for _, s := range m.streams {
		section = append(section, s.typ, 0xe0|byte(s.pid>>8), byte(s.pid), 0xf0, 0x00)
	}
	psiPacket(pmt, tsPMTPID, 0x02, 1, section)
}

// psiPacket fills p with one TS packet holding a PSI section: table id,
// table id extension (transport stream id or program number), version 0,
// the data and a CRC.
func psiPacket(p []byte, pid uint16, tableID byte, ext uint16, data []byte) {
	p[0] = 0x47
	p[1] = 0x40 | byte(pid>>8) // payload unit start
	p[2] = byte(pid)
	p[3] = 0x10 // payload only; CC set when written
	p[4] = 0    // pointer field
	sec := p[5:5]
	length := 5 + len(data) + 4 // after section_length: ext..last_section, data, CRC
	sec = append(sec, tableID, 0xb0|byte(length>>8), byte(length), byte(ext>>8), byte(ext),
		0xc1, // version 0, current
		0, 0) // section numbers
	sec = append(sec, data...)
	crc := crc32MPEG(sec)
	sec = append(sec, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	for i := 5 + len(sec); i < tsPacketSize; i++ {
		p[i] = 0xff
	}
}

// crc32MPEG is the CRC of MPEG-2 sections (polynomial 0x04C11DB7, not
// reflected, initial value all ones).
func crc32MPEG(b []byte) uint32 {
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

// room makes room for n more bytes in b, the open segment (see grow);
// the size it is expected to reach is worked out only when b is full.
func (m *tsMux) room(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return grow(b, n, expectedSize(len(b), m.elapsed, m.target))
}

// writeTables appends PAT and PMT to b.
func (m *tsMux) writeTables(b []byte) []byte {
	n := len(b)
	b = append(m.room(b, len(m.tables)), m.tables[:]...)
	b[n+3] = 0x10 | m.tablesCC
	b[n+tsPacketSize+3] = 0x10 | m.tablesCC
	m.tablesCC = (m.tablesCC + 1) & 0x0f
	m.sinceT = 0
	return b
}

// pieces is the payload of one PES: a sequence of byte slices read in
// order.
type pieces struct {
	p   [][]byte
	i   int // current slice
	off int // offset in it
	len int // total bytes
}

func (s *pieces) reset() { s.p, s.i, s.off, s.len = s.p[:0], 0, 0, 0 }

func (s *pieces) add(b []byte) {
	if len(b) > 0 {
		s.p = append(s.p, b)
		s.len += len(b)
	}
}

// fill copies the next len(dst) bytes into dst.
func (s *pieces) fill(dst []byte) {
	for len(dst) > 0 {
		n := copy(dst, s.p[s.i][s.off:])
		dst = dst[n:]
		s.off += n
		if s.off == len(s.p[s.i]) {
			s.i++
			s.off = 0
		}
	}
}

// writePES appends to b the packets of one PES of stream s whose payload is
// m.payload, with times in 90 kHz ticks (written modulo 2^33). Without
// hasDTS, or when it equals the PTS, only the PTS is written. A
// random-access PES sets the random_access_indicator; on the leading stream
// it also brings PAT and PMT first, and a PCR.
func (m *tsMux) writePES(b []byte, s *tsStream, pts, dts int64, hasDTS, randomAccess bool) []byte {
	const mask = 1<<33 - 1
	m.sinceT++
	if m.sinceT >= tsTablesPeriod || randomAccess && s == m.pcr {
		b = m.writeTables(b)
	}
	withPCR := false
	if s == m.pcr {
		if randomAccess && s.streamID == tsStreamIDVideo || m.pcrLeft == 0 {
			withPCR = true
			m.pcrLeft = 3
		}
		m.pcrLeft--
	}
	clock := pts
	if hasDTS {
		clock = dts
	}

	// PES header: start code, stream id, length, flags, PTS (and DTS).
	var hdr [19]byte
	hdr[2] = 1
	hdr[3] = s.streamID
	hdr[6] = 0x80
	hl := 14
	if hasDTS && dts != pts {
		hdr[7], hdr[8] = 0xc0, 10
		putTimestamp(hdr[9:], 0x3, pts&mask)
		putTimestamp(hdr[14:], 0x1, dts&mask)
		hl = 19
	} else {
		hdr[7], hdr[8] = 0x80, 5
		putTimestamp(hdr[9:], 0x2, pts&mask)
	}
	if s.streamID != tsStreamIDVideo {
		// Video PES leave the length open (0); audio PES state it.
		if n := m.payload.len + hl - 6; n <= 0xffff {
			hdr[4], hdr[5] = byte(n>>8), byte(n)
		}
	}

	left := m.payload.len
	first := true
	for first || left > 0 {
		n := len(b)
		b = m.room(b, tsPacketSize)[:n+tsPacketSize]
		p := b[n:]
		p[0] = 0x47
		p[1] = byte(s.pid >> 8)
		p[2] = byte(s.pid)
		cc := s.cc
		s.cc = (s.cc + 1) & 0x0f
		pos := 4
		room := tsPacketSize - 4 // for adaptation field, PES header and payload
		af := 0                  // adaptation field size, length byte included
		var afFlags byte
		if first {
			p[1] |= 0x40 // payload unit start
			if randomAccess {
				afFlags |= 0x40
				af = 2
			}
			if withPCR {
				afFlags |= 0x10
				af = 8
			}
			room -= hl
		}
		room -= af
		take := min(left, room)
		if take < room {
			// The last packet: stuffing in the adaptation field.
			af += room - take
		}
		if af > 0 {
			p[3] = 0x30 | cc
			p[4] = byte(af - 1)
			if af > 1 {
				p[5] = afFlags
				pos = 6
				if afFlags&0x10 != 0 {
					putPCR(p[6:], (clock-tsPCRLead)&mask)
					pos = 12
				}
				for ; pos < 4+af; pos++ {
					p[pos] = 0xff
				}
			}
			pos = 4 + af
		} else {
			p[3] = 0x10 | cc
		}
		if first {
			pos += copy(p[pos:], hdr[:hl])
			first = false
		}
		m.payload.fill(p[pos : pos+take])
		left -= take
	}
	return b
}

// putTimestamp writes a 33-bit PTS or DTS with its 4-bit prefix.
func putTimestamp(p []byte, prefix byte, t int64) {
	p[0] = prefix<<4 | byte(t>>29)&0x0e | 1
	p[1] = byte(t >> 22)
	p[2] = byte(t>>14) | 1
	p[3] = byte(t >> 7)
	p[4] = byte(t<<1) | 1
}

// putPCR writes a program clock reference with a zero extension.
func putPCR(p []byte, base int64) {
	p[0] = byte(base >> 25)
	p[1] = byte(base >> 17)
	p[2] = byte(base >> 9)
	p[3] = byte(base >> 1)
	p[4] = byte(base<<7) | 0x7e
	p[5] = 0
}
