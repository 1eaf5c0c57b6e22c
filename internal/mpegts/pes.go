package mpegts

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/livechunk/livechunk/internal/accessunit"
)

// ErrScrambled reports scrambled (encrypted) packets of a stream that is
// read; ErrTooLarge a PES packet over Depacketizer.MaxSize.
var (
	ErrScrambled = errors.New("scrambled MPEG-TS packets")
	ErrTooLarge  = errors.New("PES packet too large")
)

// Unsupported reports whether err means that the stream holds what the
// demultiplexer does not read (ErrScrambled, ErrTooLarge), as opposed to
// damage or an error of the reader: callers report it as their
// ErrUnsupported.
func Unsupported(err error) bool {
	return errors.Is(err, ErrScrambled) || errors.Is(err, ErrTooLarge)
}

// Depacketizer reassembles the PES packets of one PID and delivers each
// complete one to exactly one of its callbacks. The data passed to a
// callback alias a buffer that the next PES packet reuses, unless the
// callback calls Detach.
type Depacketizer struct {
	PID uint16
	// OnErr receives recoverable problems (a PES packet without start code
	// or PTS, a payload that is not Annex-B or ADTS); the packet is
	// skipped. It must be set.
	OnErr func(error)
	// Video receives an H.264 access unit: its raw 33-bit PTS and DTS
	// (DTS = PTS when the PES has none) and its NAL units.
	Video func(pts, dts int64, au [][]byte) error
	// DropAUD leaves access unit delimiters out of Video's NAL units; an
	// access unit of nothing else is then reported to OnErr and skipped.
	DropAUD bool
	// Audio receives the raw AAC frames of an ADTS PES packet (headers
	// removed) and its raw PTS.
	Audio func(pts int64, frames [][]byte) error
	// Raw receives a PES packet's payload and raw PTS as they are.
	Raw func(pts int64, data []byte) error
	// MaxSize bounds a PES packet (default 64 MiB).
	MaxSize int

	pes   []byte // the PES packet being assembled
	have  bool
	cc    byte // continuity counter of the last packet, if ccOK
	ccOK  bool
	want  int // its size from the PES header's length field, 0 if unbounded
	nalus [][]byte
	free  []detached
}

type detached struct {
	buf   []byte
	nalus [][]byte
}

// Detach, called from a callback, hands the buffers of the data passed to
// it to the caller: they stay valid after the callback returns, and the
// next PES packet is assembled elsewhere. Give them back with Reuse when
// done.
func (d *Depacketizer) Detach() (buf []byte, nalus [][]byte) {
	buf, nalus = d.pes, d.nalus
	d.pes, d.nalus = nil, nil
	if n := len(d.free); n > 0 {
		d.pes, d.nalus = d.free[n-1].buf, d.free[n-1].nalus
		d.free = d.free[:n-1]
	}
	return buf, nalus
}

// Reuse returns buffers that Detach handed out.
func (d *Depacketizer) Reuse(buf []byte, nalus [][]byte) {
	if len(d.free) < 8 {
		clear(nalus[:cap(nalus)])
		d.free = append(d.free, detached{buf[:0], nalus[:0]})
	}
}

// Reset drops a PES packet in progress (to read another stream with the
// same buffers).
func (d *Depacketizer) Reset() { d.have, d.ccOK = false, false }

