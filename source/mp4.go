package source

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
)

// Limits that keep hostile input from allocating without bound.
const (
	maxMetaBox    = 256 << 20 // moov or moof
	maxSampleSize = 64 << 20  // one access unit
	maxMdatRead   = 1 << 30   // one fragment's mdat, read into memory
	maxEmptyRun   = 1 << 16   // consecutive empty samples skipped
)

// MP4 is a Source over an MP4 or QuickTime MOV file. It reads the first
// H.264 (avc1 or avc3) video track and ignores the others.
//
// Progressive files are read through their sample tables: DTS from stts,
// PTS from ctts (signed offsets too), sizes and positions from stsz, stsc
// and stco/co64; sample data is read on demand with ReadAt or Seek.
// Fragmented files are read moof by moof (trex and tfhd defaults, trun,
// tfdt), sequentially, so they can also come from a pipe.
//
// The first edit of the track's edit list is applied: output time = media
// time − media_time of the first non-empty edit + the duration of leading
// empty edits. So presentation starts where the file says, and DTS may be
// negative (with B-frames it usually is). Later edits are ignored.
//
// The SPS and PPS of the sample entry (avcC) are inserted in-band before
// the first sample, and again at the next IDR picture when the sample
// entry changes, unless the sample carries its own.
type MP4 struct {
	opt  Options
	log  *slog.Logger
	cr   *countReader  // sequential reading (box scan, fragments)
	rs   io.ReadSeeker // nil when the input cannot seek
	ra   io.ReaderAt   // nil when not available
	size int64         // input size, -1 when unknown

	info      Info
	trackID   uint32
	timescale uint32
	shift     int64 // added to media times (edit list)
	dtsShift  int64 // subtracted from DTS so that negative composition offsets keep PTS >= DTS
	haveShift bool
	entries   []avcEntry
	trex      *mp4.TrexBox

	prog *progIter
	frag *fragState

	started bool
	sentSPS [][]byte // parameter sets last put in-band
	sentPPS [][]byte

	buf    []byte
	nalus  [][]byte
	withPS [][]byte
	err    error
}

type avcEntry struct {
	avc        bool
	sps, pps   [][]byte
	lengthSize int
}

// countReader counts bytes read, to know absolute positions.
type countReader struct {
	r   io.Reader
	pos int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pos += int64(n)
	return n, err
}

// NewMP4 reads the moov box of r and returns a Source over its first H.264
// video track. Progressive files need r to be an io.ReadSeeker positioned
// at the start of the file (an io.ReaderAt as well, such as *os.File, is
// used for sample data when available); fragmented files are read
// sequentially and may come from any io.Reader.
func NewMP4(r io.Reader, opt Options) (*MP4, error) {
	m := &MP4{opt: opt, log: opt.logger(), size: -1}
	if rs, ok := r.(io.ReadSeeker); ok {
		if end, err := rs.Seek(0, io.SeekEnd); err == nil {
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("source: mp4: %w", err)
			}
			m.rs, m.size = rs, end
			if ra, ok := r.(io.ReaderAt); ok {
				m.ra = ra
			}
			m.cr = &countReader{r: rs}
		}
	}
	if m.cr == nil {
		m.cr = &countReader{r: bufio.NewReaderSize(r, 64<<10)}
	}
	if err := m.open(); err != nil {
		return nil, fmt.Errorf("source: mp4: %w", err)
	}
	return m, nil
}

// Info describes the selected track.
func (m *MP4) Info() Info { return m.info }

// TrackID returns the ID of the track that is read.
func (m *MP4) TrackID() uint32 { return m.trackID }

// Next returns the next sample in decode order, or io.EOF.
func (m *MP4) Next() (chunker.Sample, error) {
	if m.err != nil {
		return chunker.Sample{}, m.err
	}
	s, err := m.next()
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("source: mp4: %w", err)
		}
		m.err = err
		return chunker.Sample{}, err
	}
	return s, nil
}

