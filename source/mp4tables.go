package source

import (
	"encoding/binary"
	"io"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// The sample tables of a progressive MP4 list every sample: about 14 bytes
// a sample with an audio track, 1.9 MB for 30 minutes of 720p30 with AAC,
// 3.7 MB an hour. The source does not hold them: it reads the moov box
// without them (readMoov), decodes the rest with mp4ff, and walks the
// tables in the file through small windows (table), so that its memory does
// not grow with the length of the input.

// stblTables are the places in the input of the per-sample tables of one
// trak's stbl box: the bodies (after the box header) of stts, ctts, stsc,
// stsz and stco or co64; size 0 where the box is missing.
type stblTables struct {
	stts, ctts, stsc, stsz, stco, co64 boxBody
}

// boxBody is the body of a box in the input.
type boxBody struct {
	off, size int64
	present   bool
}

// maxMoovDepth bounds the nesting of moovContainers (moov/trak/mdia/minf/
// stbl is 4 deep): a hostile file could otherwise nest them until the stack
// overflows.
const maxMoovDepth = 8

// maxMoovBoxes bounds the boxes readMoov reads a header of (one positional
// read each): real files have tens to a few hundred.
const maxMoovBoxes = 100000

// moovContainers are the boxes readMoov descends into, on the way from moov
// to stbl.
var moovContainers = map[string]bool{"trak": true, "mdia": true, "minf": true, "stbl": true}

// readMoov reads the moov box whose header h was read at start, without
// reading its per-sample tables: it walks the box tree with positional
// reads, copies every box but the tables of the stbl boxes (stts, ctts,
// stsc, stsz, stco, co64, and stss and sdtp, which the source does not use)
// into a compact moov, decodes that with mp4ff, and returns where each
// trak's tables are (tabs[i] for moov.Traks[i]). The input position is left
// after the moov box.
func (m *MP4) readMoov(h mp4.BoxHeader, start int64) (moov *mp4.MoovBox, tabs []stblTables, err error) {
	defer recoverInvalid(&err, "moov")
	w := moovWalker{m: m}
	body := make([]byte, 0, 4<<10)
	body, err = w.walk(body, start+int64(h.Hdrlen), start+int64(h.Size), "moov", 0)
	if err != nil {
		return nil, nil, err
	}
	if err := m.skip(h); err != nil {
		return nil, nil, err
	}
	hdr := mp4.BoxHeader{Name: "moov", Size: uint64(8 + len(body)), Hdrlen: 8}
	box, err := mp4.DecodeBoxBodySR(uint64(start), hdr, bits.NewFixedSliceReader(body))
	if err != nil {
		return nil, nil, decodeErr(err)
	}
	mv, ok := box.(*mp4.MoovBox)
	if !ok || len(mv.Traks) != len(w.tabs) {
		return nil, nil, errorf(ErrInvalid, "moov box")
	}
	return mv, w.tabs, nil
}

// moovWalker copies a moov box without its sample tables (see readMoov).
type moovWalker struct {
	m     *MP4
	tabs  []stblTables
	hdr   [16]byte
	boxes int
}

// walk appends to out the children of the box body [off, end) of a box
// named parent, each with an 8-byte header, leaving out the per-sample
// tables of stbl boxes, whose places it records in w.tabs.
func (w *moovWalker) walk(out []byte, off, end int64, parent string, depth int) ([]byte, error) {
	if depth > maxMoovDepth {
		return nil, errorf(ErrInvalid, "moov boxes nested more than %d deep", maxMoovDepth)
	}
	for off < end {
		if end-off < 8 {
			return nil, errorf(ErrInvalid, "%d stray bytes at the end of %s", end-off, parent)
		}
		if w.boxes++; w.boxes > maxMoovBoxes {
			return nil, errorf(ErrUnsupported, "moov box with more than %d boxes", maxMoovBoxes)
		}
		if err := w.m.readFullAt(w.hdr[:8], off, "box header"); err != nil {
			return nil, err
		}
		size := int64(binary.BigEndian.Uint32(w.hdr[:4]))
		name := string(w.hdr[4:8])
		hdrLen := int64(8)
		switch size {
		case 0: // to the end of the parent
			size = end - off
		case 1:
			if end-off < 16 {
				return nil, errorf(ErrInvalid, "%s box at %d: truncated large size", name, off)
			}
			if err := w.m.readFullAt(w.hdr[8:16], off+8, "box header"); err != nil {
				return nil, err
			}
			hdrLen = 16
			size = int64(binary.BigEndian.Uint64(w.hdr[8:16]))
		}
		if size < hdrLen || size > end-off {
			return nil, errorf(ErrInvalid, "%s box at %d: size %d does not fit in %s", name, off, size, parent)
		}
		bodyOff, bodySize := off+hdrLen, size-hdrLen
		switch {
		case moovContainers[name]:
			if name == "trak" {
				w.tabs = append(w.tabs, stblTables{})
			} else if len(w.tabs) == 0 {
				return nil, errorf(ErrInvalid, "%s box outside a trak", name)
			}
			at := len(out)
			out = append(out, 0, 0, 0, 0, name[0], name[1], name[2], name[3])
			var err error
			if out, err = w.walk(out, bodyOff, bodyOff+bodySize, name, depth+1); err != nil {
				return nil, err
			}
			binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at))
		case parent == "stbl" && w.table(name, boxBody{off: bodyOff, size: bodySize, present: true}):
			// Left in the input.
		default:
			if int64(len(out))+8+bodySize > maxMetaBox {
				return nil, errorf(ErrUnsupported, "moov box with more than %d bytes besides its sample tables", maxMetaBox)
			}
			at := len(out)
			out = append(out, 0, 0, 0, 0, name[0], name[1], name[2], name[3])
			binary.BigEndian.PutUint32(out[at:], uint32(8+bodySize))
			out = append(out, make([]byte, bodySize)...)
			if err := w.m.readFullAt(out[at+8:], bodyOff, name+" box"); err != nil {
				return nil, err
			}
		}
		off += size
	}
	return out, nil
}

