package stitch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/asticode/go-astits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/chunker"
)

// tsHead is how much of an MPEG-TS object is searched for the program map.
const tsHead = 256 << 10

// tsDemux reads the first H.264 elementary stream of an MPEG-TS object and
// calls fn for every access unit (one PES packet) with its raw 33-bit PTS
// and DTS (DTS = PTS when the PES has none) and its NAL units, which alias
// an internal buffer valid until fn returns; access unit delimiters are
// removed. Recoverable problems (lost sync, a PES without PTS, a payload
// that is not Annex-B) go to onErr and the access unit is skipped.
//
// mediacommon finds the program map in the first 256 KiB. The PES packets
// themselves are reassembled here, in one reused buffer and split with
// chunker.SplitAnnexB: MPEG-TS input is demuxed twice (indexes, then
// payloads), and a demuxer that allocates per packet (mediacommon's astits
// reader) made that five times slower than ffmpeg.
//
// With afn set, the first AAC (ADTS) stream is read too: afn is called for
// every PES packet of it with its raw PTS and its raw AAC frames (ADTS
// headers removed), in the order of the packets in the stream. The
// program's audio configuration is reported once, before anything else,
// through onAudio (nil when there is no AAC stream).
func tsDemux(r io.Reader, onErr func(error), fn func(pts, dts int64, au [][]byte) error,
	onAudio func(*tsAudio) error, afn func(pts int64, frames [][]byte) error) (err error) {
	defer guard(&err, "mpegts")
	er := &errReader{r: r}
	st := tsPool.Get().(*tsState)
	defer tsPool.Put(st)
	br := st.br
	br.Reset(er)
	defer br.Reset(nil)
	head, _ := br.Peek(tsHead)
	if er.err != nil {
		return er.err
	}
	if sniff(head) != contTS {
		return errorf(ErrInvalid, "not an MPEG-TS object")
	}
	pids, err := tsPIDs(head)
	if err != nil {
		return err
	}
	if onAudio != nil {
		if err := onAudio(pids.audio); err != nil {
			return err
		}
	}
	d, da := &st.d, &st.da
	d.pid, d.onErr, d.fn, d.have = pids.video, onErr, fn, false
	da.pid, da.onErr, da.afn, da.have, da.audio = tsNoPID, onErr, afn, false, true
	if pids.audio != nil && afn != nil {
		da.pid = pids.audio.pid
	}
	defer func() { d.onErr, d.fn, da.onErr, da.afn = nil, nil, nil, nil }()
	for {
		pkt, err := br.Peek(tsPacket)
		if len(pkt) < tsPacket {
			if er.err != nil {
				return er.err
			}
			if len(pkt) > 0 {
				onErr(fmt.Errorf("%d stray bytes at the end", len(pkt)))
			}
			_ = err
			if err := d.flush(); err != nil {
				return err
			}
			return da.flush()
		}
		if pkt[0] != 0x47 {
			// Lost sync: skip to the next sync byte.
			onErr(errors.New("lost sync"))
			if i := bytes.IndexByte(pkt[1:], 0x47); i >= 0 {
				br.Discard(1 + i)
			} else {
				br.Discard(tsPacket)
			}
			continue
		}
		if err := d.packet(pkt); err != nil {
			return err
		}
		if err := da.packet(pkt); err != nil {
			return err
		}
		br.Discard(tsPacket)
	}
}

// tsState is the reusable memory of one tsDemux call.
type tsState struct {
	br    *bufio.Reader
	d, da tsDepacketizer // video, audio
}

var tsPool = sync.Pool{New: func() any { return &tsState{br: bufio.NewReaderSize(nil, tsHead)} }}

// tsNoPID is a PID value that matches no packet.
const tsNoPID = 0xffff

// tsAudio is the AAC stream of an MPEG-TS program.
type tsAudio struct {
	pid  uint16
	asc  []byte // AudioSpecificConfig, from the first ADTS header
	info chunker.AACInfo
}

// tsStreams are the elementary streams of an MPEG-TS program that stitch
// reads.
type tsStreams struct {
	video uint16   // tsNoPID when there is no H.264 stream
	audio *tsAudio // nil when there is no (usable) AAC stream
}

