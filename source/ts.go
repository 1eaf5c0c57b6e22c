package source

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/timeline"
)

// maxDurationHint bounds the step to the next access unit's DTS that is
// given as a sample's Duration: a longer one is a jump, not a duration.
const maxDurationHint = 10 * timeline.MPEGClock

// TS is a Source over an MPEG-2 transport stream. It reads the first H.264
// elementary stream and the first AAC (ADTS) one of the first program,
// streaming: it never seeks.
//
// Timestamps are the raw 33-bit PES values, in 90 kHz ticks; they wrap
// around, which Info reports with WrapBits = 33 (the chunker unwraps them).
// The frames of a PES holding several ADTS frames are timed from its PTS
// at the nominal frame duration. A resolution or codec-parameter change
// travels in-band as new SPS and PPS NAL units. Recoverable decode errors
// of the demuxer (lost packets, garbage between packets, PES without PTS)
// are counted and logged, not returned.
type TS struct {
	pr      *mpegts.Reader
	dv, da  mpegts.Depacketizer // video, audio
	log     *slog.Logger
	info    Info
	queue   []queued // demuxed, in arrival order, not yet returned
	qbase   []queued // the array queue is in, from its start
	lent    *pesBuf  // the buffer of the packet returned last, reused at the next call
	spare   []*pesBuf
	lastDur int64
	eof     bool
	err     error
	decErrs int64
	frame   int64 // AAC frame duration in samples
	rate    int64 // AAC sample rate
}

// queued is a demuxed packet and, when it is the last packet whose data is
// in a PES buffer, that buffer.
type queued struct {
	Packet
	owner *pesBuf
}

// pesBuf is a PES packet's buffer that queued packets alias (see
// mpegts.Depacketizer.Detach).
type pesBuf struct {
	d     *mpegts.Depacketizer
	buf   []byte
	nalus [][]byte
}

// maxTSHead bounds how much of the input is read (and kept) to find the
// streams and their configurations.
const maxTSHead = 32 << 20

// NewTS reads r up to the program map table and returns a Source over the
// first H.264 track (and the first AAC track). Input without MPEG-TS sync
// bytes is rejected with ErrInvalid; input with neither an H.264 nor an AAC
// track with ErrUnsupported.
func NewTS(r io.Reader, opt Options) (*TS, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil reader", ErrInvalid)
	}
	t := &TS{log: opt.logger()}
	if err := t.open(r); err != nil {
		return nil, fmt.Errorf("source: ts: %w", fromDemux(err))
	}
	return t, nil
}

func (t *TS) open(r io.Reader) (err error) {
	defer recoverInvalid(&err, "mpegts")
	br := bufio.NewReaderSize(r, 64<<10)
	head, perr := br.Peek(sniffLen)
	if perr != nil && perr != io.EOF {
		return perr
	}
	switch {
	case len(head) == 0:
		return errorf(ErrTruncated, "empty input")
	case len(head) < mpegts.PacketSize:
		return errorf(ErrTruncated, "%d bytes, less than one packet", len(head))
	}
	k := demux.TSStart(head)
	switch {
	case k < 0 && demux.IsM2TS(head):
		return errorf(ErrUnsupported, "M2TS (192-byte packets) is not read; remux it with ffmpeg -c copy -f mpegts")
	case k < 0:
		return errorf(ErrInvalid, "no MPEG-TS packets (sync bytes 188 bytes apart) in the first %d bytes", len(head))
	case k > 0:
		// Bytes before the first packet (a capture that started inside
		// one): the stream discovery and the packet path start at the
		// first packet.
		t.log.Warn("mpegts: skipping bytes before the first packet", "bytes", k)
		if _, err := br.Discard(k); err != nil {
			return err
		}
	}
	// The discovery reads as far as it needs (which keeps a live push's
	// start prompt); what it read is demultiplexed first.
	prog, head, err := demux.FindProgram(br, nil, maxTSHead)
	if err != nil {
		return err
	}
	t.info.IgnoredAudio = prog.IgnoredAudio
	for _, u := range prog.Unreadable {
		t.log.Warn("mpegts: ignoring an audio track", "pid", u.ID, "err", u.Err)
	}
	if a := prog.Audio; a != nil {
		t.info.Audio = &AudioInfo{ASC: bytes.Clone(a.ASC), Timescale: timeline.MPEGClock, AACInfo: a.AAC}
		t.frame = int64(a.AAC.FrameSamples)
		t.rate = int64(a.AAC.SampleRate)
	}
	onErr := func(err error) {
		t.decErrs++
		if t.decErrs == 1 {
			t.log.Warn("mpegts: decode error (further ones are logged at debug level)", "err", err)
		} else {
			t.log.Debug("mpegts: decode error", "err", err, "count", t.decErrs)
		}
	}
	// The packet path reads what the discovery consumed, then the rest.
	in := br
	if len(head) > 0 {
		in = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(head), br), 64<<10)
	}
	t.pr = mpegts.NewReader(in, onErr, nil)
	t.dv = mpegts.Depacketizer{PID: mpegts.NoPID, OnErr: onErr, MaxSize: maxSampleSize, Video: t.onVideo, DropAUD: true}
	t.da = mpegts.Depacketizer{PID: mpegts.NoPID, OnErr: onErr, MaxSize: maxSampleSize, Audio: t.onAudio}
	t.dv.PID = prog.Video
	if prog.Audio != nil {
		t.da.PID = prog.Audio.PID
	}
	t.info.Format, t.info.Timescale, t.info.WrapBits = FormatTS, timeline.MPEGClock, timeline.WrapBitsTS
	if prog.Video == mpegts.NoPID {
		t.info.NoVideo = true
		return nil
	}
	// Read up to the first access unit to fill in the parameter sets.
	for t.nextVideo(0) < 0 && !t.eof {
		if err := t.more(); err != nil {
			return err
		}
	}
	if i := t.nextVideo(0); i >= 0 {
		t.describe(t.queue[i].Video.NALUs)
	}
	return nil
}