// table records the body of the stbl child name if it is a per-sample
// table, and reports whether it is one.
func (w *moovWalker) table(name string, b boxBody) bool {
	t := &w.tabs[len(w.tabs)-1]
	switch name {
	case "stts":
		t.stts = b
	case "ctts":
		t.ctts = b
	case "stsc":
		t.stsc = b
	case "stsz":
		t.stsz = b
	case "stco":
		t.stco = b
	case "co64":
		t.co64 = b
	case "stss", "sdtp":
	default:
		return false
	}
	return true
}

// tableWindow is the size of the reads of a table: 1,024 stsz entries. (A
// variable so that the tests can make windows of a few entries.)
var tableWindow = 4 << 10

// table is one sample table in the input, read entry by entry through a
// window of tableWindow bytes. Access is sequential in practice; any
// entry can be read.
type table struct {
	m     *MP4
	name  string
	off   int64  // input offset of entry 0
	n     uint32 // number of entries
	esize uint32 // bytes per entry
	buf   []byte
	lo    uint32 // index of buf's first entry
	hi    uint32 // one past the index of its last
}

// openTable reads the header of a table box: version and flags, then
// extra 32-bit fields (the last of which is the entry count), and checks
// that its entries fit in the box. It returns the extra fields.
func (m *MP4) openTable(t *table, name string, b boxBody, esize uint32, extra int) ([]uint32, error) {
	var hb [12]byte
	hlen := int64(4 + 4*extra)
	if b.size < hlen {
		return nil, errorf(ErrInvalid, "%s box of %d bytes", name, b.size)
	}
	if err := m.readFullAt(hb[:hlen], b.off, name+" box"); err != nil {
		return nil, err
	}
	fields := make([]uint32, extra)
	for i := range fields {
		fields[i] = binary.BigEndian.Uint32(hb[4+4*i:])
	}
	*t = table{m: m, name: name, off: b.off + hlen, esize: esize}
	if esize > 0 {
		t.n = fields[extra-1]
		if int64(t.n)*int64(esize) > b.size-hlen {
			return nil, errorf(ErrInvalid, "%s box: %d entries in %d bytes", name, t.n, b.size-hlen)
		}
	}
	return fields, nil
}