// tsPIDs returns the first H.264 and the first AAC stream of the program
// map found in head. The common case, a program map and an AAC frame near
// the start, is read with astits (the program map only) and this file's
// depacketizer: mediacommon's Reader, which reassembles every PES packet
// with astits until it has seen each stream's first, took a fifth of the
// time of stitching an MPEG-TS recording, whose every segment begins with
// a 150 KB picture before its first audio. When that does not find the
// streams, mediacommon's Reader decides and says why.
func tsPIDs(head []byte) (tsStreams, error) {
	head = head[:len(head)/tsPacket*tsPacket]
	if st, ok := tsProgram(head); ok {
		return st, nil
	}
	return tsPIDsMediacommon(head)
}

// tsProgram is the fast path of tsPIDs; ok is false when head does not
// hold a program map with an H.264 or AAC stream, or the first ADTS
// header of its AAC stream.
func tsProgram(head []byte) (st tsStreams, ok bool) {
	st.video = tsNoPID
	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(head), astits.DemuxerOptPacketSize(tsPacket))
	var pmt *astits.PMTData
	for pmt == nil {
		d, err := dmx.NextData()
		if err != nil {
			return st, false
		}
		pmt = d.PMT
	}
	audio := uint16(tsNoPID)
	for _, es := range pmt.ElementaryStreams {
		switch es.StreamType {
		case astits.StreamTypeH264Video:
			if st.video == tsNoPID {
				st.video = es.ElementaryPID
			}
		case astits.StreamTypeAACAudio:
			if audio == tsNoPID {
				audio = es.ElementaryPID
			}
		}
	}
	if audio != tsNoPID {
		st.audio = firstADTSConfig(head, audio)
		if st.audio == nil {
			return st, false
		}
	}
	return st, st.video != tsNoPID || st.audio != nil
}

// firstADTSConfig returns the AAC stream pid described by the header of
// its first ADTS frame in head, as mediacommon's Reader does, or nil if
// head holds no complete PES packet of it.
func firstADTSConfig(head []byte, pid uint16) *tsAudio {
	var a *tsAudio
	found := errors.New("found")
	d := tsDepacketizer{pid: pid, onErr: func(error) {}, raw: func(data []byte) error {
		var pkts mpeg4audio.ADTSPackets
		if err := pkts.Unmarshal(data); err != nil || len(pkts) == 0 {
			return found // as mediacommon: the first PES packet decides
		}
		conf := mpeg4audio.AudioSpecificConfig{
			Type:          pkts[0].Type,
			SampleRate:    pkts[0].SampleRate,
			ChannelConfig: pkts[0].ChannelConfig,
		}
		asc, err := conf.Marshal()
		if err != nil {
			return found
		}
		info, err := chunker.ParseAudioSpecificConfig(asc)
		if err != nil {
			return found
		}
		a = &tsAudio{pid: pid, asc: asc, info: info}
		return found
	}}
	for i := 0; i+tsPacket <= len(head); i += tsPacket {
		if p := head[i : i+tsPacket]; p[0] == 0x47 {
			if err := d.packet(p); err != nil {
				break
			}
		}
	}
	return a
}

// tsPIDsMediacommon is tsPIDs with mediacommon's Reader.
func tsPIDsMediacommon(head []byte) (tsStreams, error) {
	st := tsStreams{video: tsNoPID}
	tr := &mpegts.Reader{R: bytes.NewReader(head)}
	if err := tr.Initialize(); err != nil {
		return st, errorf(ErrInvalid, "no program map table in the first %d KiB: %v", tsHead>>10, err)
	}
	other := ""
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *tscodecs.H264:
			if st.video == tsNoPID {
				st.video = t.PID
			}
		case *tscodecs.H265:
			other = "HEVC"
		case *tscodecs.MPEG4Audio:
			if st.audio != nil {
				continue
			}
			asc, err := c.Config.Marshal()
			if err != nil {
				continue
			}
			info, err := chunker.ParseAudioSpecificConfig(asc)
			if err != nil {
				continue
			}
			st.audio = &tsAudio{pid: t.PID, asc: asc, info: info}
		}
	}
	switch {
	case st.video != tsNoPID || st.audio != nil:
		return st, nil
	case other != "":
		return st, errorf(ErrUnsupported, "video is %s, not H.264", other)
	}
	return st, errorf(ErrUnsupported, "no H.264 (nor AAC) stream in the MPEG-TS program")
}