// onVideo queues an access unit; its NAL units stay in their PES buffer
// until the packet has been returned and the next call comes.
func (t *TS) onVideo(pts, dts int64, au [][]byte) error {
	t.push(queued{Packet{Kind: KindVideo, Video: chunker.Sample{DTS: dts, PTS: pts, NALUs: au}}, t.detach(&t.dv)})
	return nil
}

// detach takes the buffers of the PES packet just delivered by d.
func (t *TS) detach(d *mpegts.Depacketizer) *pesBuf {
	var b *pesBuf
	if n := len(t.spare); n > 0 {
		b, t.spare = t.spare[n-1], t.spare[:n-1]
	} else {
		b = &pesBuf{}
	}
	b.d = d
	b.buf, b.nalus = d.Detach()
	return b
}

// push queues a packet. The queue is moved back to the front of its array
// when it reaches the end, so that it does not grow: it is never empty for
// long (a video packet waits for the next one's DTS).
func (t *TS) push(q queued) {
	if len(t.queue) == cap(t.queue) && cap(t.qbase)-cap(t.queue) >= len(t.queue) {
		n := copy(t.qbase[:len(t.queue)], t.queue)
		clear(t.qbase[n:cap(t.qbase)])
		t.queue = t.qbase[:n]
	}
	c := cap(t.queue)
	t.queue = append(t.queue, q)
	if cap(t.queue) != c { // moved: the new array starts at queue[0]
		t.qbase = t.queue[:0]
	}
}

// onAudio queues the AAC frames of a PES packet, timed from its PTS at the
// nominal frame duration; the last of them owns the PES buffer.
func (t *TS) onAudio(pts int64, frames [][]byte) error {
	b := t.detach(&t.da)
	for i, f := range frames {
		p := mpegts.FrameTime(pts, i, int(t.frame), int(t.rate))
		var o *pesBuf
		if i == len(frames)-1 {
			o = b
		}
		t.push(queued{Packet{Kind: KindAudio, Audio: chunker.AudioSample{PTS: p, Data: f}}, o})
	}
	return nil
}

// nextVideo returns the index of the first video packet in the queue at or
// after from, or -1.
func (t *TS) nextVideo(from int) int {
	for i := from; i < len(t.queue); i++ {
		if t.queue[i].Kind == KindVideo {
			return i
		}
	}
	return -1
}

func (t *TS) describe(au [][]byte) {
	for _, n := range au {
		switch mch264.NALUType(n[0] & 0x1f) {
		case mch264.NALUTypeSPS: // cloned: the packet's buffer is reused
			t.info.SPS = append(t.info.SPS, bytes.Clone(n))
		case mch264.NALUTypePPS:
			t.info.PPS = append(t.info.PPS, bytes.Clone(n))
		}
	}
	if len(t.info.SPS) > 0 {
		var sps mch264.SPS
		if sps.Unmarshal(t.info.SPS[0]) == nil {
			t.info.Width, t.info.Height = sps.Width(), sps.Height()
		}
	}
}

// more reads until the queue grows or the input ends.
func (t *TS) more() (err error) {
	defer recoverInvalid(&err, "mpegts")
	n := len(t.queue)
	for len(t.queue) == n && !t.eof {
		if err := t.pr.Step(&t.dv, &t.da); err == io.EOF {
			t.eof = true
		} else if mpegts.Unsupported(err) {
			return errorf(ErrUnsupported, "%v", err)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Info describes the stream: 90 kHz, WrapBits 33.
func (t *TS) Info() Info { return t.info }

// DecodeErrors returns the number of recoverable demuxing errors so far.
func (t *TS) DecodeErrors() int64 { return t.decErrs }

// Next returns the next access unit in decode order, or io.EOF. Its
// Duration is the distance to the next access unit's DTS (for the last
// one, the previous duration).
func (t *TS) Next() (chunker.Sample, error) { return nextVideo(t.NextPacket) }

// NextPacket returns the next access unit or audio frame in the order the
// stream carries them, or io.EOF. A video sample is returned once the next
// one's DTS is known (for its Duration).
func (t *TS) NextPacket() (Packet, error) {
	if t.err != nil {
		return Packet{}, t.err
	}
	if b := t.lent; b != nil {
		// The packet returned last is done with: its buffer is free.
		t.lent = nil
		b.d.Reuse(b.buf, b.nalus)
		*b = pesBuf{}
		t.spare = append(t.spare, b)
	}
	for {
		if len(t.queue) == 0 || t.queue[0].Kind == KindVideo && t.nextVideo(1) < 0 && !t.eof {
			if t.eof {
				t.err = io.EOF
				return Packet{}, io.EOF
			}
			if err := t.more(); err != nil {
				t.err = fmt.Errorf("source: ts: %w", err)
				return Packet{}, t.err
			}
			continue
		}
		p, owner := t.queue[0].Packet, t.queue[0].owner
		t.queue[0] = queued{}
		t.queue = t.queue[1:]
		t.lent = owner
		if p.Kind == KindVideo {
			p.Video.Duration = t.lastDur
			if i := t.nextVideo(0); i >= 0 {
				d := timeline.WrapDiff(t.queue[i].Video.DTS-p.Video.DTS, timeline.WrapBitsTS)
				if d > 0 && d < maxDurationHint {
					p.Video.Duration = d
					t.lastDur = d
				}
			}
		}
		return p, nil
	}
}