// header reads the next top-level box header. It returns io.EOF at a clean
// end of input.
func (m *MP4) header() (h mp4.BoxHeader, start int64, err error) {
	defer recoverInvalid(&err, "box header")
	start = m.cr.pos
	h, err = mp4.DecodeHeader(m.cr)
	switch {
	case err == io.EOF && m.cr.pos == start:
		return h, start, io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return h, start, errorf(ErrTruncated, "box header at %d", start)
	case err != nil:
		return h, start, errorf(ErrInvalid, "box header at %d: %v", start, err)
	}
	if m.size >= 0 && start+int64(h.Size) > m.size {
		return h, start, errorf(ErrTruncated, "%s box at %d: %d bytes, file has %d", h.Name, start, h.Size, m.size)
	}
	return h, start, nil
}

// skip skips the body of a box whose header was read.
func (m *MP4) skip(h mp4.BoxHeader) error {
	n := int64(h.Size) - int64(h.Hdrlen)
	if m.rs != nil {
		if _, err := m.rs.Seek(n, io.SeekCurrent); err != nil {
			return err
		}
		m.cr.pos += n
		return nil
	}
	k, err := io.CopyN(io.Discard, m.cr, n)
	if err == io.EOF || k < n {
		return errorf(ErrTruncated, "%s box", h.Name)
	}
	return err
}

// decodeBody decodes the body of a meta box (moov, moof) with mp4ff.
func (m *MP4) decodeBody(h mp4.BoxHeader, start int64) (box mp4.Box, err error) {
	defer recoverInvalid(&err, h.Name)
	if h.Size > maxMetaBox {
		return nil, errorf(ErrUnsupported, "%s box of %d bytes", h.Name, h.Size)
	}
	box, err = mp4.DecodeBoxBody(uint64(start), h, m.cr)
	if err != nil {
		if errors.Is(err, avc.ErrLengthSize) || errors.Is(err, avc.ErrCannotParseAVCExtension) {
			return nil, errorf(ErrUnsupported, "%s: %v", h.Name, err)
		}
		return nil, errorf(ErrInvalid, "%v", err)
	}
	return box, nil
}

func (m *MP4) open() error {
	var moov *mp4.MoovBox
	for moov == nil {
		h, start, err := m.header()
		if err == io.EOF {
			return errorf(ErrTruncated, "no moov box before the end of the input")
		}
		if err != nil {
			return err
		}
		switch h.Name {
		case "moov":
			b, err := m.decodeBody(h, start)
			if err != nil {
				return err
			}
			mv, ok := b.(*mp4.MoovBox)
			if !ok {
				return errorf(ErrInvalid, "moov box")
			}
			moov = mv
		case "moof":
			return errorf(ErrInvalid, "moof before moov")
		default:
			if err := m.skip(h); err != nil {
				return err
			}
		}
	}
	if err := m.selectTrack(moov); err != nil {
		return err
	}
	if moov.Mvex != nil {
		trex, ok := moov.Mvex.GetTrex(m.trackID)
		if !ok {
			trex = nil
		}
		m.trex = trex
		m.frag = &fragState{}
		return nil
	}
	if m.rs == nil {
		return errorf(ErrUnsupported, "progressive MP4 needs a seekable input")
	}
	return nil
}

