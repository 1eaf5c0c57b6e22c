package source

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/chunker"
)

const (
	tsPacketSize = 188
	tsSyncByte   = 0x47
	tsWrap       = int64(1) << 33
)

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
	r       *mpegts.Reader
	log     *slog.Logger
	info    Info
	queue   []Packet // demuxed, in arrival order, not yet returned
	lastDur int64
	eof     bool
	err     error
	decErrs int64
	frame   int64 // AAC frame duration in samples
}

// NewTS reads r up to the program map table and returns a Source over the
// first H.264 track (and the first AAC track). Input without MPEG-TS sync
// bytes is rejected with ErrInvalid; input with neither an H.264 nor an AAC
// track with ErrUnsupported.
func NewTS(r io.Reader, opt Options) (*TS, error) {
	t := &TS{log: opt.logger()}
	if err := t.open(r); err != nil {
		return nil, fmt.Errorf("source: ts: %w", err)
	}
	return t, nil
}

func (t *TS) open(r io.Reader) (err error) {
	defer recoverInvalid(&err, "mpegts")
	br := bufio.NewReaderSize(r, 32<<10)
	head, perr := br.Peek(sniffLen)
	if perr != nil && perr != io.EOF {
		return perr
	}
	switch {
	case len(head) == 0:
		return errorf(ErrTruncated, "empty input")
	case head[0] != tsSyncByte:
		return errorf(ErrInvalid, "no MPEG-TS sync byte")
	case len(head) < tsPacketSize:
		return errorf(ErrTruncated, "%d bytes, less than one packet", len(head))
	}
	for i := tsPacketSize; i < len(head); i += tsPacketSize {
		if head[i] != tsSyncByte {
			return errorf(ErrInvalid, "no MPEG-TS sync byte at offset %d", i)
		}
	}
	t.r = &mpegts.Reader{R: br}
	if err := t.r.Initialize(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errorf(ErrTruncated, "no program map table")
		}
		return errorf(ErrInvalid, "%v", err)
	}
	var track, atrack *mpegts.Track
	other := ""
	for _, tr := range t.r.Tracks() {
		switch c := tr.Codec.(type) {
		case *codecs.H264:
			if track == nil {
				track = tr
			}
		case *codecs.H265:
			other = "HEVC"
		case *codecs.AC3:
			t.info.IgnoredAudio = append(t.info.IgnoredAudio, "AC-3")
		case *codecs.EAC3:
			t.info.IgnoredAudio = append(t.info.IgnoredAudio, "E-AC-3")
		case *codecs.MPEG1Audio:
			t.info.IgnoredAudio = append(t.info.IgnoredAudio, "MPEG-1 audio (MP2/MP3)")
		case *codecs.Opus:
			t.info.IgnoredAudio = append(t.info.IgnoredAudio, "Opus")
		case *codecs.MPEG4AudioLATM:
			t.info.IgnoredAudio = append(t.info.IgnoredAudio, "AAC in LATM")
		case *codecs.MPEG4Audio:
			if atrack != nil {
				continue
			}
			asc, err := c.Config.Marshal()
			if err != nil {
				t.log.Warn("mpegts: ignoring an audio track", "pid", tr.PID, "err", err)
				continue
			}
			ai, err := newAudioInfo(asc, 90000)
			if err != nil {
				t.log.Warn("mpegts: ignoring an audio track", "pid", tr.PID, "err", err)
				continue
			}
			atrack = tr
			t.info.Audio = ai
			t.frame = int64(ai.FrameSamples)
		}
	}
	if track == nil && other != "" {
		return errorf(ErrUnsupported, "video is %s, not H.264", other)
	}
	if track == nil && atrack == nil {
		return errorf(ErrUnsupported, "no H.264 track (nor an AAC one)")
	}
	t.r.OnDecodeError(func(err error) {
		t.decErrs++
		if t.decErrs == 1 {
			t.log.Warn("mpegts: decode error (further ones are logged at debug level)", "err", err)
		} else {
			t.log.Debug("mpegts: decode error", "err", err, "count", t.decErrs)
		}
	})
	if track != nil {
		t.r.OnDataH264(track, func(pts, dts int64, au [][]byte) error {
			t.queue = append(t.queue, Packet{Kind: KindVideo, Video: chunker.Sample{DTS: dts, PTS: pts, NALUs: au}})
			return nil
		})
	}
	if atrack != nil {
		rate := int64(t.info.Audio.SampleRate)
		t.r.OnDataMPEG4Audio(atrack, func(pts int64, aus [][]byte) error {
			for i, au := range aus {
				if len(au) == 0 {
					continue
				}
				p := (pts + (int64(i)*t.frame*90000+rate/2)/rate) & (tsWrap - 1)
				t.queue = append(t.queue, Packet{Kind: KindAudio, Audio: chunker.AudioSample{PTS: p, Data: au}})
			}
			return nil
		})
	}
	t.info.Format, t.info.Timescale, t.info.WrapBits = FormatTS, 90000, 33
	if track == nil {
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
		switch n[0] & 0x1f {
		case naluSPS:
			t.info.SPS = append(t.info.SPS, n)
		case naluPPS:
			t.info.PPS = append(t.info.PPS, n)
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
		err := t.r.Read()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			t.eof = true
			break
		}
		if err != nil {
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
		p := t.queue[0]
		t.queue[0] = Packet{}
		t.queue = t.queue[1:]
		if p.Kind == KindVideo {
			p.Video.Duration = t.lastDur
			if i := t.nextVideo(0); i >= 0 {
				d := (t.queue[i].Video.DTS - p.Video.DTS) & (tsWrap - 1)
				if d > 0 && d < 10*90000 {
					p.Video.Duration = d
					t.lastDur = d
				}
			}
		}
		return p, nil
	}
}
