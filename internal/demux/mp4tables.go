package demux

import (
	"encoding/binary"
	"io"
)

// tableWindow is the size of the reads of a table: 1,024 stsz entries. (A
// variable so that the tests can make windows of a few entries.)
var tableWindow = 4 << 10

// table is one sample table in the input, read entry by entry through a
// window of tableWindow bytes. Access is sequential in practice; any
// entry can be read.
type table struct {
	r     io.ReaderAt
	name  string
	off   int64  // input offset of entry 0
	n     uint32 // number of entries
	esize uint32 // bytes per entry
	buf   []byte
	lo    uint32 // index of buf's first entry
	hi    uint32 // one past the index of its last
}

// open reads the header of a table box: version and flags, then extra
// 32-bit fields (the last of which is the entry count), and checks that
// its entries fit in the box. It returns the extra fields.
func (t *table) open(r io.ReaderAt, name string, b body, esize uint32, extra int) ([]uint32, error) {
	var hb [12]byte
	hlen := int64(4 + 4*extra)
	if b.size < hlen {
		return nil, errorf(ErrInvalid, "%s box of %d bytes", name, b.size)
	}
	if err := readFull(r, hb[:hlen], b.off, name+" box"); err != nil {
		return nil, err
	}
	fields := make([]uint32, extra)
	for i := range fields {
		fields[i] = binary.BigEndian.Uint32(hb[4+4*i:])
	}
	*t = table{r: r, name: name, off: b.off + hlen, esize: esize}
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
		if err := readFull(t.r, b, t.off+int64(i)*int64(t.esize), t.name+" box"); err != nil {
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

// Sample is one sample of a progressive track, as its tables list it.
type Sample struct {
	DTS  int64  // decode time in the track's timescale, from 0 (no edit list applied)
	CTO  int32  // composition offset: PTS - DTS
	Dur  uint32 // duration (stts)
	Desc int    // 0-based index of its sample description
	Off  uint64 // offset of its data in the input
	Size uint32
	Sync bool // a sync sample (stss; every sample when there is none)
}

// Samples walks the sample tables of a progressive track, one sample at a
// time, in O(1) per sample and constant memory (see Track.Samples).
type Samples struct {
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

	stss     table  // the sync samples, when hasStss
	hasStss  bool   // (without stss every sample is one)
	stssIdx  uint32 // the next entry to compare
	nextSync uint32 // its sample number
	stssEnd  bool   // past the last entry
}

// newSamples opens the sample tables t in r.
func newSamples(r io.ReaderAt, t tables) (*Samples, error) {
	p := &Samples{}
	if !t.stsz.present {
		return nil, errorf(ErrUnsupported, "no stsz box (compact sample sizes?)")
	}
	f, err := p.stsz.open(r, "stsz", t.stsz, 0, 2)
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
	if _, err := p.stts.open(r, "stts", t.stts, 8, 1); err != nil {
		return nil, err
	}
	if _, err := p.stsc.open(r, "stsc", t.stsc, 12, 1); err != nil {
		return nil, err
	}
	if p.stts.n == 0 || p.stsc.n == 0 {
		return nil, errorf(ErrInvalid, "incomplete sample table")
	}
	if t.ctts.present {
		if _, err := p.ctts.open(r, "ctts", t.ctts, 8, 1); err != nil {
			return nil, err
		}
	}
	if t.stss.present {
		if _, err := p.stss.open(r, "stss", t.stss, 4, 1); err != nil {
			return nil, err
		}
		p.hasStss = true
		if err := p.loadStss(0); err != nil {
			return nil, err
		}
	}
	switch {
	case t.stco.present:
		_, err = p.chunks.open(r, "stco", t.stco, 4, 1)
	case t.co64.present:
		_, err = p.chunks.open(r, "co64", t.co64, 8, 1)
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

// Len returns the number of samples of the track.
func (p *Samples) Len() uint32 { return p.n }

func (p *Samples) loadCtts(i uint32) (err error) {
	p.cttsIdx = i
	if p.cttsLeft, err = p.ctts.u32(i, 0); err != nil {
		return err
	}
	o, err := p.ctts.u32(i, 4)
	p.cttsOff = int32(o)
	return err
}

func (p *Samples) loadStsc(i uint32) (err error) {
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

// loadStss reads stss entry i into nextSync.
func (p *Samples) loadStss(i uint32) (err error) {
	p.stssIdx, p.stssEnd = i, i >= p.stss.n
	if !p.stssEnd {
		p.nextSync, err = p.stss.u32(i, 0)
	}
	return err
}

// Next fills s with the next sample; after the last it returns io.EOF.
func (p *Samples) Next(s *Sample) (err error) {
	if p.i >= p.n {
		return io.EOF
	}
	p.i++
	// stts: skip exhausted entries; beyond the table, keep the last delta.
	for p.sttsLeft == 0 && p.sttsIdx+1 < p.stts.n {
		p.sttsIdx++
		if p.sttsLeft, err = p.stts.u32(p.sttsIdx, 0); err != nil {
			return err
		}
		if p.sttsDelta, err = p.stts.u32(p.sttsIdx, 4); err != nil {
			return err
		}
	}
	if p.sttsLeft > 0 {
		p.sttsLeft--
	}
	s.Dur = p.sttsDelta
	s.DTS = p.dts
	p.dts += int64(s.Dur)

	// ctts: the same run-length walk; beyond the table the offset is 0.
	s.CTO = 0
	if p.ctts.n > 0 {
		for p.cttsLeft == 0 && p.cttsIdx+1 < p.ctts.n {
			if err = p.loadCtts(p.cttsIdx + 1); err != nil {
				return err
			}
		}
		if p.cttsLeft > 0 {
			p.cttsLeft--
			s.CTO = p.cttsOff
		}
	}

	// stss: sample numbers in increasing order.
	s.Sync = true
	if p.hasStss {
		for !p.stssEnd && p.nextSync < p.i {
			if err = p.loadStss(p.stssIdx + 1); err != nil {
				return err
			}
		}
		s.Sync = !p.stssEnd && p.nextSync == p.i
	}

	// stsc + stco: move to the next chunk that has samples.
	for p.chunkLeft == 0 {
		if p.chunk >= p.chunks.n {
			return errorf(ErrInvalid, "sample %d beyond the last chunk", p.i)
		}
		p.chunk++
		for p.hasNext && p.nextFirst <= p.chunk {
			if err = p.loadStsc(p.stscIdx + 1); err != nil {
				return err
			}
		}
		p.chunkLeft = p.spc
		var e []byte
		if e, err = p.chunks.entry(p.chunk - 1); err != nil {
			return err
		}
		if p.chunks.esize == 8 {
			p.off = binary.BigEndian.Uint64(e)
		} else {
			p.off = uint64(binary.BigEndian.Uint32(e))
		}
	}
	p.chunkLeft--
	s.Size = p.uniform
	if s.Size == 0 {
		if s.Size, err = p.stsz.u32(p.i-1, 0); err != nil {
			return err
		}
	}
	s.Off = p.off
	s.Desc = int(p.sdi) - 1
	p.off += uint64(s.Size)
	return nil
}

// maxCompositionDelay returns the largest negative composition offset of
// the ctts t in r, negated (0 when there is none), reading the table once.
func maxCompositionDelay(r io.ReaderAt, t tables) (int64, error) {
	if !t.ctts.present {
		return 0, nil
	}
	var c table
	if _, err := c.open(r, "ctts", t.ctts, 8, 1); err != nil {
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