func (m *MP4) selectTrack(moov *mp4.MoovBox) (err error) {
	defer recoverInvalid(&err, "moov")
	var trak *mp4.TrakBox
	var other string
	for _, t := range moov.Traks {
		if t.Tkhd == nil || t.Mdia == nil || t.Mdia.Mdhd == nil || t.Mdia.Minf == nil ||
			t.Mdia.Minf.Stbl == nil || t.Mdia.Minf.Stbl.Stsd == nil {
			continue
		}
		stsd := t.Mdia.Minf.Stbl.Stsd
		if len(stsd.Children) == 0 {
			continue
		}
		switch typ := stsd.Children[0].Type(); typ {
		case "avc1", "avc3":
			trak = t
		case "hvc1", "hev1", "encv", "avc2", "avc4", "dvav", "dva1", "dvh1", "dvhe", "av01", "vp09":
			if other == "" {
				other = typ
			}
		}
		if trak != nil {
			break
		}
	}
	if trak == nil {
		if other != "" {
			return errorf(ErrUnsupported, "video track is %s, not H.264", other)
		}
		return errorf(ErrUnsupported, "no H.264 video track")
	}
	m.trackID = trak.Tkhd.TrackID
	m.timescale = trak.Mdia.Mdhd.Timescale
	if m.timescale == 0 {
		return errorf(ErrInvalid, "track %d: timescale 0", m.trackID)
	}
	stbl := trak.Mdia.Minf.Stbl
	for _, c := range stbl.Stsd.Children {
		var e avcEntry
		if vse, ok := c.(*mp4.VisualSampleEntryBox); ok && (c.Type() == "avc1" || c.Type() == "avc3") && vse.AvcC != nil {
			e = avcEntry{
				avc:        true,
				sps:        nonEmpty(vse.AvcC.SPSnalus),
				pps:        nonEmpty(vse.AvcC.PPSnalus),
				lengthSize: 4,
			}
			if len(m.entries) == 0 {
				m.info.Width, m.info.Height = int(vse.Width), int(vse.Height)
			}
		}
		m.entries = append(m.entries, e)
	}
	if !m.entries[0].avc {
		return errorf(ErrInvalid, "track %d: avc1 sample entry without avcC", m.trackID)
	}
	m.info.Format = FormatMP4
	m.info.Timescale = m.timescale
	m.info.SPS, m.info.PPS = m.entries[0].sps, m.entries[0].pps
	if len(m.info.SPS) > 0 {
		var sps mch264.SPS
		if sps.Unmarshal(m.info.SPS[0]) == nil {
			m.info.Width, m.info.Height = sps.Width(), sps.Height()
		}
	}

	// Edit list: leading empty edits delay the track, the first non-empty
	// edit's media_time is where presentation starts.
	if trak.Edts != nil && len(trak.Edts.Elst) > 0 && moov.Mvhd != nil && moov.Mvhd.Timescale > 0 {
		var delay uint64
		mediaTime := int64(0)
		for _, e := range trak.Edts.Elst[0].Entries {
			if e.MediaTime == -1 {
				delay += e.SegmentDuration
				continue
			}
			mediaTime = e.MediaTime
			break
		}
		if delay > 1<<40 || mediaTime < -(1<<50) || mediaTime > 1<<50 {
			return errorf(ErrInvalid, "track %d: edit list out of range", m.trackID)
		}
		m.shift = rescale(int64(delay), moov.Mvhd.Timescale, m.timescale) - mediaTime
	}

	if c := stbl.Ctts; c != nil {
		for _, o := range c.SampleOffset {
			m.dtsShift = max(m.dtsShift, -int64(o))
		}
		m.haveShift = true
	}
	if moov.Mvex == nil {
		m.haveShift = true
		p, err := newProgIter(stbl)
		if err != nil {
			return err
		}
		m.prog = p
	}
	return nil
}

