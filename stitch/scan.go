package stitch

import (
	"bytes"
	"context"
	"io"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/demux"
	"github.com/livechunk/livechunk/internal/mpegts"
)

// Limits that keep hostile input from allocating without bound.
const (
	maxMetaBox    = demux.MaxMetaBox // one moov or moof, read at once
	maxSampleSize = 64 << 20         // one access unit
	firstWindow   = 4 << 10          // first range read of an MP4 object
)

// objReader reads an input object with range reads, keeping the last
// window read so that consecutive small reads (box headers, a moof right
// after a styp) cost one request.
type objReader struct {
	ctx   context.Context
	p     *Part
	size  int64 // -1 until the first read
	win   []byte
	off   int64 // object offset of win[0]
	reads int   // range requests made
}

func newObjReader(ctx context.Context, p *Part) *objReader {
	return &objReader{ctx: ctx, p: p, size: -1}
}

// at returns the n bytes at off, reading at least window bytes when it has
// to read. The slice is valid until the next call.
func (o *objReader) at(off int64, n, window int) ([]byte, error) {
	if o.size >= 0 && off >= o.off && off+int64(n) <= o.off+int64(len(o.win)) {
		return o.win[off-o.off : off-o.off+int64(n)], nil
	}
	if o.size >= 0 && off+int64(n) > o.size {
		return nil, errorf(ErrInvalid, "%d bytes at offset %d: beyond the end of the object (%d bytes)", n, off, o.size)
	}
	want := int64(max(n, window))
	if o.size >= 0 {
		want = min(want, o.size-off)
	}
	r, size, err := o.p.Open(o.ctx, off, want)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	o.reads++
	if o.size < 0 {
		o.size = size
		want = min(want, max(size-off, 0))
	}
	if int64(cap(o.win)) < want {
		o.win = make([]byte, want)
	}
	buf := o.win[:want]
	got, err := io.ReadFull(r, buf)
	o.win, o.off = buf[:got], off
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	if got < n {
		return nil, errorf(ErrInvalid, "%d bytes at offset %d: object ends after %d", n, off, got)
	}
	return o.win[:n], nil
}

// knownSize returns the object size, reading the first window if needed.
func (o *objReader) knownSize() (int64, error) {
	if o.size < 0 {
		if _, err := o.at(0, 0, firstWindow); err != nil {
			return 0, err
		}
	}
	return o.size, nil
}