// entry returns entry i (0-based) of the table, which must be below t.n.
func (t *table) entry(i uint32) ([]byte, error) {
	if i < t.lo || i >= t.hi {
		if i >= t.n {
			return nil, errorf(ErrInvalid, "%s: entry %d of %d", t.name, i, t.n)
		}
		k := min(t.n-i, max(1, uint32(tableWindow)/t.esize))
		if cap(t.buf) < int(k*t.esize) {
			t.buf = make([]byte, max(tableWindow, int(t.esize)))
		}
		b := t.buf[:k*t.esize]
		if err := t.m.readFullAt(b, t.off+int64(i)*int64(t.esize), t.name+" box"); err != nil {
			return nil, err
		}
		t.lo, t.hi = i, i+k
	}
	j := (i - t.lo) * t.esize
	return t.buf[j : j+t.esize], nil
}

// u32 returns the 32-bit field at byte k of entry i.
func (t *table) u32(i uint32, k int) (uint32, error) {
	e, err := t.entry(i)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(e[k:]), nil
}

// progIter walks the sample tables of a progressive track, one sample at a
// time, in O(1) per sample and constant memory (see table).
type progIter struct {
	n uint32 // number of samples
	i uint32 // samples delivered

	stts      table
	sttsIdx   uint32
	sttsLeft  uint32
	sttsDelta uint32
	dts       int64

	ctts     table // n == 0 without composition offsets
	cttsIdx  uint32
	cttsLeft uint32
	cttsOff  int32

	stsc      table
	stscIdx   uint32 // current entry
	spc, sdi  uint32 // its samples per chunk and sample description index
	nextFirst uint32 // first chunk of the next entry, if hasNext
	hasNext   bool

	stsz      table // entries only when uniform is 0
	uniform   uint32
	chunks    table  // stco or co64
	chunk     uint32 // current chunk, 1-based; 0 before the first
	chunkLeft uint32
	off       uint64
}

// newProgIter opens the sample tables t of a track.
func (m *MP4) newProgIter(t stblTables) (*progIter, error) {
	p := &progIter{}
	if !t.stsz.present {
		return nil, errorf(ErrUnsupported, "no stsz box (compact sample sizes?)")
	}
	f, err := m.openTable(&p.stsz, "stsz", t.stsz, 0, 2)
	if err != nil {
		return nil, err
	}
	p.uniform, p.n = f[0], f[1]
	if p.uniform == 0 { // a size per sample
		p.stsz.n, p.stsz.esize = p.n, 4
		if int64(p.n)*4 > t.stsz.size-12 {
			return nil, errorf(ErrInvalid, "stsz box: %d entries in %d bytes", p.n, t.stsz.size-12)
		}
	}
	if p.n == 0 {
		return p, nil
	}
	if !t.stts.present || !t.stsc.present {
		return nil, errorf(ErrInvalid, "incomplete sample table")
	}
	if _, err := m.openTable(&p.stts, "stts", t.stts, 8, 1); err != nil {
		return nil, err
	}
	if _, err := m.openTable(&p.stsc, "stsc", t.stsc, 12, 1); err != nil {
		return nil, err
	}
	if p.stts.n == 0 || p.stsc.n == 0 {
		return nil, errorf(ErrInvalid, "incomplete sample table")
	}
	if t.ctts.present {
		if _, err := m.openTable(&p.ctts, "ctts", t.ctts, 8, 1); err != nil {
			return nil, err
		}
	}
	switch {
	case t.stco.present:
		_, err = m.openTable(&p.chunks, "stco", t.stco, 4, 1)
	case t.co64.present:
		_, err = m.openTable(&p.chunks, "co64", t.co64, 8, 1)
	default:
		return nil, errorf(ErrInvalid, "no chunk offsets")
	}
	if err != nil {
		return nil, err
	}
	if p.sttsLeft, err = p.stts.u32(0, 0); err != nil {
		return nil, err
	}
	if p.sttsDelta, err = p.stts.u32(0, 4); err != nil {
		return nil, err
	}
	if p.ctts.n > 0 {
		if err := p.loadCtts(0); err != nil {
			return nil, err
		}
	}
	if err := p.loadStsc(0); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *progIter) loadCtts(i uint32) (err error) {
	p.cttsIdx = i
	if p.cttsLeft, err = p.ctts.u32(i, 0); err != nil {
		return err
	}
	o, err := p.ctts.u32(i, 4)
	p.cttsOff = int32(o)
	return err
}

