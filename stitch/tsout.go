package stitch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsStart is the DTS of the first picture of remuxed MPEG-TS output, in
// 90 kHz ticks (1.4 s, as ffmpeg starts), leaving room for the PCR ahead of
// it.
const tsStart = 126000

// WriteTS joins the input into one MPEG-TS stream written to w.
//
// When every part is MPEG-TS and no range is selected, the parts' packets
// are concatenated unchanged except for their continuity counters, which
// are rewritten to run on across part boundaries (so a demuxer sees no
// packet loss). Timestamps are not touched: a jump at a discontinuity
// stays a jump.
//
// That way every elementary stream of the parts is kept, AAC audio
// included (ADTS on its own PID, as the chunker writes it).
//
// Otherwise (fMP4 or MP4 input, or Options.From/To set) the access units
// are remuxed (with mediacommon's muxer) into a new transport stream: one
// program with one H.264 elementary stream, PAT and PMT and in-band SPS
// and PPS before every keyframe, timestamps continuous from 1.4 s. MPEG-TS has no edit lists, so a clip starts at
// the keyframe at or before From (not exactly at From) and ends with the
// last picture presented before To (pictures decoded before it that are
// presented later are kept). The remuxed stream carries no audio (not
// implemented yet: Result.AudioFrames is 0; use MP4 output to keep the
// audio), and audio-only input that would need remuxing is rejected with
// ErrUnsupported.
//
// Both ways, the first pass reads the indexes as for [WriteMP4], so input
// errors are reported before anything is written.
func WriteTS(ctx context.Context, w io.Writer, in *Input, opt Options) (Result, error) {
	ix, err := buildIndex(ctx, in, opt)
	if err != nil {
		return Result{}, err
	}
	sel, err := ix.selectAll(opt.From, opt.To)
	if err != nil {
		return Result{}, err
	}
	concat := !ix.hasMP4 && opt.From == 0 && opt.To == 0
	if !concat && len(ix.samples) == 0 {
		return Result{}, errorf(ErrUnsupported, "audio only input remuxed to MPEG-TS (only MPEG-TS parts, unclipped, are joined)")
	}
	res := ix.result(sel)
	res.Timescale = 90000
	res.SampleDescriptions = 0
	res.Duration = ticksToDuration(sel.editDur, ix.timescale)
	if !concat {
		res.AudioFrames = 0 // the remuxed stream has no audio
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if concat {
		err = ix.concatTS(ctx, bw, opt.concurrency(), opt.logger())
	} else {
		err = ix.remuxTS(ctx, bw, sel, opt.concurrency())
	}
	if err == nil {
		err = bw.Flush()
	}
	res.Bytes = cw.n
	return res, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ccFixer rewrites MPEG-TS continuity counters so that every PID's run on
// across concatenated streams.
type ccFixer struct {
	last [8192]int8 // last counter written per PID, -1 none yet
}

func newCCFixer() *ccFixer {
	f := &ccFixer{}
	for i := range f.last {
		f.last[i] = -1
	}
	return f
}

// fix rewrites the continuity counter of one 188-byte packet.
func (f *ccFixer) fix(p []byte) {
	pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
	if pid == 0x1fff { // null packets carry no meaningful counter
		return
	}
	hasPayload := p[3]&0x10 != 0
	cc := p[3] & 0x0f
	if last := f.last[pid]; last >= 0 {
		if hasPayload {
			cc = (byte(last) + 1) & 0x0f
		} else {
			cc = byte(last) // packets without payload do not advance it
		}
	}
	p[3] = p[3]&0xf0 | cc
	f.last[pid] = int8(cc)
}

// concatTS copies the packets of every part, fixing continuity counters.
func (ix *index) concatTS(ctx context.Context, w io.Writer, depth int, log *slog.Logger) error {
	f := newCCFixer()
	pkt := make([]byte, tsPacket)
	var br *bufio.Reader
	jobs := make([]job, len(ix.parts))
	for i := range ix.parts {
		jobs[i] = job{p: &ix.parts[i], n: -1}
	}
	return eachJob(ctx, jobs, depth, func(j *job, r io.Reader) error {
		if br == nil {
			br = bufio.NewReaderSize(r, 256<<10)
		} else {
			br.Reset(r)
		}
		for off := int64(0); ; off += tsPacket {
			n, err := io.ReadFull(br, pkt)
			if err == io.EOF {
				return nil
			}
			if err == io.ErrUnexpectedEOF {
				// A truncated last packet: dropped, as the demuxer of the
				// first pass dropped it.
				log.Warn("stitch: partial MPEG-TS packet at the end dropped", "part", j.p.part.Name, "bytes", n)
				return nil
			}
			if err != nil {
				return err
			}
			if pkt[0] != 0x47 {
				return errorf(ErrInvalid, "no sync byte at offset %d", off)
			}
			f.fix(pkt)
			if _, err := w.Write(pkt); err != nil {
				return err
			}
		}
	})
}

// remuxTS writes samples of the selection into a new transport stream.
func (ix *index) remuxTS(ctx context.Context, w io.Writer, sel selection, depth int) (err error) {
	defer guard(&err, "mpegts writer")
	track := &mpegts.Track{Codec: &tscodecs.H264{}}
	tw := &mpegts.Writer{W: w, Tracks: []*mpegts.Track{track}}
	if err := tw.Initialize(); err != nil {
		return fmt.Errorf("stitch: mpegts writer: %w", err)
	}
	const mask = 1<<33 - 1
	dts := int64(0) // ticks after sample a
	var withPS [][]byte
	return ix.eachSample(ctx, sel.a, sel.b, depth, func(i int, au [][]byte) error {
		s := &ix.samples[i]
		d := tsStart + rescale(dts, ix.timescale, 90000)
		p := tsStart + rescale(dts+int64(s.cto)+sel.ctoShift, ix.timescale, 90000)
		dts += int64(s.dur)
		nalus := au
		if s.sync && !hasParamSets(au) {
			ds := ix.descs[s.desc]
			withPS = append(append(append(withPS[:0], ds.sps...), ds.pps...), au...)
			nalus = withPS
		}
		if err := tw.WriteH264(track, p&mask, d&mask, nalus); err != nil {
			return fmt.Errorf("stitch: mpegts writer: %w", err)
		}
		return nil
	})
}

// hasParamSets reports whether the access unit carries an SPS and a PPS.
func hasParamSets(au [][]byte) bool {
	sps, pps := false, false
	for _, n := range au {
		switch n[0] & 0x1f {
		case naluSPS:
			sps = true
		case naluPPS:
			pps = true
		}
	}
	return sps && pps
}