// ReadAt reads the object's bytes at off through the window: the
// io.ReaderAt over which internal/demux reads box headers.
func (o *objReader) ReadAt(p []byte, off int64) (int, error) {
	size, err := o.knownSize()
	if err != nil {
		return 0, err
	}
	if off < 0 || off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	b, err := o.at(off, n, firstWindow)
	if err != nil {
		return 0, err
	}
	copy(p, b)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// mp4Scan is what the first pass keeps of an MP4 object: its moov box
// (read at once, its sample tables kept in memory for the part's samples)
// and its moof boxes (decoded) and their positions.
type mp4Scan struct {
	size  int64
	movie *demux.Movie
	moov  *mp4.MoovBox // movie.Moov, nil without a moov box
	moofs []moofAt
	reads int
}

type moofAt struct {
	box   *mp4.MoofBox
	start int64
}

// scanMP4 walks the top-level boxes of an MP4 object, reading only box
// headers and the moov and moof boxes, each with one range request at
// most.
func scanMP4(o *objReader) (*mp4Scan, error) {
	size, err := o.knownSize()
	if err != nil {
		return nil, err
	}
	s := &mp4Scan{size: size}
	for off := int64(0); off < size; {
		b, err := demux.ReadBox(o, off, size, true)
		if err != nil {
			return nil, fromDemux(err)
		}
		if b.Type == "moov" || b.Type == "moof" {
			if b.Size > maxMetaBox {
				return nil, errorf(ErrUnsupported, "%s box of %d bytes", b.Type, b.Size)
			}
			data, err := o.at(off, int(b.Size), firstWindow)
			if err != nil {
				return nil, err
			}
			if err := s.add(b, data); err != nil {
				return nil, err
			}
		}
		off = b.End()
	}
	s.reads = o.reads
	return s, nil
}

// add decodes a moov or moof box b whose bytes are data.
func (s *mp4Scan) add(b demux.Box, data []byte) error {
	if b.Type == "moof" {
		moof, err := demux.DecodeMoof(b, data[b.Hdr:])
		if err != nil {
			return fromDemux(err)
		}
		s.moofs = append(s.moofs, moofAt{box: moof, start: b.Off})
		return nil
	}
	if s.movie != nil {
		return errorf(ErrInvalid, "two moov boxes")
	}
	// A copy: the read window is reused, and the sample tables are read
	// from it when the part is merged.
	mv, err := demux.ReadMovie(demux.BytesAt{B: bytes.Clone(data), Off: b.Off}, b)
	if err != nil {
		return fromDemux(err)
	}
	s.movie, s.moov = mv, mv.Moov
	return nil
}

// tsScan is what the first pass keeps of an MPEG-TS object: per access
// unit its raw timestamps, AVCC size and keyframe flag, and the parameter
// sets where they change.
type tsScan struct {
	size    int64
	samples []localSample
	ps      []psAt
	decErrs int
	audio   *tsAudio      // the AAC stream, nil if none
	frames  []localSample // its frames: raw 90 kHz PTS and size
	// frameAt is, for each frame, how many access units came before it
	// in the stream: which of the object's timelines it belongs to when
	// its timestamps jump (see merger.timelines).
	frameAt []int32
}

// adtsFrameTimes calls fn with the raw 33-bit PTS of every frame of an ADTS
// PES packet: the packet's PTS, then one nominal frame duration apart.
func adtsFrameTimes(a *tsAudio, pts int64, frames [][]byte, fn func(k int, pts int64, frame []byte) error) error {
	for k, f := range frames {
		t := pts
		if k > 0 {
			t = mpegts.FrameTime(pts, k, a.info.FrameSamples, a.info.SampleRate)
		}
		if err := fn(k, t, f); err != nil {
			return err
		}
	}
	return nil
}

// psAt records the in-band parameter sets of sample idx (copies).
type psAt struct {
	idx      int
	sps, pps [][]byte
}

// errReader remembers the first error of r other than io.EOF, which the
// demuxer would otherwise report as a decode error.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// avccSize is the size of an access unit in AVCC framing (4-byte lengths).
func avccSize(au [][]byte) int {
	n := 0
	for _, x := range au {
		n += 4 + len(x)
	}
	return n
}

// scanTS demuxes a whole MPEG-TS object, keeping only sample metadata.
func scanTS(ctx context.Context, p *Part) (*tsScan, error) {
	r, size, err := p.Open(ctx, 0, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	s := &tsScan{size: size}
	var lastSPS, lastPPS [][]byte
	err = tsDemux(r, func(error) { s.decErrs++ }, func(pts, dts int64, au [][]byte) error {
		size := avccSize(au)
		if size > maxSampleSize {
			return errorf(ErrUnsupported, "access unit of %d bytes", size)
		}
		var sps, pps [][]byte
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = append(sps, n)
			case h264.NALUTypePPS:
				pps = append(pps, n)
			}
		}
		if (len(sps) > 0 && !accessunit.Equal(sps, lastSPS)) || (len(pps) > 0 && !accessunit.Equal(pps, lastPPS)) {
			if len(sps) > 0 {
				lastSPS = accessunit.Clone(sps)
			}
			if len(pps) > 0 {
				lastPPS = accessunit.Clone(pps)
			}
			s.ps = append(s.ps, psAt{idx: len(s.samples), sps: lastSPS, pps: lastPPS})
		}
		s.samples = append(s.samples, localSample{dts: dts, pts: pts, size: uint32(size), sync: chunker.IsIDR(au), off: -1})
		return nil
	}, func(a *tsAudio) error {
		s.audio = a
		return nil
	}, func(pts int64, frames [][]byte) error {
		return adtsFrameTimes(s.audio, pts, frames, func(_ int, t int64, f []byte) error {
			s.frames = append(s.frames, localSample{dts: t, pts: t, size: uint32(len(f)), sync: true, off: -1})
			s.frameAt = append(s.frameAt, int32(len(s.samples)))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s, ctx.Err()
}

// scanPart reads the index of one part (and of its init section through
// the cache).
func scanPart(ctx context.Context, p *Part, inits *initCache) (res scanResult) {
	if p.Open == nil {
		res.err = errorf(ErrInvalid, "part has no Open function")
		return res
	}
	if p.Init != nil {
		res.init, res.err = inits.get(ctx, p.Init)
		if res.err != nil {
			res.err = partErr(p.Init.Name, res.err)
			return res
		}
	}
	o := newObjReader(ctx, p)
	head, err := o.at(0, 0, firstWindow)
	if err == nil {
		head = o.win
	}
	if err != nil {
		res.err = err
		return res
	}
	switch demux.Sniff(head) {
	case demux.TS:
		if k := demux.TSStart(head); k != 0 {
			res.err = errorf(ErrUnsupported, "MPEG-TS with %d bytes before its first packet", k)
			break
		}
		res.ts, res.err = scanTS(ctx, p)
	case demux.MP4:
		res.mp4, res.err = scanMP4(o)
	default:
		if len(head) == 0 {
			res.err = errorf(ErrInvalid, "empty object")
		} else {
			res.err = errorf(ErrInvalid, "neither MP4 nor MPEG-TS")
		}
	}
	return res
}

// scanResult is the first-pass reading of one part.
type scanResult struct {
	init *mp4Scan // the part's Init section, if any
	mp4  *mp4Scan
	ts   *tsScan
	err  error
}

// initCache reads every init section once.
type initCache struct {
	ch chan struct{} // a 1-slot mutex usable with select
	m  map[*Part]*initEntry
}

type initEntry struct {
	done chan struct{}
	scan *mp4Scan
	err  error
}

func newInitCache() *initCache {
	return &initCache{ch: make(chan struct{}, 1), m: map[*Part]*initEntry{}}
}

func (c *initCache) get(ctx context.Context, p *Part) (*mp4Scan, error) {
	select {
	case c.ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e, ok := c.m[p]
	if !ok {
		e = &initEntry{done: make(chan struct{})}
		c.m[p] = e
	}
	<-c.ch
	if !ok {
		func() {
			defer close(e.done)
			if p.Open == nil {
				e.err = errorf(ErrInvalid, "init part has no Open function")
				return
			}
			o := newObjReader(ctx, p)
			e.scan, e.err = scanMP4(o)
			if e.err == nil && e.scan.moov == nil {
				e.err = errorf(ErrInvalid, "init section without a moov box")
			}
		}()
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.scan, e.err
}
