package mpegts

import "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

// MPEG-TS packetization, written straight into the caller's buffer: each
// payload byte is copied once, from the caller's NAL units or AAC frames
// into its 188-byte packet, and nothing is allocated per PES packet. The
// layout is the one ffmpeg, hls.js and Safari read (that of mediacommon's
// writer over astits): PAT and PMT before every random-access point of the
// PCR stream and every 40 PES packets, PIDs 0x100 and up for the elementary
// streams, the PMT on 0x1000, a PCR PCRLead ticks behind the DTS on
// random-access points and every third PES of the leading stream, and
// adaptation-field stuffing in the last packet of a PES.

// PES stream_id values.
const (
	StreamIDVideo = 0xe0
	StreamIDAudio = 0xc0
)

// PCRLead is how far (in 90 kHz ticks) the PCR runs behind the DTS it is
// sent with: a timeline that starts no earlier than this has no negative
// PCR.
const PCRLead = 9000

const (
	muxPMTPID = 0x1000
	// tablesPeriod is the largest number of PES packets between two copies
	// of PAT and PMT.
	tablesPeriod = 40
	timeMask     = 1<<33 - 1
)

// Stream is one elementary stream of a Muxer's program.
type Stream struct {
	Type     byte // its stream_type in the PMT (StreamH264, StreamADTS)
	StreamID byte // its PES stream_id (StreamIDVideo, StreamIDAudio)
	pid      uint16
	cc       byte // continuity counter of the next packet
}

// PID returns the stream's PID.
func (s *Stream) PID() uint16 { return s.pid }

// Muxer writes the packets of one program with a video and/or an audio
// stream. Continuity counters run on from call to call, so the output of a
// Muxer can be cut into segments that play one after another.
type Muxer struct {
	// Payload is the payload of the next PES packet, which WritePES
	// writes and empties.
	Payload Pieces
	// Room, when set, makes room for n more bytes at the end of b,
	// returning b or a copy of it with more capacity; by default append's
	// growth is used.
	Room func(b []byte, n int) []byte

	streams  []*Stream
	pcr      *Stream // the leading stream, which carries the PCR
	tables   [2 * PacketSize]byte
	tablesCC byte // continuity counter of the next PAT and PMT
	sinceT   int  // PES packets since PAT and PMT were last written
	pcrLeft  int  // PES packets of the leading stream until the next PCR
}

// NewMuxer returns a muxer of a program of the given streams, on PIDs
// 0x100, 0x101, ...; the first one carries the PCR.
func NewMuxer(streams ...*Stream) *Muxer {
	m := &Muxer{streams: streams, pcr: streams[0], sinceT: tablesPeriod}
	for i, s := range streams {
		s.pid = 0x100 + uint16(i)
	}
	m.buildTables()
	return m
}

// MuxState is where a Muxer's counters stand: the continuity counters of
// its tables and streams, and the packets since the tables and the PCR.
// A muxer that takes it over (SetState) continues the output of the one it
// came from, as if it had written it.
type MuxState struct {
	TablesCC byte   `json:"tables_cc"`
	CC       []byte `json:"cc"` // per stream, in the order of NewMuxer's
	SinceT   int    `json:"since_tables"`
	PCRLeft  int    `json:"pcr_left"`
}

// State returns the muxer's counters.
func (m *Muxer) State() MuxState {
	st := MuxState{TablesCC: m.tablesCC, SinceT: m.sinceT, PCRLeft: m.pcrLeft}
	for _, s := range m.streams {
		st.CC = append(st.CC, s.cc)
	}
	return st
}

// SetState takes over the counters of another muxer of the same program
// (see State); a state of another number of streams is ignored.
func (m *Muxer) SetState(st MuxState) {
	if len(st.CC) != len(m.streams) {
		return
	}
	m.tablesCC, m.sinceT, m.pcrLeft = st.TablesCC&0x0f, st.SinceT, st.PCRLeft
	for i, s := range m.streams {
		s.cc = st.CC[i] & 0x0f
	}
}

// buildTables builds the PAT and PMT packets (their continuity counters are
// set when they are written).
func (m *Muxer) buildTables() {
	// program 1 on the PMT PID
	section := []byte{0x00, 0x01, 0xe0 | muxPMTPID>>8, muxPMTPID & 0xff}
	psiPacket(m.tables[:PacketSize], 0, TablePAT, 0, section)
	section = []byte{0xe0 | byte(m.pcr.pid>>8), byte(m.pcr.pid), 0xf0, 0x00} // PCR PID, no program info
	for _, s := range m.streams {
		section = append(section, s.Type, 0xe0|byte(s.pid>>8), byte(s.pid), 0xf0, 0x00)
	}
	psiPacket(m.tables[PacketSize:], muxPMTPID, TablePMT, 1, section)
}