func (p *progIter) loadStsc(i uint32) (err error) {
	p.stscIdx = i
	if p.spc, err = p.stsc.u32(i, 4); err != nil {
		return err
	}
	if p.sdi, err = p.stsc.u32(i, 8); err != nil {
		return err
	}
	p.hasNext = i+1 < p.stsc.n
	if p.hasNext {
		p.nextFirst, err = p.stsc.u32(i+1, 0)
	}
	return err
}

// maxCompositionDelay returns the largest negative composition offset of
// the track's ctts, negated (0 when there is none), reading the table once.
func (m *MP4) maxCompositionDelay(t stblTables) (int64, error) {
	if !t.ctts.present {
		return 0, nil
	}
	var c table
	if _, err := m.openTable(&c, "ctts", t.ctts, 8, 1); err != nil {
		return 0, err
	}
	var d int64
	for i := range c.n {
		o, err := c.u32(i, 4)
		if err != nil {
			return 0, err
		}
		d = max(d, -int64(int32(o)))
	}
	return d, nil
}

// next returns the decode time, composition offset, duration, sample
// description index (0-based), offset and size of the next sample.
func (p *progIter) next() (dts int64, cto int32, dur uint32, desc int, off uint64, size uint32, err error) {
	if p.i >= p.n {
		return 0, 0, 0, 0, 0, 0, io.EOF
	}
	p.i++
	// stts: skip exhausted entries; beyond the table, keep the last delta.
	for p.sttsLeft == 0 && p.sttsIdx+1 < p.stts.n {
		p.sttsIdx++
		if p.sttsLeft, err = p.stts.u32(p.sttsIdx, 0); err != nil {
			return
		}
		if p.sttsDelta, err = p.stts.u32(p.sttsIdx, 4); err != nil {
			return
		}
	}
	if p.sttsLeft > 0 {
		p.sttsLeft--
	}
	dur = p.sttsDelta
	dts = p.dts
	p.dts += int64(dur)

	// ctts: the same run-length walk; beyond the table the offset is 0.
	if p.ctts.n > 0 {
		for p.cttsLeft == 0 && p.cttsIdx+1 < p.ctts.n {
			if err = p.loadCtts(p.cttsIdx + 1); err != nil {
				return
			}
		}
		if p.cttsLeft > 0 {
			p.cttsLeft--
			cto = p.cttsOff
		}
	}

	// stsc + stco: move to the next chunk that has samples.
	for p.chunkLeft == 0 {
		if p.chunk >= p.chunks.n {
			return 0, 0, 0, 0, 0, 0, errorf(ErrInvalid, "sample %d beyond the last chunk", p.i)
		}
		p.chunk++
		for p.hasNext && p.nextFirst <= p.chunk {
			if err = p.loadStsc(p.stscIdx + 1); err != nil {
				return
			}
		}
		p.chunkLeft = p.spc
		var e []byte
		if e, err = p.chunks.entry(p.chunk - 1); err != nil {
			return
		}
		if p.chunks.esize == 8 {
			p.off = binary.BigEndian.Uint64(e)
		} else {
			p.off = uint64(binary.BigEndian.Uint32(e))
		}
	}
	p.chunkLeft--
	size = p.uniform
	if size == 0 {
		if size, err = p.stsz.u32(p.i-1, 0); err != nil {
			return
		}
	}
	off = p.off
	p.off += uint64(size)
	return dts, cto, dur, int(p.sdi) - 1, off, size, nil
}

// peek reads the next entry into e unless e already holds one; at the end
// of the table e stays empty and peek returns io.EOF.
func (p *progIter) peek(e *progEntry) error {
	if e.ok {
		return nil
	}
	dts, cto, dur, desc, off, size, err := p.next()
	if err != nil {
		return err
	}
	*e = progEntry{ok: true, dts: dts, cto: cto, dur: dur, desc: desc, off: off, size: size}
	return nil
}