func (m *MP4) next() (chunker.Sample, error) {
	for range maxEmptyRun {
		var (
			s     chunker.Sample
			entry int
			data  []byte
			err   error
		)
		if m.prog != nil {
			s, entry, data, err = m.nextProg()
		} else {
			s, entry, data, err = m.nextFrag()
		}
		if err != nil {
			return s, err
		}
		if len(data) == 0 {
			continue // an empty sample carries no picture
		}
		if entry < 0 || entry >= len(m.entries) || !m.entries[entry].avc {
			return s, errorf(ErrUnsupported, "sample description %d is not H.264", entry+1)
		}
		e := &m.entries[entry]
		m.nalus, err = chunker.SplitAVCC(m.nalus[:0], data, e.lengthSize)
		if err != nil {
			return s, errorf(ErrInvalid, "sample at dts %d: %v", s.DTS, err)
		}
		if len(m.nalus) == 0 {
			continue
		}
		s.NALUs = m.nalus
		if !equalNALUs(m.sentSPS, e.sps) || !equalNALUs(m.sentPPS, e.pps) {
			switch {
			case hasParamSets(m.nalus):
				m.sentSPS, m.sentPPS = e.sps, e.pps
			case !m.started || chunker.IsIDR(m.nalus):
				if len(e.sps) > 0 && len(e.pps) > 0 {
					m.withPS = prependParamSets(m.withPS, m.nalus, e.sps, e.pps)
					s.NALUs = m.withPS
				}
				m.sentSPS, m.sentPPS = e.sps, e.pps
			}
		}
		m.started = true
		return s, nil
	}
	return chunker.Sample{}, errorf(ErrInvalid, "more than %d empty samples in a row", maxEmptyRun)
}

