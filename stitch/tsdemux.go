package stitch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/asticode/go-astits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcmpegts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
	"github.com/livechunk/livechunk/internal/mpegts"
)

// tsHead is how much of an MPEG-TS object is searched first for the
// program map and the first frame of its audio stream, and tsHeadMax how
// much at most: the audio's first PES packet can come after the first
// picture, which in a 4K stream is megabytes.
const (
	tsHead     = 256 << 10
	tsHeadMax  = 32 << 20
	tsHeadKeep = 8 << 20 // a larger search buffer is not kept for the next object
)

// tsDemux reads the first H.264 elementary stream of an MPEG-TS object and
// calls fn for every access unit (one PES packet) with its raw 33-bit PTS
// and DTS (DTS = PTS when the PES has none) and its NAL units, which alias
// an internal buffer valid until fn returns; access unit delimiters are
// removed. Recoverable problems (lost sync, a PES without PTS, a payload
// that is not Annex-B) go to onErr and the access unit is skipped.
//
// The program map and the audio configuration are found in the first
// 256 KiB (tsPIDs), or failing that, in up to 32 MiB. The PES packets
// themselves are reassembled by internal/mpegts, in reused buffers:
// MPEG-TS input is demuxed twice (indexes, then payloads), and a demuxer
// that allocates per packet (mediacommon's astits reader) made that five
// times slower than ffmpeg.
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
	if demux.Sniff(head) != demux.TS {
		return errorf(ErrInvalid, "not an MPEG-TS object")
	}
	pids, err := tsPIDs(head, len(head) < tsHead)
	in := br
	if errors.Is(err, ErrInvalid) && len(head) == tsHead {
		// The streams were not all in sight: search further, in steps.
		// What is read for it is kept (st.head, reused by the next such
		// object) and demultiplexed first.
		buf := append(st.head[:0], head...)
		if _, err := br.Discard(len(head)); err != nil {
			return err
		}
		for n := 4 * tsHead; ; n = min(4*n, tsHeadMax) {
			if cap(buf) < n { // exactly n: append's growth would round up
				buf = append(make([]byte, 0, n), buf...)
			}
			m, _ := io.ReadFull(br, buf[len(buf):n])
			buf = buf[:len(buf)+m]
			if er.err != nil {
				return er.err
			}
			if pids, err = tsPIDs(buf, len(buf) < n); err == nil || len(buf) < n || n == tsHeadMax {
				break
			}
		}
		st.head = buf
		if cap(buf) > tsHeadKeep {
			defer func() { st.head = nil }()
		}
		st.rd.Reset(buf)
		defer st.rd.Reset(nil)
		in = st.more
		in.Reset(io.MultiReader(&st.rd, br))
		defer in.Reset(nil)
	}
	if err != nil {
		return err
	}
	if onAudio != nil {
		if err := onAudio(pids.audio); err != nil {
			return err
		}
	}
	d, da := &st.d, &st.da
	d.Reset()
	da.Reset()
	d.PID, d.OnErr, d.Video, d.DropAUD, d.MaxSize = pids.video, onErr, fn, true, maxSampleSize
	da.PID, da.OnErr, da.Audio, da.MaxSize = mpegts.NoPID, onErr, afn, maxSampleSize
	if pids.audio != nil && afn != nil {
		da.PID = pids.audio.pid
	}
	defer func() { d.OnErr, d.Video, da.OnErr, da.Audio = nil, nil, nil, nil }()
	tr := mpegts.NewReader(in, onErr, func() error { return er.err })
	for {
		if err := tr.Step(d, da); err == io.EOF {
			return nil
		} else if mpegts.Unsupported(err) {
			return errorf(ErrUnsupported, "%v", err)
		} else if err != nil {
			return err
		}
	}
}

// tsState is the reusable memory of one tsDemux call.
type tsState struct {
	br    *bufio.Reader
	d, da mpegts.Depacketizer // video, audio
	// When an object is searched past tsHead: what was read (kept when
	// not over tsHeadKeep), a reader of it, and the reader of it and the
	// rest.
	head []byte
	rd   bytes.Reader
	more *bufio.Reader
}

var tsPool = sync.Pool{New: func() any {
	return &tsState{br: bufio.NewReaderSize(nil, tsHead), more: bufio.NewReaderSize(nil, 64<<10)}
}}

// tsNoPID is a PID value that matches no packet.
const tsNoPID = mpegts.NoPID

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
//
// whole tells that head is the whole object: an AAC stream of the program
// map without a frame in it is then left out (audio nil) rather than
// waited for, as in the first segment of a recording whose audio starts
// later.
func tsPIDs(head []byte, whole bool) (tsStreams, error) {
	head = head[:len(head)/mpegts.PacketSize*mpegts.PacketSize]
	if st, ok := tsProgram(head, whole); ok {
		return st, nil
	}
	return tsPIDsMediacommon(head)
}

// tsProgram is the fast path of tsPIDs; ok is false when head does not
// hold a program map with an H.264 or AAC stream, or (unless whole) the
// first ADTS header of its AAC stream.
func tsProgram(head []byte, whole bool) (st tsStreams, ok bool) {
	st.video = tsNoPID
	dmx := astits.NewDemuxer(context.Background(), bytes.NewReader(head), astits.DemuxerOptPacketSize(mpegts.PacketSize))
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
		if st.audio == nil && !whole {
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
	d := mpegts.Depacketizer{PID: pid, OnErr: func(error) {}, Raw: func(_ int64, data []byte) error {
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
	for i := 0; i+mpegts.PacketSize <= len(head); i += mpegts.PacketSize {
		if p := head[i : i+mpegts.PacketSize]; p[0] == 0x47 {
			if err := d.Packet(p); err != nil {
				break
			}
		}
	}
	return a
}

// tsPIDsMediacommon is tsPIDs with mediacommon's Reader.
func tsPIDsMediacommon(head []byte) (tsStreams, error) {
	st := tsStreams{video: tsNoPID}
	tr := &mcmpegts.Reader{R: mpegts.SkipVideo(bytes.NewReader(head))} // it needs no pictures
	if err := tr.Initialize(); err != nil {
		return st, errorf(ErrInvalid, "no program map table and first audio frame in the first %d KiB: %v", (len(head)+1023)>>10, err)
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