// Packet takes one 188-byte transport packet; packets of other PIDs are
// ignored.
func (d *Depacketizer) Packet(p []byte) error {
	if PID(p) != d.PID {
		return nil
	}
	if p[1]&0x80 != 0 {
		d.OnErr(errors.New("transport error indicator"))
		return nil
	}
	if p[3]&0xc0 != 0 {
		return ErrScrambled
	}
	afc := p[3] >> 4 & 3
	cc := p[3] & 0x0f
	payload := p[4:]
	discontinuity := false
	if afc&2 != 0 {
		n := int(p[4])
		if 1+n > len(payload) {
			d.OnErr(errors.New("adaptation field too long"))
			return nil
		}
		discontinuity = n > 0 && p[5]&0x80 != 0
		payload = payload[1+n:]
	}
	// Continuity: a repeated packet is dropped; after a gap inside a PES
	// packet, the packet in progress is incomplete and dropped too (as
	// astits does). A gap at the start of a PES packet leaves the one in
	// progress as it is when its length is not declared (video): it may be
	// complete, as where two streams were joined end to end (cat a.ts
	// b.ts), or have lost its tail, which ffmpeg also delivers (flagged
	// corrupt). A declared length tells: it is delivered only if complete.
	if d.ccOK && !discontinuity {
		want := d.cc
		if afc&1 != 0 {
			if cc == d.cc {
				return nil // duplicate
			}
			want = (d.cc + 1) & 0x0f
		}
		if cc != want {
			d.OnErr(fmt.Errorf("continuity counter %d after %d: packets lost (or two streams joined)", cc, d.cc))
			if p[1]&0x40 == 0 || d.want != 0 {
				d.have = false
			}
		}
	}
	d.cc, d.ccOK = cc, true
	if afc&1 == 0 {
		return nil
	}
	max := d.MaxSize
	if max <= 0 {
		max = 64 << 20
	}
	if p[1]&0x40 != 0 { // payload unit start
		if err := d.Flush(); err != nil {
			return err
		}
		d.pes, d.have, d.want = append(d.pes[:0], payload...), true, 0
		if len(d.pes) >= 6 {
			if n := int(binary.BigEndian.Uint16(d.pes[4:6])); n != 0 {
				d.want = 6 + n
			}
		}
	} else if d.have {
		if len(d.pes)+len(payload) > max+64 {
			d.have = false
			return fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
		}
		d.pes = append(d.pes, payload...)
	}
	if d.have && d.want > 0 && len(d.pes) >= d.want {
		// A bounded PES packet is complete without waiting for the next.
		return d.Flush()
	}
	return nil
}

// Flush delivers the PES packet assembled so far (at the end of the
// input).
func (d *Depacketizer) Flush() error {
	if !d.have {
		return nil
	}
	d.have = false
	b := d.pes
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		d.OnErr(errors.New("PES packet without start code"))
		return nil
	}
	if sid := b[3]; sid == 0xbe || sid == 0xbf { // padding, private stream 2
		return nil
	}
	hdr := 9 + int(b[8])
	if hdr > len(b) {
		d.OnErr(errors.New("PES header longer than the packet"))
		return nil
	}
	var pts, dts int64
	switch b[7] >> 6 {
	case 2:
		if hdr < 14 {
			d.OnErr(errors.New("PES header too short for PTS"))
			return nil
		}
		pts = Clock(b[9:])
		dts = pts
	case 3:
		if hdr < 19 {
			d.OnErr(errors.New("PES header too short for PTS and DTS"))
			return nil
		}
		pts, dts = Clock(b[9:]), Clock(b[14:])
	default:
		d.OnErr(errors.New("PES packet without PTS"))
		return nil
	}
	data := b[hdr:]
	if n := int(binary.BigEndian.Uint16(b[4:6])); n != 0 && n+6 >= hdr && n+6 < len(b) {
		data = b[hdr : n+6] // stuffing after a bounded PES packet
	}
	switch {
	case d.Raw != nil:
		return d.Raw(pts, data)
	case d.Audio != nil:
		var err error
		d.nalus, err = SplitADTS(d.nalus[:0], data)
		if err != nil {
			d.OnErr(err)
		}
		if len(d.nalus) == 0 {
			return nil
		}
		return d.Audio(pts, d.nalus)
	case d.Video != nil:
		var err error
		d.nalus, err = accessunit.SplitAnnexB(d.nalus[:0], data)
		if err != nil {
			d.OnErr(err)
			return nil
		}
		if d.DropAUD {
			k := d.nalus[:0]
			for _, n := range d.nalus {
				if h264.NALUType(n[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
					k = append(k, n)
				}
			}
			d.nalus = k
		}
		if len(d.nalus) == 0 {
			d.OnErr(errors.New("empty access unit"))
			return nil
		}
		return d.Video(pts, dts, d.nalus)
	}
	return nil
}

// Clock decodes a 33-bit PES timestamp.
func Clock(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}
