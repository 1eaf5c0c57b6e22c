package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/Eyevinn/mp4ff/mp4"
	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/demux"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Limits that keep hostile input from allocating without bound.
const (
	maxSampleSize = 64 << 20 // one access unit
	// maxAudioSampleSize bounds one audio frame: AAC frames are at most
	// 8 KiB (what ADTS can frame), and a larger sample is damage.
	maxAudioSampleSize = 64 << 10
	maxMdatRead        = 1 << 30 // one fragment's mdat, read into memory
	maxEmptyRun        = 1 << 16 // consecutive empty samples skipped
)

// MP4 is a Source over an MP4 or QuickTime MOV file. It reads the first
// H.264 (avc1 or avc3) video track and the first AAC (mp4a) audio track,
// and ignores the others.
//
// Progressive files are read through their sample tables: DTS from stts,
// PTS from ctts (signed offsets too), sizes and positions from stsz, stsc
// and stco/co64; sample data is read on demand with ReadAt or Seek. The
// tables stay in the file and are read through small windows, so a source
// over a 10-hour file takes no more memory than one over a minute.
// Fragmented files are read moof by moof (trex and tfhd defaults, trun,
// tfdt), sequentially, so they can also come from a pipe.
//
// The first edit of the track's edit list is applied: output time = media
// time − media_time of the first non-empty edit + the duration of leading
// empty edits. So presentation starts where the file says, and DTS may be
// negative (with B-frames it usually is). Later edits are ignored. The audio
// track's edit list is applied the same way, so the encoder priming that
// an encoder declares with it (ffmpeg's AAC encoder: media_time 1024) puts
// the first frame before time 0, and audio/video sync is kept.
//
// The SPS and PPS of the sample entry (avcC) are inserted in-band before
// the first sample, and again at the next IDR picture when the sample
// entry changes, unless the sample carries its own.
type MP4 struct {
	opt  Options
	log  *slog.Logger
	cr   *countReader  // sequential reading (fragments)
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

	prog        *demux.Samples // video, progressive files
	vpeek       progEntry      // next video entry of prog, when read ahead
	frag        *fragState
	vfrag       *demux.Fragments // video, fragmented files
	progressive bool

	aud *mp4Audio // nil without an AAC track

	started bool
	sentSPS [][]byte // parameter sets last put in-band
	sentPPS [][]byte

	buf    []byte
	ahead  readAhead // video samples of a progressive file
	nalus  [][]byte
	withPS [][]byte
	err    error
}

// mp4Audio is the AAC track of an MP4 being read.
type mp4Audio struct {
	trackID   uint32
	timescale uint32
	shift     int64            // edit list, added to media times
	prog      *demux.Samples   // progressive files
	frag      *demux.Fragments // fragmented files
	peek      progEntry
	buf       []byte
	ahead     readAhead
}

// progEntry is a sample table entry read ahead.
type progEntry struct {
	ok bool
	demux.Sample
}

// peek reads the next entry of p into e unless e already holds one; at the
// end of the table e stays empty and peek returns io.EOF.
func peek(p *demux.Samples, e *progEntry) error {
	if e.ok {
		return nil
	}
	if err := p.Next(&e.Sample); err != nil {
		return err
	}
	e.ok = true
	return nil
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
// video track and its first AAC track (audio only when there is no H.264
// track). Progressive files need r to be an io.ReadSeeker positioned at the
// start of the file (an io.ReaderAt as well, such as *os.File, is used for
// sample data when available); fragmented files are read sequentially and
// may come from any io.Reader. The MP4 reads r until the last sample; it
// does not close it.
func NewMP4(r io.Reader, opt Options) (*MP4, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil reader", ErrInvalid)
	}
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
		return nil, fmt.Errorf("source: mp4: %w", fromDemux(err))
	}
	return m, nil
}

// Info describes the selected track.
func (m *MP4) Info() Info { return m.info }