func nonEmpty(nalus [][]byte) [][]byte {
	var out [][]byte
	for _, n := range nalus {
		if len(n) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// read reads size bytes at offset off into m.buf.
func (m *MP4) read(off uint64, size uint32) ([]byte, error) {
	if size > maxSampleSize {
		return nil, errorf(ErrUnsupported, "sample of %d bytes", size)
	}
	if m.size >= 0 && (off > uint64(m.size) || uint64(size) > uint64(m.size)-off) {
		return nil, errorf(ErrTruncated, "sample at %d+%d beyond end of file (%d bytes)", off, size, m.size)
	}
	if cap(m.buf) < int(size) {
		m.buf = make([]byte, size)
	}
	b := m.buf[:size]
	var err error
	if m.ra != nil {
		var n int
		n, err = m.ra.ReadAt(b, int64(off))
		if n == len(b) {
			err = nil // ReadAt may report io.EOF with all bytes read
		}
	} else {
		if _, err = m.rs.Seek(int64(off), io.SeekStart); err == nil {
			_, err = io.ReadFull(m.rs, b)
		}
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, errorf(ErrTruncated, "sample at %d+%d", off, size)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// progIter walks the sample tables of a progressive track, one sample at a
// time, in O(1) per sample.
type progIter struct {
	stbl *mp4.StblBox
	n    uint32 // number of samples
	i    uint32 // samples delivered

	sttsIdx  int
	sttsLeft uint32
	dts      int64

	cttsIdx int

	offsets   []uint64
	stscIdx   int
	chunk     uint32 // current chunk, 1-based; 0 before the first
	chunkLeft uint32
	off       uint64
	desc      uint32 // sample description index of the current chunk, 1-based
}

func newProgIter(stbl *mp4.StblBox) (*progIter, error) {
	p := &progIter{stbl: stbl}
	if stbl.Stsz == nil {
		return nil, errorf(ErrUnsupported, "no stsz box (compact sample sizes?)")
	}
	p.n = stbl.Stsz.GetNrSamples()
	if p.n == 0 {
		return p, nil
	}
	if stbl.Stts == nil || len(stbl.Stts.SampleCount) == 0 || stbl.Stsc == nil || len(stbl.Stsc.Entries) == 0 {
		return nil, errorf(ErrInvalid, "incomplete sample table")
	}
	switch {
	case stbl.Stco != nil:
		p.offsets = make([]uint64, len(stbl.Stco.ChunkOffset))
		for i, o := range stbl.Stco.ChunkOffset {
			p.offsets[i] = uint64(o)
		}
	case stbl.Co64 != nil:
		p.offsets = stbl.Co64.ChunkOffset
	default:
		return nil, errorf(ErrInvalid, "no chunk offsets")
	}
	p.sttsLeft = stbl.Stts.SampleCount[0]
	return p, nil
}

// next returns the decode time, composition offset, duration, sample
// description index (0-based), offset and size of the next sample.
func (p *progIter) next() (dts int64, cto int32, dur uint32, desc int, off uint64, size uint32, err error) {
	if p.i >= p.n {
		return 0, 0, 0, 0, 0, 0, io.EOF
	}
	p.i++
	st := p.stbl
	// stts: skip exhausted entries; beyond the table, keep the last delta.
	for p.sttsLeft == 0 && p.sttsIdx+1 < len(st.Stts.SampleCount) {
		p.sttsIdx++
		p.sttsLeft = st.Stts.SampleCount[p.sttsIdx]
	}
	if p.sttsLeft > 0 {
		p.sttsLeft--
	}
	dur = st.Stts.SampleTimeDelta[p.sttsIdx]
	dts = p.dts
	p.dts += int64(dur)

	if c := st.Ctts; c != nil && len(c.SampleOffset) > 0 {
		for p.cttsIdx+1 < len(c.EndSampleNr) && p.i > c.EndSampleNr[p.cttsIdx+1] {
			p.cttsIdx++
		}
		if p.cttsIdx < len(c.SampleOffset) && p.i <= c.EndSampleNr[len(c.EndSampleNr)-1] {
			cto = c.SampleOffset[p.cttsIdx]
		}
	}

	// stsc + stco: move to the next chunk that has samples.
	for p.chunkLeft == 0 {
		if int(p.chunk) >= len(p.offsets) {
			return 0, 0, 0, 0, 0, 0, errorf(ErrInvalid, "sample %d beyond the last chunk", p.i)
		}
		p.chunk++
		for p.stscIdx+1 < len(st.Stsc.Entries) && st.Stsc.Entries[p.stscIdx+1].FirstChunk <= p.chunk {
			p.stscIdx++
		}
		p.chunkLeft = st.Stsc.Entries[p.stscIdx].SamplesPerChunk
		p.off = p.offsets[p.chunk-1]
		if len(st.Stsc.SampleDescriptionID) > p.stscIdx {
			p.desc = st.Stsc.SampleDescriptionID[p.stscIdx]
		} else {
			p.desc = st.Stsc.GetSampleDescriptionID(1)
		}
	}
	p.chunkLeft--
	size = st.Stsz.GetSampleSize(int(p.i))
	off = p.off
	p.off += uint64(size)
	return dts, cto, dur, int(p.desc) - 1, off, size, nil
}

func (m *MP4) nextProg() (s chunker.Sample, entry int, data []byte, err error) {
	defer recoverInvalid(&err, "sample table")
	dts, cto, dur, desc, off, size, err := m.prog.next()
	if err != nil {
		return s, 0, nil, err
	}
	s.DTS = dts + m.shift - m.dtsShift
	s.PTS = dts + m.shift + int64(cto)
	s.Duration = int64(dur)
	if size == 0 {
		return s, desc, nil, nil
	}
	data, err = m.read(off, size)
	return s, desc, data, err
}

// fragState is the state of reading a fragmented file.
type fragState struct {
	samples []fragSample // samples of the current moof, not yet delivered
	idx     int
	data    []byte // payload of the current mdat
	dataPos int64  // absolute offset of data[0]
	nextDTS int64  // decode time after the last sample (for a missing tfdt)
	mdat    []byte // reusable mdat buffer
}

type fragSample struct {
	dts  int64
	cto  int32
	dur  uint32
	off  int64 // absolute file offset
	size uint32
	desc int
}

func (m *MP4) nextFrag() (s chunker.Sample, entry int, data []byte, err error) {
	f := m.frag
	for f.idx >= len(f.samples) || f.data == nil {
		if err := m.readFragment(); err != nil {
			return s, 0, nil, err
		}
	}
	fs := f.samples[f.idx]
	f.idx++
	s.DTS = fs.dts + m.shift - m.dtsShift
	s.PTS = fs.dts + m.shift + int64(fs.cto)
	s.Duration = int64(fs.dur)
	lo := fs.off - f.dataPos
	if lo < 0 || lo > int64(len(f.data)) || int64(fs.size) > int64(len(f.data))-lo {
		return s, 0, nil, errorf(ErrInvalid, "fragment sample at %d+%d outside its mdat", fs.off, fs.size)
	}
	return s, fs.desc, f.data[lo : lo+int64(fs.size)], nil
}

// readFragment reads top-level boxes up to and including the mdat that
// holds the samples of the next moof with our track.
func (m *MP4) readFragment() error {
	f := m.frag
	for {
		h, start, err := m.header()
		if err != nil {
			return err
		}
		switch h.Name {
		case "moof":
			b, err := m.decodeBody(h, start)
			if err != nil {
				return err
			}
			moof, ok := b.(*mp4.MoofBox)
			if !ok {
				return errorf(ErrInvalid, "moof box")
			}
			if err := m.parseMoof(moof, start); err != nil {
				return err
			}
			f.data = nil
		case "mdat":
			if f.idx >= len(f.samples) {
				if err := m.skip(h); err != nil {
					return err
				}
				continue
			}
			n := int64(h.Size) - int64(h.Hdrlen)
			if n > maxMdatRead {
				return errorf(ErrUnsupported, "mdat of %d bytes in a fragment", n)
			}
			buf := f.mdat[:0]
			// Grow with the bytes that really arrive, so that a lying
			// size cannot allocate ahead of them.
			for int64(len(buf)) < n {
				k := int(min(n-int64(len(buf)), 1<<20))
				buf = slices.Grow(buf, k)
				got, err := io.ReadFull(m.cr, buf[len(buf):len(buf)+k])
				buf = buf[:len(buf)+got]
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return errorf(ErrTruncated, "mdat at %d", start)
				}
				if err != nil {
					return err
				}
			}
			f.mdat = buf
			f.data = buf
			f.dataPos = start + int64(h.Hdrlen)
			return nil
		default:
			if err := m.skip(h); err != nil {
				return err
			}
		}
	}
}

func (m *MP4) parseMoof(moof *mp4.MoofBox, moofStart int64) (err error) {
	defer recoverInvalid(&err, "moof")
	f := m.frag
	f.samples = f.samples[:0]
	f.idx = 0
	defer func() {
		if len(f.samples) > 0 {
			m.haveShift = true // the first fragment decides
		}
	}()
	for _, traf := range moof.Trafs {
		if traf.Tfhd == nil || traf.Tfhd.TrackID != m.trackID {
			continue
		}
		tfhd := traf.Tfhd
		if traf.Tfdt != nil {
			f.nextDTS = int64(traf.Tfdt.BaseMediaDecodeTime())
			if f.nextDTS < 0 {
				return errorf(ErrInvalid, "tfdt out of range")
			}
		}
		desc := 0
		if tfhd.HasSampleDescriptionIndex() && tfhd.SampleDescriptionIndex > 0 {
			desc = int(tfhd.SampleDescriptionIndex) - 1
		} else if m.trex != nil && m.trex.DefaultSampleDescriptionIndex > 0 {
			desc = int(m.trex.DefaultSampleDescriptionIndex) - 1
		}
		base := moofStart
		if tfhd.HasBaseDataOffset() {
			base = int64(tfhd.BaseDataOffset)
		}
		pos := base
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(tfhd, m.trex)
			if trun.HasDataOffset() {
				pos = base + int64(trun.DataOffset)
			}
			for _, smp := range trun.Samples {
				if !m.haveShift {
					m.dtsShift = max(m.dtsShift, -int64(smp.CompositionTimeOffset))
				}
				f.samples = append(f.samples, fragSample{
					dts:  f.nextDTS,
					cto:  smp.CompositionTimeOffset,
					dur:  smp.Dur,
					off:  pos,
					size: smp.Size,
					desc: desc,
				})
				f.nextDTS += int64(smp.Dur)
				pos += int64(smp.Size)
			}
		}
	}
	return nil
}
