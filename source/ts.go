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
// elementary stream of the first program, streaming: it never seeks.
//
// Timestamps are the raw 33-bit PES values, in 90 kHz ticks; they wrap
// around, which Info reports with WrapBits = 33 (the chunker unwraps them).
// A resolution or codec-parameter change travels in-band as new SPS and PPS
// NAL units. Recoverable decode errors of the demuxer (lost packets,
// garbage between packets, PES without PTS) are counted and logged, not
// returned.
type TS struct {
	r       *mpegts.Reader
	log     *slog.Logger
	info    Info
	queue   []chunker.Sample // demuxed, not yet returned
	held    *chunker.Sample  // returned once its successor's DTS is known
	heldBuf chunker.Sample
	lastDur int64
	eof     bool
	err     error
	decErrs int64
}

// NewTS reads r up to the program map table and returns a Source over the
// first H.264 track. Input without MPEG-TS sync bytes is rejected with
// ErrInvalid; input without an H.264 track with ErrUnsupported.
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
	var track *mpegts.Track
	other := ""
	for _, tr := range t.r.Tracks() {
		switch tr.Codec.(type) {
		case *codecs.H264:
			if track == nil {
				track = tr
			}
		case *codecs.H265:
			other = "HEVC"
		}
	}
	if track == nil {
		if other != "" {
			return errorf(ErrUnsupported, "video is %s, not H.264", other)
		}
		return errorf(ErrUnsupported, "no H.264 track")
	}
	t.r.OnDecodeError(func(err error) {
		t.decErrs++
		if t.decErrs == 1 {
			t.log.Warn("mpegts: decode error (further ones are logged at debug level)", "err", err)
		} else {
			t.log.Debug("mpegts: decode error", "err", err, "count", t.decErrs)
		}
	})
	t.r.OnDataH264(track, func(pts, dts int64, au [][]byte) error {
		t.queue = append(t.queue, chunker.Sample{DTS: dts, PTS: pts, NALUs: au})
		return nil
	})
	t.info = Info{Format: FormatTS, Timescale: 90000, WrapBits: 33}
	// Read the first access unit to fill in the parameter sets.
	if err := t.fill(); err != nil {
		return err
	}
	if len(t.queue) > 0 {
		t.describe(t.queue[0].NALUs)
	}
	return nil
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

// fill reads until at least one access unit is queued or the input ends.
func (t *TS) fill() (err error) {
	defer recoverInvalid(&err, "mpegts")
	for len(t.queue) == 0 && !t.eof {
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
func (t *TS) Next() (chunker.Sample, error) {
	if t.err != nil {
		return chunker.Sample{}, t.err
	}
	for {
		if len(t.queue) == 0 {
			if err := t.fill(); err != nil {
				t.err = fmt.Errorf("source: ts: %w", err)
				return chunker.Sample{}, t.err
			}
		}
		if len(t.queue) == 0 { // end of input
			if t.held != nil {
				s := *t.held
				t.held = nil
				s.Duration = t.lastDur
				return s, nil
			}
			t.err = io.EOF
			return chunker.Sample{}, io.EOF
		}
		next := t.queue[0]
		t.queue[0] = chunker.Sample{}
		t.queue = t.queue[1:]
		if t.held == nil {
			t.heldBuf = next
			t.held = &t.heldBuf
			continue
		}
		s := *t.held
		d := (next.DTS - s.DTS) & (tsWrap - 1)
		if d > 0 && d < 10*90000 {
			s.Duration = d
			t.lastDur = d
		} else {
			s.Duration = t.lastDur
		}
		t.heldBuf = next
		return s, nil
	}
}