// psiPacket fills p with one TS packet holding a PSI section: table id,
// table id extension (transport stream id or program number), version 0,
// the data and a CRC.
func psiPacket(p []byte, pid uint16, tableID byte, ext uint16, data []byte) {
	p[0] = SyncByte
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
	crc := CRC32(sec)
	sec = append(sec, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	for i := 5 + len(sec); i < PacketSize; i++ {
		p[i] = 0xff
	}
}

// room makes room for n more bytes in b.
func (m *Muxer) room(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	if m.Room != nil {
		return m.Room(b, n)
	}
	return append(b, make([]byte, n)...)[:len(b)]
}

// writeTables appends PAT and PMT to b.
func (m *Muxer) writeTables(b []byte) []byte {
	n := len(b)
	b = append(m.room(b, len(m.tables)), m.tables[:]...)
	b[n+3] = 0x10 | m.tablesCC
	b[n+PacketSize+3] = 0x10 | m.tablesCC
	m.tablesCC = (m.tablesCC + 1) & 0x0f
	m.sinceT = 0
	return b
}

// Pieces is the payload of one PES packet: byte slices read in order,
// which are not copied until the packets are written.
type Pieces struct {
	p   [][]byte
	i   int // current slice
	off int // offset in it
	len int // total bytes
}

// Reset empties the payload.
func (s *Pieces) Reset() { s.p, s.i, s.off, s.len = s.p[:0], 0, 0, 0 }

// Add appends b to the payload; b must stay unchanged until the PES packet
// is written.
func (s *Pieces) Add(b []byte) {
	if len(b) > 0 {
		s.p = append(s.p, b)
		s.len += len(b)
	}
}

// Start code and access unit delimiter (primary_pic_type 7: any slice) in
// Annex-B framing.
var (
	annexBStart = []byte{0, 0, 0, 1}
	annexBAUD   = []byte{0, 0, 0, 1, byte(h264.NALUTypeAccessUnitDelimiter), 0xf0}
)

// AddAccessUnit appends an H.264 access unit in the framing of MPEG-TS:
// an access unit delimiter first unless it has one (players such as
// video.js, iOS and QuickTime need it), then every NAL unit after a
// 4-byte start code.
func (s *Pieces) AddAccessUnit(au [][]byte) {
	if len(au) == 0 || h264.NALUType(au[0][0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
		s.Add(annexBAUD)
	}
	for _, n := range au {
		s.Add(annexBStart)
		s.Add(n)
	}
}

// Len returns the payload's size.
func (s *Pieces) Len() int { return s.len }

// fill copies the next len(dst) bytes into dst.
func (s *Pieces) fill(dst []byte) {
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

// WritePES appends to b the packets of one PES packet of stream s whose
// payload is m.Payload, with times in 90 kHz ticks (written modulo 2^33),
// and empties the payload. Without hasDTS, or when it equals the PTS, only
// the PTS is written. A random-access PES sets the random_access_indicator;
// on the leading stream it also brings PAT and PMT first, and a PCR. Video
// PES packets leave their length open; audio ones state it.
func (m *Muxer) WritePES(b []byte, s *Stream, pts, dts int64, hasDTS, randomAccess bool) []byte {
	m.sinceT++
	if m.sinceT >= tablesPeriod || randomAccess && s == m.pcr {
		b = m.writeTables(b)
	}
	withPCR := false
	if s == m.pcr {
		if randomAccess && s.StreamID == StreamIDVideo || m.pcrLeft == 0 {
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
	hdr[3] = s.StreamID
	hdr[6] = 0x80
	hl := 14
	if hasDTS && dts != pts {
		hdr[7], hdr[8] = 0xc0, 10
		putTimestamp(hdr[9:], 0x3, pts&timeMask)
		putTimestamp(hdr[14:], 0x1, dts&timeMask)
		hl = 19
	} else {
		hdr[7], hdr[8] = 0x80, 5
		putTimestamp(hdr[9:], 0x2, pts&timeMask)
	}
	if s.StreamID != StreamIDVideo {
		if n := m.Payload.len + hl - 6; n <= 0xffff {
			hdr[4], hdr[5] = byte(n>>8), byte(n)
		}
	}

	left := m.Payload.len
	first := true
	for first || left > 0 {
		n := len(b)
		b = m.room(b, PacketSize)[:n+PacketSize]
		p := b[n:]
		p[0] = SyncByte
		p[1] = byte(s.pid >> 8)
		p[2] = byte(s.pid)
		cc := s.cc
		s.cc = (s.cc + 1) & 0x0f
		pos := 4
		room := PacketSize - 4 // for adaptation field, PES header and payload
		af := 0                // adaptation field size, length byte included
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
					putPCR(p[6:], (clock-PCRLead)&timeMask)
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
		m.Payload.fill(p[pos : pos+take])
		left -= take
	}
	m.Payload.Reset()
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