// tsDepacketizer reassembles the PES packets of one PID.
type tsDepacketizer struct {
	pid   uint16
	audio bool // ADTS: afn, not fn
	onErr func(error)
	fn    func(pts, dts int64, au [][]byte) error
	afn   func(pts int64, frames [][]byte) error
	pes   []byte // the PES packet being assembled
	have  bool
	nalus [][]byte
	kept  [][]byte
	// raw, when set, receives each PES packet's payload instead of fn or
	// afn.
	raw func(data []byte) error
}

func (d *tsDepacketizer) packet(p []byte) error {
	if uint16(p[1]&0x1f)<<8|uint16(p[2]) != d.pid {
		return nil
	}
	if p[1]&0x80 != 0 {
		d.onErr(errors.New("transport error indicator"))
		return nil
	}
	if p[3]&0xc0 != 0 {
		return errorf(ErrUnsupported, "scrambled MPEG-TS packets")
	}
	afc := p[3] >> 4 & 3
	payload := p[4:]
	if afc&2 != 0 {
		n := int(p[4])
		if 1+n > len(payload) {
			d.onErr(errors.New("adaptation field too long"))
			return nil
		}
		payload = payload[1+n:]
	}
	if afc&1 == 0 {
		return nil
	}
	if p[1]&0x40 != 0 { // payload unit start
		if err := d.flush(); err != nil {
			return err
		}
		d.pes, d.have = append(d.pes[:0], payload...), true
		return nil
	}
	if d.have {
		if len(d.pes)+len(payload) > maxSampleSize+64 {
			return errorf(ErrUnsupported, "PES packet larger than %d bytes", maxSampleSize)
		}
		d.pes = append(d.pes, payload...)
	}
	return nil
}

// flush delivers the PES packet assembled so far.
func (d *tsDepacketizer) flush() error {
	if !d.have {
		return nil
	}
	d.have = false
	b := d.pes
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		d.onErr(errors.New("PES packet without start code"))
		return nil
	}
	if sid := b[3]; sid == 0xbe || sid == 0xbf { // padding, private stream 2
		return nil
	}
	hdr := 9 + int(b[8])
	if hdr > len(b) {
		d.onErr(errors.New("PES header longer than the packet"))
		return nil
	}
	var pts, dts int64
	switch b[7] >> 6 {
	case 2:
		if hdr < 14 {
			d.onErr(errors.New("PES header too short for PTS"))
			return nil
		}
		pts = tsClock(b[9:])
		dts = pts
	case 3:
		if hdr < 19 {
			d.onErr(errors.New("PES header too short for PTS and DTS"))
			return nil
		}
		pts, dts = tsClock(b[9:]), tsClock(b[14:])
	default:
		d.onErr(errors.New("PES packet without PTS"))
		return nil
	}
	data := b[hdr:]
	if n := int(binary.BigEndian.Uint16(b[4:6])); n != 0 && n+6 >= hdr && n+6 < len(b) {
		data = b[hdr : n+6] // stuffing after a bounded PES packet
	}
	if d.raw != nil {
		return d.raw(data)
	}
	if d.audio {
		var err error
		d.kept, err = splitADTS(d.kept[:0], data)
		if err != nil {
			d.onErr(err)
		}
		if len(d.kept) == 0 {
			return nil
		}
		return d.afn(pts, d.kept)
	}
	var err error
	d.nalus, err = chunker.SplitAnnexB(d.nalus[:0], data)
	if err != nil {
		d.onErr(err)
		return nil
	}
	d.kept = d.kept[:0]
	for _, n := range d.nalus {
		if n[0]&0x1f != naluAUD {
			d.kept = append(d.kept, n)
		}
	}
	if len(d.kept) == 0 {
		d.onErr(errors.New("empty access unit"))
		return nil
	}
	return d.fn(pts, dts, d.kept)
}

// tsClock decodes a 33-bit PES timestamp.
func tsClock(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// splitADTS appends to dst the raw AAC frames of the ADTS frames in b
// (which alias b). A truncated or unsynchronized tail is reported; the
// frames before it are kept.
func splitADTS(dst [][]byte, b []byte) ([][]byte, error) {
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
