package mpegts

import "io"

// SkipVideo returns a reader of the transport packets of r except those
// of video PES streams (stream_id 0xE0 to 0xEF, known from each pid's
// first PES header) and null packets; r must begin at a packet.
// mediacommon's Reader, which finds the streams and reads each audio
// stream's first PES packet for its configuration, needs no video
// payload, and it keeps at most 1 MiB of what it reads: the pictures
// before the first audio packet (a 4K keyframe alone is megabytes) made it
// fail. Packets without the sync byte are passed on as they are.
func SkipVideo(r io.Reader) io.Reader { return &videoFilter{r: r} }

// videoFilter is SkipVideo's reader.
type videoFilter struct {
	r     io.Reader
	video map[uint16]bool
	pkt   [PacketSize]byte
	rest  []byte // the part of pkt not yet passed on
	err   error
}

// Read returns as soon as it has something: a live input must not wait
// for more packets than the reader behind it asks for.
func (f *videoFilter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(f.rest) == 0 {
			if n > 0 || f.err != nil {
				break
			}
			m, err := io.ReadFull(f.r, f.pkt[:])
			if err != nil {
				f.err = err
				if err == io.ErrUnexpectedEOF {
					f.err = io.EOF
				}
			}
			if m == PacketSize && f.isVideo() {
				continue
			}
			f.rest = f.pkt[:m]
			if m == 0 {
				continue
			}
		}
		c := copy(p[n:], f.rest)
		f.rest = f.rest[c:]
		n += c
	}
	if n > 0 {
		return n, nil
	}
	return 0, f.err
}

// isVideo reports whether f.pkt belongs to a video PES stream, and learns
// that from the start of a PES packet.
func (f *videoFilter) isVideo() bool {
	b := f.pkt[:]
	if b[0] != SyncByte {
		return false
	}
	pid := PID(b)
	if pid == NullPID {
		return true // stuffing of a constant bit rate stream
	}
	if b[1]&0x40 != 0 { // payload unit start
		off := 4
		if b[3]&0x20 != 0 { // adaptation field
			off += 1 + int(b[4])
		}
		if b[3]&0x10 != 0 && off+4 <= len(b) && b[off] == 0 && b[off+1] == 0 && b[off+2] == 1 {
			if f.video == nil {
				f.video = map[uint16]bool{}
			}
			f.video[pid] = b[off+3]&0xf0 == 0xe0
		}
	}
	return f.video[pid]
}
