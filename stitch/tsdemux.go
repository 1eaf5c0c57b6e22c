package stitch

import (
	"bufio"
	"bytes"
	"io"
	"sync"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
	"github.com/livechunk/livechunk/internal/mpegts"
)

// tsHeadMax is how much of an MPEG-TS object is searched at most for the
// program map and the first frame of its audio stream: the audio's first
// PES packet can come after the first picture, which in a 4K stream is
// megabytes. What was read for it is kept for the next object unless it is
// over tsHeadKeep.
const (
	tsHeadMax  = 32 << 20
	tsHeadKeep = 8 << 20
)

// tsDemux reads the first H.264 elementary stream of an MPEG-TS object and
// calls fn for every access unit (one PES packet) with its raw 33-bit PTS
// and DTS (DTS = PTS when the PES has none) and its NAL units, which alias
// an internal buffer valid until fn returns; access unit delimiters are
// removed. Recoverable problems (lost sync, a PES without PTS, a payload
// that is not Annex-B) go to onErr and the access unit is skipped.
//
// The program (its streams and audio configuration) is found by
// internal/demux, as package source finds it. The PES packets themselves
// are reassembled by internal/mpegts, in reused buffers: MPEG-TS input is
// demuxed twice (indexes, then payloads), and a demuxer that allocates per
// packet (mediacommon's astits reader) made that five times slower than
// ffmpeg.
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
	prog, head, err := demux.FindProgram(br, st.head, tsHeadMax)
	st.head = head[:0]
	if cap(head) > tsHeadKeep {
		defer func() { st.head = nil }()
	}
	if er.err != nil {
		return er.err
	}
	if err != nil {
		return fromDemux(err)
	}
	in := br
	if len(head) > 0 {
		// The program was not in br's buffer: what the search read
		// first, then the rest.
		st.rd.Reset(head)
		defer st.rd.Reset(nil)
		in = st.more
		in.Reset(io.MultiReader(&st.rd, br))
		defer in.Reset(nil)
	}
	var audio *tsAudio
	if a := prog.Audio; a != nil {
		audio = &tsAudio{pid: a.PID, asc: a.ASC, info: a.AAC}
	}
	if onAudio != nil {
		if err := onAudio(audio); err != nil {
			return err
		}
	}
	d, da := &st.d, &st.da
	d.Reset()
	da.Reset()
	d.PID, d.OnErr, d.Video, d.DropAUD, d.MaxSize = prog.Video, onErr, fn, true, maxSampleSize
	da.PID, da.OnErr, da.Audio, da.MaxSize = mpegts.NoPID, onErr, afn, maxSampleSize
	if audio != nil && afn != nil {
		da.PID = audio.pid
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
	// What the program search read (kept when not over tsHeadKeep), a
	// reader of it, and the reader of it and the rest.
	head []byte
	rd   bytes.Reader
	more *bufio.Reader
}

var tsPool = sync.Pool{New: func() any {
	return &tsState{br: bufio.NewReaderSize(nil, 256<<10), more: bufio.NewReaderSize(nil, 64<<10)}
}}

// tsAudio is the AAC stream of an MPEG-TS program.
type tsAudio struct {
	pid  uint16
	asc  []byte // AudioSpecificConfig, from the first ADTS header
	info chunker.AACInfo
}