// TrackID returns the ID of the track that is read.
func (m *MP4) TrackID() uint32 { return m.trackID }

// Next returns the next video sample in decode order, or io.EOF. Audio is
// skipped without being read.
func (m *MP4) Next() (chunker.Sample, error) {
	p, err := m.packet(false)
	return p.Video, err
}

// NextPacket returns the next video sample or audio frame in time order
// (within a fragment, for fragmented files), or io.EOF.
func (m *MP4) NextPacket() (Packet, error) {
	return m.packet(true)
}

func (m *MP4) packet(audio bool) (Packet, error) {
	if m.err != nil {
		return Packet{}, m.err
	}
	p, err := m.next(audio)
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("source: mp4: %w", fromDemux(err))
		}
		m.err = err
		return Packet{}, err
	}
	return p, nil
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

// readBody reads the body of the box h, whose header was read at start,
// into buf (grown as needed). A box over limit bytes is ErrUnsupported. The
// buffer grows with the bytes that really arrive, so that a lying size
// cannot allocate ahead of them.
func (m *MP4) readBody(h mp4.BoxHeader, start, limit int64, buf []byte) ([]byte, error) {
	n := int64(h.Size) - int64(h.Hdrlen)
	if n > limit || n < 0 {
		return nil, errorf(ErrUnsupported, "%s box of %d bytes", h.Name, h.Size)
	}
	buf = buf[:0]
	for int64(len(buf)) < n {
		k := int(min(n-int64(len(buf)), 1<<20))
		buf = slices.Grow(buf, k)
		got, err := io.ReadFull(m.cr, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+got]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, errorf(ErrTruncated, "%s box at %d", h.Name, start)
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// boxOf is where the box whose header h was read at start is.
func boxOf(h mp4.BoxHeader, start int64) demux.Box {
	return demux.Box{Type: h.Name, Off: start, Size: int64(h.Size), Hdr: int64(h.Hdrlen)}
}

func (m *MP4) open() error {
	mv, err := m.movie()
	if err != nil {
		return err
	}
	if !mv.Fragmented() && m.rs == nil {
		return errorf(ErrUnsupported, "progressive MP4 needs a seekable input")
	}
	tracks, err := mv.Tracks()
	if err != nil {
		return err
	}
	if err := m.selectAudio(tracks, mv); err != nil {
		return err
	}
	if err := m.selectVideo(tracks.Video, mv); err != nil {
		return err
	}
	if mv.Fragmented() {
		m.frag = &fragState{}
		return nil
	}
	m.info.Bitrate = bitrate(m.size-mv.Box.Size, mv.Moov.Mvhd)
	m.progressive = true
	m.info.OneTimeline = true
	return nil
}

// movie finds and reads the moov box. A seekable input's is read through
// its io.ReaderAt (or Seek), leaving the sample tables in the input;
// another's is read into memory (a fragmented file's moov has no sample
// tables to speak of). The sequential reader is left after the moov box.
func (m *MP4) movie() (*demux.Movie, error) {
	if m.size >= 0 {
		at := m.ra
		if at == nil {
			at = seekReaderAt{m.rs}
		}
		for off := int64(0); ; {
			if off >= m.size {
				return nil, errorf(ErrTruncated, "no moov box before the end of the input")
			}
			b, err := demux.ReadBox(at, off, m.size, true)
			if err != nil {
				return nil, err
			}
			switch b.Type {
			case "moov":
				mv, err := demux.ReadMovie(at, b)
				if err != nil {
					return nil, err
				}
				if _, err := m.rs.Seek(b.End(), io.SeekStart); err != nil {
					return nil, err
				}
				m.cr.pos = b.End()
				return mv, nil
			case "moof":
				return nil, errorf(ErrInvalid, "moof before moov")
			}
			off = b.End()
		}
	}
	for {
		h, start, err := m.header()
		if err == io.EOF {
			return nil, errorf(ErrTruncated, "no moov box before the end of the input")
		}
		if err != nil {
			return nil, err
		}
		switch h.Name {
		case "moov":
			body, err := m.readBody(h, start, demux.MaxMetaBox, nil)
			if err != nil {
				return nil, err
			}
			b := boxOf(h, start)
			return demux.ReadMovie(demux.BytesAt{B: body, Off: b.Body()}, b)
		case "moof":
			return nil, errorf(ErrInvalid, "moof before moov")
		}
		if err := m.skip(h); err != nil {
			return nil, err
		}
	}
}

// seekReaderAt reads an io.ReadSeeker at given offsets.
type seekReaderAt struct{ rs io.ReadSeeker }

func (s seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.rs, p)
}

// selectAudio takes the AAC track of ts, names the audio tracks that are
// left out in Info.IgnoredAudio, and logs why those that could not be read
// are.
func (m *MP4) selectAudio(ts demux.Tracks, mv *demux.Movie) error {
	m.info.IgnoredAudio = ts.IgnoredAudio
	for _, u := range ts.Unreadable {
		m.log.Warn("mp4: ignoring an audio track", "track", u.ID, "err", u.Err)
	}
	t := ts.Audio
	if t == nil {
		return nil
	}
	a := &mp4Audio{trackID: t.ID, timescale: t.Timescale, shift: t.Edit.Shift}
	if mv.Fragmented() {
		a.frag = demux.NewFragments(t)
	} else {
		p, err := t.Samples()
		if err != nil {
			return err
		}
		a.prog = p
	}
	m.aud = a
	m.info.Audio = &AudioInfo{ASC: bytes.Clone(t.ASC), Timescale: t.Timescale, AACInfo: t.AAC}
	return nil
}

// selectVideo takes the H.264 track t (nil: audio only).
func (m *MP4) selectVideo(t *demux.Track, mv *demux.Movie) error {
	m.info.Format = FormatMP4
	if t == nil {
		m.info.NoVideo = true
		m.info.Timescale = m.aud.timescale
		return nil
	}
	m.trackID, m.timescale, m.info.Matrix = t.ID, t.Timescale, t.Matrix
	for _, c := range t.Entries {
		var e avcEntry
		if vse, ok := c.(*mp4.VisualSampleEntryBox); ok && demux.IsAVC(c) && vse.AvcC != nil {
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
	m.info.Timescale = m.timescale
	m.info.SPS, m.info.PPS = m.entries[0].sps, m.entries[0].pps
	if len(m.info.SPS) > 0 {
		var sps mch264.SPS
		if sps.Unmarshal(m.info.SPS[0]) == nil {
			m.info.Width, m.info.Height = sps.Width(), sps.Height()
		}
	}
	m.shift = t.Edit.Shift
	d, present, err := t.MaxCompositionDelay()
	if err != nil {
		return err
	}
	m.dtsShift, m.haveShift = d, present
	if mv.Fragmented() {
		m.vfrag = demux.NewFragments(t)
		return nil
	}
	m.haveShift = true
	m.prog, err = t.Samples()
	return err
}

// fromDemux gives an error of internal/demux the kind of this package
// that matches its own (ErrInvalid, ErrTruncated, ErrUnsupported); other
// errors are returned as they are.
func fromDemux(err error) error {
	var de *demux.Error
	if isTypedErr(err) || !errors.As(err, &de) {
		return err
	}
	kind := ErrInvalid
	switch de.Kind {
	case demux.ErrTruncated:
		kind = ErrTruncated
	case demux.ErrUnsupported:
		kind = ErrUnsupported
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// bitrate returns the average bit rate of n bytes of media over the movie's
// duration (0 when mvhd gives none).
func bitrate(n int64, mvhd *mp4.MvhdBox) int64 {
	if n <= 0 || mvhd == nil || mvhd.Timescale == 0 || mvhd.Duration == 0 {
		return 0
	}
	d := float64(mvhd.Duration) / float64(mvhd.Timescale)
	return int64(min(float64(n)*8/d, 1<<40))
}

// next returns the next packet; audio is skipped unread unless audio is
// set.
func (m *MP4) next(audio bool) (Packet, error) {
	empty := 0
	for empty < maxEmptyRun {
		isAudio, err := m.which()
		if err != nil {
			return Packet{}, err
		}
		if isAudio {
			a, err := m.nextAudio(audio)
			if err != nil {
				return Packet{}, err
			}
			if len(a.Data) == 0 {
				if audio {
					empty++ // an empty sample carries no frame
				}
				continue
			}
			return Packet{Kind: KindAudio, Audio: a}, nil
		}
		var (
			s     chunker.Sample
			entry int
			data  []byte
		)
		if m.progressive {
			s, entry, data, err = m.nextProg()
		} else {
			s, entry, data, err = m.nextFrag()
		}
		if err != nil {
			return Packet{}, err
		}
		if len(data) == 0 {
			empty++
			continue // an empty sample carries no picture
		}
		if entry < 0 || entry >= len(m.entries) || !m.entries[entry].avc {
			return Packet{}, errorf(ErrUnsupported, "sample description %d is not H.264", entry+1)
		}
		e := &m.entries[entry]
		m.nalus, err = chunker.SplitAVCC(m.nalus[:0], data, e.lengthSize)
		if err != nil {
			return Packet{}, errorf(ErrInvalid, "sample at dts %d: %v", s.DTS, err)
		}
		if len(m.nalus) == 0 {
			empty++
			continue
		}
		s.NALUs = m.nalus
		if !accessunit.Equal(m.sentSPS, e.sps) || !accessunit.Equal(m.sentPPS, e.pps) {
			switch {
			case accessunit.HasParamSets(m.nalus):
				m.sentSPS, m.sentPPS = e.sps, e.pps
			case !m.started || chunker.IsIDR(m.nalus):
				if len(e.sps) > 0 && len(e.pps) > 0 {
					m.withPS = accessunit.AppendWithParamSets(m.withPS[:0], m.nalus, e.sps, e.pps)
					s.NALUs = m.withPS
				}
				m.sentSPS, m.sentPPS = e.sps, e.pps
			}
		}
		m.started = true
		return Packet{Kind: KindVideo, Video: s}, nil
	}
	return Packet{}, errorf(ErrInvalid, "more than %d empty samples in a row", maxEmptyRun)
}

// which reports whether the next sample in time order is audio; io.EOF
// when both tracks have ended.
func (m *MP4) which() (isAudio bool, err error) {
	defer recoverInvalid(&err, "sample table")
	a := m.aud
	if m.progressive {
		vok, aok := false, false
		if m.prog != nil && !m.info.NoVideo {
			if err := peek(m.prog, &m.vpeek); err != nil && err != io.EOF {
				return false, err
			}
			vok = m.vpeek.ok
		}
		if a != nil {
			if err := peek(a.prog, &a.peek); err != nil && err != io.EOF {
				return false, err
			}
			aok = a.peek.ok
		}
		switch {
		case vok && aok:
			return timeline.Before(a.peek.DTS+a.shift, a.timescale, m.vpeek.DTS+m.shift-m.dtsShift, m.timescale), nil
		case vok || aok:
			return aok, nil
		}
		return false, io.EOF
	}
	f := m.frag
	for !f.loaded || f.vi >= len(f.vs) && f.ai >= len(f.as) {
		if err := m.readFragment(); err != nil {
			return false, err
		}
	}
	vok, aok := f.vi < len(f.vs), f.ai < len(f.as)
	if vok && aok {
		return timeline.Before(f.as[f.ai].DTS+a.shift, a.timescale, f.vs[f.vi].DTS+m.shift-m.dtsShift, m.timescale), nil
	}
	return aok, nil
}

// nextAudio takes the next audio sample (which said it is next); its data
// is read only when read is set.
func (m *MP4) nextAudio(read bool) (s chunker.AudioSample, err error) {
	defer recoverInvalid(&err, "sample table")
	a := m.aud
	var (
		dts  int64
		off  int64
		size uint32
	)
	if m.progressive {
		e := a.peek
		a.peek.ok = false
		dts, size = e.DTS, e.Size
		s.PTS, s.Duration = dts+a.shift, int64(e.Dur)
		if !read || size == 0 {
			return s, nil
		}
		if size > maxAudioSampleSize {
			return s, errorf(ErrInvalid, "audio sample of %d bytes", size)
		}
		if m.size >= 0 && (e.Off > uint64(m.size) || uint64(size) > uint64(m.size)-e.Off) {
			return s, errorf(ErrTruncated, "audio sample at %d+%d beyond end of file (%d bytes)", e.Off, size, m.size)
		}
		next := int64(-1) // where the video track reads next
		if m.vpeek.ok {
			next = int64(m.vpeek.Off)
		}
		b, err := m.readAt(&a.ahead, &m.ahead, next, &a.buf, int64(e.Off), int(size))
		if err != nil {
			return s, err
		}
		s.Data = b
		return s, nil
	}
	f := m.frag
	fs := f.as[f.ai]
	f.ai++
	dts, off, size = fs.DTS, fs.Off, fs.Size
	s.PTS, s.Duration = dts+a.shift, int64(fs.Dur)
	if !read {
		return s, nil
	}
	if !f.holds(off, int64(size)) {
		return s, errorf(ErrInvalid, "fragment audio sample at %d+%d outside its mdat", off, size)
	}
	if !f.lazy {
		s.Data = f.data[off-f.dataPos : off-f.dataPos+int64(size)]
		return s, nil
	}
	if size > maxAudioSampleSize {
		return s, errorf(ErrInvalid, "audio sample of %d bytes", size)
	}
	b, err := m.readAt(&a.ahead, &m.ahead, -1, &a.buf, off, int(size))
	if err != nil {
		return s, err
	}
	s.Data = b
	return s, nil
}

// nonEmpty returns copies of the non-empty NAL units: mp4ff's slices point
// into the moov box's bytes, which are garbage once the sample tables are
// read.
func nonEmpty(nalus [][]byte) [][]byte {
	var out [][]byte
	for _, n := range nalus {
		if len(n) > 0 {
			out = append(out, slices.Clone(n))
		}
	}
	return out
}

// read returns the size bytes at offset off of the video track (see
// readAt).
func (m *MP4) read(off uint64, size uint32) ([]byte, error) {
	if size > maxSampleSize {
		return nil, errorf(ErrUnsupported, "sample of %d bytes", size)
	}
	if m.size >= 0 && (off > uint64(m.size) || uint64(size) > uint64(m.size)-off) {
		return nil, errorf(ErrTruncated, "sample at %d+%d beyond end of file (%d bytes)", off, size, m.size)
	}
	var other *readAhead
	next := int64(-1) // where the audio track reads next
	if m.aud != nil {
		other = &m.aud.ahead
		if m.aud.peek.ok {
			next = int64(m.aud.peek.Off)
		}
	}
	return m.readAt(&m.ahead, other, next, &m.buf, int64(off), int(size))
}

// readAhead holds the bytes that follow the last sample read of one track:
// a progressive file stores a track's samples one after another in chunks,
// so one read brings several samples, and the samples of a typical 720p
// stream cost one system call per 20 or so instead of one each. Each track
// has its own, so files that do not interleave their tracks read as well as
// those that do; a sample found in the other track's read-ahead is taken
// from there, so a file interleaved sample by sample (what ffmpeg writes) is
// read about once, not once per track.
type readAhead struct {
	buf []byte
	off int64 // input offset of buf[0]
}

// readAheadSize is the size of the reads of readAhead; samples larger than
// a quarter of it are read on their own.
const readAheadSize = 256 << 10

// has returns the size bytes at off if ra holds them.
func (ra *readAhead) has(off int64, size int) ([]byte, bool) {
	if ra == nil || off < ra.off || off+int64(size) > ra.off+int64(len(ra.buf)) {
		return nil, false
	}
	i := int(off - ra.off)
	return ra.buf[i : i+size : i+size], true
}

// readAt returns the size bytes at offset off of the input. A sample of up
// to a quarter of readAheadSize is returned, without a copy, from the
// track's read-ahead ra or the other track's, other, when the input is an
// io.ReaderAt: the slice aliases a read-ahead, which is refilled only by a
// later call, so it stays valid until the next call of Next or NextPacket
// as Source promises. A refill of ra starts at off, or at otherNext (where
// the other track reads next, -1 if unknown) when that is a little before
// off, so the other track's next samples come from it too. Other samples
// are read into *buf, grown as needed.
func (m *MP4) readAt(ra, other *readAhead, otherNext int64, buf *[]byte, off int64, size int) ([]byte, error) {
	if m.ra != nil && size <= readAheadSize/4 {
		if b, ok := ra.has(off, size); ok {
			return b, nil
		}
		if b, ok := other.has(off, size); ok {
			return b, nil
		}
		if cap(ra.buf) < readAheadSize {
			ra.buf = make([]byte, readAheadSize)
		}
		start := off
		if otherNext >= 0 && otherNext < off && off-otherNext <= readAheadSize/2 {
			if _, ok := other.has(otherNext, 1); !ok {
				start = otherNext
			}
		}
		n, err := m.ra.ReadAt(ra.buf[:readAheadSize], start)
		ra.buf, ra.off = ra.buf[:n], start
		b, ok := ra.has(off, size)
		if !ok {
			if err == nil || err == io.EOF {
				err = errorf(ErrTruncated, "sample at %d+%d", off, size)
			}
			return nil, err
		}
		return b, nil
	}
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if err := m.readFull(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// reuseBuffers takes over the read buffers of old, a source that has
// returned its last packet (Loop's previous pass), so that a new pass over
// the input allocates no read-ahead. The read-ahead is emptied: the new
// source may read another file.
func (m *MP4) reuseBuffers(old *MP4) {
	m.ahead, m.buf = readAhead{buf: old.ahead.buf[:0]}, old.buf[:0]
	m.nalus, m.withPS = old.nalus[:0], old.withPS[:0]
	if m.aud != nil && old.aud != nil {
		m.aud.ahead, m.aud.buf = readAhead{buf: old.aud.ahead.buf[:0]}, old.aud.buf[:0]
	}
	old.ahead, old.buf, old.nalus, old.withPS = readAhead{}, nil, nil, nil
	if old.aud != nil {
		old.aud.ahead, old.aud.buf = readAhead{}, nil
	}
}

// readFull fills b with the sample at offset off of the input.
func (m *MP4) readFull(b []byte, off int64) error { return m.readFullAt(b, off, "sample") }

// readFullAt fills b from offset off of the input, which holds what.
func (m *MP4) readFullAt(b []byte, off int64, what string) error {
	var err error
	if m.ra != nil {
		var n int
		n, err = m.ra.ReadAt(b, off)
		if n == len(b) {
			err = nil // ReadAt may report io.EOF with all bytes read
		}
	} else {
		if _, err = m.rs.Seek(off, io.SeekStart); err == nil {
			_, err = io.ReadFull(m.rs, b)
		}
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errorf(ErrTruncated, "%s at %d+%d", what, off, len(b))
	}
	return err
}

func (m *MP4) nextProg() (s chunker.Sample, entry int, data []byte, err error) {
	defer recoverInvalid(&err, "sample table")
	if err := peek(m.prog, &m.vpeek); err != nil {
		return s, 0, nil, err
	}
	e := m.vpeek
	m.vpeek.ok = false
	dts, cto, dur, desc, off, size := e.DTS, e.CTO, e.Dur, e.Desc, e.Off, e.Size
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
	vs   []demux.FragSample // video samples of the current moof
	vi   int                // the next one to deliver
	as   []demux.FragSample // audio samples of the current moof
	ai   int
	data []byte // payload of the current mdat (nil when lazy)
	// dataPos and dataEnd: where the current mdat's payload starts and
	// ends in the input
	dataPos, dataEnd int64
	// lazy: the input is an io.ReaderAt, and the payload is read a sample
	// at a time (see read) rather than held whole
	lazy   bool
	loaded bool   // the mdat of the current moof is found
	moof   []byte // reusable moof buffer
	mdat   []byte // reusable mdat buffer
}

// nextFrag takes the next video sample of the current fragment (which said
// there is one).
func (m *MP4) nextFrag() (s chunker.Sample, entry int, data []byte, err error) {
	f := m.frag
	fs := f.vs[f.vi]
	f.vi++
	s.DTS = fs.DTS + m.shift - m.dtsShift
	s.PTS = fs.DTS + m.shift + int64(fs.CTO)
	s.Duration = int64(fs.Dur)
	if !f.holds(fs.Off, int64(fs.Size)) {
		return s, 0, nil, errorf(ErrInvalid, "fragment sample at %d+%d outside its mdat", fs.Off, fs.Size)
	}
	if !f.lazy {
		return s, fs.Desc, f.data[fs.Off-f.dataPos : fs.Off-f.dataPos+int64(fs.Size)], nil
	}
	data, err = m.read(uint64(fs.Off), fs.Size)
	return s, fs.Desc, data, err
}

// holds reports whether the current mdat's payload holds the size bytes
// at offset off.
func (f *fragState) holds(off, size int64) bool {
	return off >= f.dataPos && off <= f.dataEnd && size <= f.dataEnd-off
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
			body, err := m.readBody(h, start, demux.MaxMetaBox, f.moof)
			if err != nil {
				return err
			}
			f.moof = body
			moof, err := demux.DecodeMoof(boxOf(h, start), body)
			if err != nil {
				return err
			}
			if err := m.parseMoof(moof, start); err != nil {
				return err
			}
			f.data, f.loaded = nil, false
		case "mdat":
			if f.vi >= len(f.vs) && f.ai >= len(f.as) {
				if err := m.skip(h); err != nil {
					return err
				}
				continue
			}
			f.dataPos = start + int64(h.Hdrlen)
			if m.ra != nil {
				// Read in place, a sample at a time: an mdat of any
				// size costs no memory of its own.
				f.data, f.lazy, f.dataEnd, f.loaded = nil, true, start+int64(h.Size), true
				return m.skip(h)
			}
			buf, err := m.readBody(h, start, maxMdatRead, f.mdat)
			if err != nil {
				return err
			}
			f.mdat, f.data, f.lazy, f.loaded = buf, buf, false, true
			f.dataEnd = f.dataPos + int64(len(buf))
			return nil
		default:
			if err := m.skip(h); err != nil {
				return err
			}
		}
	}
}

// parseMoof lists the samples of our tracks in moof, which begins at
// moofStart. The first fragment with video samples decides how far DTS is
// moved back so that negative composition offsets keep PTS >= DTS, unless
// the moov's ctts did.
func (m *MP4) parseMoof(moof *mp4.MoofBox, moofStart int64) (err error) {
	f := m.frag
	f.vs, f.vi, f.as, f.ai = f.vs[:0], 0, f.as[:0], 0
	if m.vfrag != nil {
		if f.vs, err = m.vfrag.Append(f.vs, moof, moofStart); err != nil {
			return err
		}
		if len(f.vs) > 0 && !m.haveShift {
			for _, s := range f.vs {
				m.dtsShift = max(m.dtsShift, -int64(s.CTO))
			}
			m.haveShift = true
		}
	}
	if m.aud != nil {
		if f.as, err = m.aud.frag.Append(f.as, moof, moofStart); err != nil {
			return err
		}
	}
	return nil
}
