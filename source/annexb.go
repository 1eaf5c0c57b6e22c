package source

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"slices"

	"github.com/Eyevinn/mp4ff/avc"
	mcbits "github.com/bluenviron/mediacommon/v2/pkg/bits"
	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

const (
	maxNALSize       = 32 << 20 // largest NAL unit accepted from a byte stream
	maxGroupPictures = 600      // pictures buffered per IDR group when the reorder depth is unknown
	maxReorder       = 16
)

var startCode = []byte{0, 0, 1}

// AnnexB is a Source over a raw H.264 byte stream (ITU-T H.264 Annex B),
// read as a stream: it never seeks.
//
// NAL units are grouped into access units at the boundaries of H.264
// 7.4.1.2.3: an access unit delimiter, SPS, PPS or SEI after a VCL NAL unit,
// or a VCL NAL unit of a new primary picture (first_mb_in_slice == 0, or a
// slice header that differs in the fields listed in 7.4.1.2.4).
//
// Timestamps are in 90 kHz ticks. The frame rate comes from the SPS VUI
// (time_scale / (2 × num_units_in_tick)); without VUI timing
// Options.FrameRate is used, and without either NewAnnexB fails with
// [ErrNoFrameRate]. DTS advances by one frame per access unit (half a frame
// per field). PTS follows the picture order count (POC types 0 and 1; type
// 2 means output order = decode order): pictures are put in output order
// per IDR group, as a decoder does, and PTS = (output position + D) frame
// durations, where the reorder delay D is max_num_reorder_frames of the
// VUI bitstream restriction when present, else the smallest delay that
// keeps PTS ≥ DTS (grown, never shrunk, when a later group needs more).
// Memory management operation 5 (a POC reset without IDR) is not
// recognized.
type AnnexB struct {
	r    io.Reader
	opt  Options
	log  *slog.Logger
	info Info

	// NAL unit scanner.
	buf     []byte
	pos     int // start of the current NAL unit's bytes
	scan    int // where to continue looking for a start code
	started bool
	eof     bool

	// Parameter sets by ID.
	spsMP map[uint32]*avc.SPS
	spsMC map[uint32]*mch264.SPS
	ppsMP map[uint32]*avc.PPS

	// Access unit assembly.
	cur  *accessUnit
	pool []*accessUnit
	last *accessUnit // returned by the previous Next

	// Timing.
	clk      clock
	haveClk  bool
	decUnits int64 // field periods decoded
	outUnits int64 // field periods output
	delay    int64 // reorder delay D in field periods
	reorder  int   // bumping window; -1: buffer the whole IDR group
	decCount int64
	lastPOC  int64

	// POC state (H.264 8.2.1).
	prevMsb, prevLsb            int64
	prevFrameNum, prevFrameNumO int64

	queue   []*accessUnit // decode order, not yet returned
	waiting []*accessUnit // without PTS yet
	done    bool
	err     error
}

type accessUnit struct {
	data   []byte
	offs   []int // start, end pairs into data
	nalus  [][]byte
	hasVCL bool
	first  sliceInfo

	units    int64 // 2 for a frame, 1 for a field
	poc      int64
	decStart int64
	dts, pts int64
	dur      int64
	out      bool
}

func (u *accessUnit) reset() {
	u.data = u.data[:0]
	u.offs = u.offs[:0]
	u.nalus = u.nalus[:0]
	u.hasVCL = false
	u.first = sliceInfo{}
	u.out = false
}

func (u *accessUnit) add(n []byte) {
	u.offs = append(u.offs, len(u.data), len(u.data)+len(n))
	u.data = append(u.data, n...)
}

func (u *accessUnit) build() {
	u.nalus = u.nalus[:0]
	for i := 0; i+1 < len(u.offs); i += 2 {
		u.nalus = append(u.nalus, u.data[u.offs[i]:u.offs[i+1]:u.offs[i+1]])
	}
}

// sliceInfo is what is known about the first slice of a picture.
type sliceInfo struct {
	nalType     mch264.NALUType
	refIdc      byte
	firstMB     uint32
	haveFirstMB bool
	ok          bool // sh, sps, mc are set
	sh          avc.SliceHeader
	sps         *avc.SPS
	mc          *mch264.SPS
}

// NewAnnexB returns a Source over the H.264 byte stream r. It reads up to
// the end of the first access unit, to learn the parameter sets and the
// timing.
func NewAnnexB(r io.Reader, opt Options) (*AnnexB, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil reader", ErrInvalid)
	}
	a := &AnnexB{
		r:       r,
		opt:     opt,
		log:     opt.logger(),
		buf:     make([]byte, 0, 64<<10),
		spsMP:   map[uint32]*avc.SPS{},
		spsMC:   map[uint32]*mch264.SPS{},
		ppsMP:   map[uint32]*avc.PPS{},
		reorder: -1,
		info:    Info{Format: FormatAnnexB, Timescale: timeline.MPEGClock},
	}
	a.cur = a.newAU()
	for len(a.queue) == 0 && !a.done {
		if err := a.step(); err != nil {
			return nil, fmt.Errorf("source: h264: %w", err)
		}
	}
	return a, nil
}

// Info describes the stream: 90 kHz, the first SPS and PPS.
func (a *AnnexB) Info() Info { return a.info }

// Next returns the next access unit in decode order, or io.EOF.
func (a *AnnexB) Next() (chunker.Sample, error) {
	if a.last != nil {
		a.last.reset()
		a.pool = append(a.pool, a.last)
		a.last = nil
	}
	for {
		if len(a.queue) > 0 && a.queue[0].out {
			u := a.queue[0]
			a.queue[0] = nil
			a.queue = a.queue[1:]
			a.last = u
			return chunker.Sample{DTS: u.dts, PTS: u.pts, Duration: u.dur, NALUs: u.nalus}, nil
		}
		if a.err != nil {
			return chunker.Sample{}, a.err
		}
		if a.done {
			a.err = io.EOF
			continue
		}
		if err := a.step(); err != nil {
			a.err = fmt.Errorf("source: h264: %w", err)
		}
	}
}

// NextPacket returns the next access unit as a video Packet (raw H.264
// has no audio), or io.EOF.
func (a *AnnexB) NextPacket() (Packet, error) {
	s, err := a.Next()
	return Packet{Kind: KindVideo, Video: s}, err
}

// step consumes one NAL unit (or the end of input).
func (a *AnnexB) step() error {
	nal, err := a.nextNAL()
	if err == io.EOF {
		if a.cur.hasVCL {
			if err := a.finish(); err != nil {
				return err
			}
		}
		a.flushGroup()
		a.done = true
		return nil
	}
	if err != nil {
		return err
	}
	return a.addNAL(nal)
}

func (a *AnnexB) newAU() *accessUnit {
	if n := len(a.pool); n > 0 {
		u := a.pool[n-1]
		a.pool = a.pool[:n-1]
		return u
	}
	return &accessUnit{}
}

// nextNAL returns the next NAL unit of the byte stream without start code
// and trailing zero bytes. It aliases a.buf until the next call.
func (a *AnnexB) nextNAL() ([]byte, error) {
	for !a.started {
		i := 0
		for i < len(a.buf) && a.buf[i] == 0 {
			i++
		}
		if i < len(a.buf) {
			if i < 2 || a.buf[i] != 1 {
				return nil, errorf(ErrInvalid, "byte stream does not begin with a start code")
			}
			a.pos, a.scan, a.started = i+1, i+1, true
			break
		}
		if a.eof {
			return nil, io.EOF
		}
		if err := a.more(); err != nil {
			return nil, err
		}
	}
	for {
		if i := bytes.Index(a.buf[a.scan:], startCode); i >= 0 {
			end := a.scan + i
			nal := trimZeros(a.buf[a.pos:end])
			a.pos, a.scan = end+3, end+3
			if len(nal) == 0 {
				continue
			}
			return nal, nil
		}
		if a.eof {
			nal := trimZeros(a.buf[a.pos:])
			a.pos, a.scan = len(a.buf), len(a.buf)
			if len(nal) == 0 {
				return nil, io.EOF
			}
			return nal, nil
		}
		a.scan = max(a.pos, len(a.buf)-2)
		if err := a.more(); err != nil {
			return nil, err
		}
	}
}

func trimZeros(b []byte) []byte {
	e := len(b)
	for e > 0 && b[e-1] == 0 {
		e--
	}
	return b[:e]
}

// more reads more input into a.buf, discarding consumed bytes.
func (a *AnnexB) more() error {
	if a.pos > 0 {
		n := copy(a.buf, a.buf[a.pos:])
		a.buf = a.buf[:n]
		a.scan -= a.pos
		a.pos = 0
	}
	if len(a.buf) == cap(a.buf) {
		if len(a.buf) >= maxNALSize {
			return errorf(ErrUnsupported, "NAL unit larger than %d bytes", maxNALSize)
		}
		a.buf = slices.Grow(a.buf, len(a.buf))
	}
	n, err := a.r.Read(a.buf[len(a.buf):cap(a.buf)])
	a.buf = a.buf[:len(a.buf)+n]
	if err == io.EOF {
		a.eof = true
		return nil
	}
	if err != nil {
		return err
	}
	return nil
}

// addNAL adds a NAL unit to the access unit being assembled, finishing the
// previous access unit first when this NAL unit starts a new one.
func (a *AnnexB) addNAL(nal []byte) error {
	t := mch264.NALUType(nal[0] & 0x1f)
	switch {
	case t == mch264.NALUTypeAccessUnitDelimiter || t == mch264.NALUTypeSPS || t == mch264.NALUTypePPS ||
		t == mch264.NALUTypeSEI || (t >= mch264.NALUTypePrefix && t <= mch264.NALUTypeReserved18):
		if a.cur.hasVCL {
			if err := a.finish(); err != nil {
				return err
			}
		}
		switch t {
		case mch264.NALUTypeSPS:
			a.parseSPS(nal)
		case mch264.NALUTypePPS:
			a.parsePPS(nal)
		}
	case t == mch264.NALUTypeNonIDR || t == mch264.NALUTypeDataPartitionA || t == mch264.NALUTypeIDR:
		si := a.parseSlice(nal)
		if a.cur.hasVCL && newPicture(&a.cur.first, &si) {
			if err := a.finish(); err != nil {
				return err
			}
		}
		if !a.cur.hasVCL {
			a.cur.first = si
			a.cur.hasVCL = true
		}
	}
	a.cur.add(nal)
	return nil
}

func (a *AnnexB) parseSPS(nal []byte) {
	var mc mch264.SPS
	var mp *avc.SPS
	err := func() (err error) {
		defer recoverInvalid(&err, "SPS")
		if err := mc.Unmarshal(nal); err != nil {
			return err
		}
		mp, err = avc.ParseSPSNALUnit(nal, false)
		return err
	}()
	if err != nil {
		a.log.Warn("h264: ignoring SPS", "err", err)
		return
	}
	a.spsMC[mc.ID] = &mc
	a.spsMP[mp.ParameterID] = mp
	if a.info.SPS == nil {
		a.info.SPS = [][]byte{bytes.Clone(nal)}
		a.info.Width, a.info.Height = mc.Width(), mc.Height()
	}
}

func (a *AnnexB) parsePPS(nal []byte) {
	var pps *avc.PPS
	err := func() (err error) {
		defer recoverInvalid(&err, "PPS")
		pps, err = avc.ParsePPSNALUnit(nal, a.spsMP)
		return err
	}()
	if err != nil {
		a.log.Warn("h264: ignoring PPS", "err", err)
		return
	}
	a.ppsMP[pps.PicParameterSetID] = pps
	if a.info.PPS == nil {
		a.info.PPS = [][]byte{bytes.Clone(nal)}
	}
}

func (a *AnnexB) parseSlice(nal []byte) (si sliceInfo) {
	si.nalType = mch264.NALUType(nal[0] & 0x1f)
	si.refIdc = (nal[0] >> 5) & 3
	if len(nal) > 1 {
		rbsp := mch264.EmulationPreventionRemove(nal[1:min(len(nal), 8)])
		p := 0
		if v, err := mcbits.ReadGolombUnsigned(rbsp, &p); err == nil {
			si.firstMB, si.haveFirstMB = v, true
		}
	}
	func() {
		defer func() { _ = recover() }()
		sh, err := avc.ParseSliceHeader(nal, a.spsMP, a.ppsMP)
		if err != nil || sh == nil {
			return
		}
		pps := a.ppsMP[sh.PicParamID]
		sps := a.spsMP[pps.SeqParameterSetID]
		mc := a.spsMC[pps.SeqParameterSetID]
		if sps == nil || mc == nil || mc.PicOrderCntType != uint32(sps.PicOrderCntType) {
			return
		}
		si.sh, si.sps, si.mc, si.ok = *sh, sps, mc, true
		si.firstMB, si.haveFirstMB = sh.FirstMBInSlice, true
	}()
	return si
}

// newPicture reports whether slice cur starts a new primary coded picture
// after a picture whose first slice is prev (H.264 7.4.1.2.4).
func newPicture(prev, cur *sliceInfo) bool {
	if cur.ok && cur.sh.RedundantPicCnt > 0 {
		return false
	}
	if cur.haveFirstMB && cur.firstMB == 0 {
		return true
	}
	if !prev.ok || !cur.ok {
		return false
	}
	p, c := &prev.sh, &cur.sh
	switch {
	case p.FrameNum != c.FrameNum, p.PicParamID != c.PicParamID,
		p.FieldPicFlag != c.FieldPicFlag, p.BottomFieldFlag != c.BottomFieldFlag,
		(prev.refIdc == 0) != (cur.refIdc == 0),
		(prev.nalType == mch264.NALUTypeIDR) != (cur.nalType == mch264.NALUTypeIDR),
		prev.nalType == mch264.NALUTypeIDR && p.IDRPicID != c.IDRPicID:
		return true
	}
	switch cur.sps.PicOrderCntType {
	case 0:
		return p.PicOrderCntLsb != c.PicOrderCntLsb || p.DeltaPicOrderCntBottom != c.DeltaPicOrderCntBottom
	case 1:
		return p.DeltaPicOrderCnt != c.DeltaPicOrderCnt
	}
	return false
}

// finish ends the access unit being assembled: it gets its DTS and POC and
// joins the reorder buffer.
func (a *AnnexB) finish() error {
	u := a.cur
	a.cur = a.newAU()
	u.build()
	si := &u.first
	u.units = 2
	if si.ok && si.sh.FieldPicFlag {
		u.units = 1
	}
	if !si.ok && !a.haveClk {
		// Before the first parsable slice (no SPS/PPS yet) pictures
		// cannot be decoded or timed: drop them.
		a.log.Debug("h264: dropping access unit before the first parameter sets")
		u.reset()
		a.pool = append(a.pool, u)
		return nil
	}
	if si.ok && (si.nalType == mch264.NALUTypeIDR || !a.haveClk) {
		a.flushGroup()
		a.startGroup(si)
		if !a.haveClk {
			return ErrNoFrameRate
		}
	}
	u.dts = a.clk.at(a.decUnits)
	u.dur = a.clk.at(a.decUnits+u.units) - u.dts
	u.decStart = a.decUnits
	a.decUnits += u.units
	a.decCount++
	a.queue = append(a.queue, u)
	if si.ok {
		u.poc = a.pictureOrderCount(si)
	} else {
		u.poc = a.lastPOC // a damaged slice header: keep it after its predecessor
	}
	a.lastPOC = u.poc
	a.waiting = append(a.waiting, u)
	if a.reorder < 0 && len(a.waiting) > maxGroupPictures {
		a.log.Warn("h264: IDR group too long to buffer; assuming 16 reorder frames", "pictures", len(a.waiting))
		a.reorder = maxReorder
		a.delay = max(a.delay, 2*maxReorder)
	}
	for a.reorder >= 0 && len(a.waiting) > a.reorder {
		i := 0
		for j, w := range a.waiting {
			if w.poc < a.waiting[i].poc {
				i = j
			}
		}
		w := a.waiting[i]
		a.waiting = slices.Delete(a.waiting, i, i+1)
		a.output(w)
	}
	return nil
}

// startGroup sets the reorder window and the clock at an IDR picture (or
// at the first picture).
func (a *AnnexB) startGroup(si *sliceInfo) {
	mc := si.mc
	vui := mc.VUI
	if a.opt.ignoreVUI {
		vui = nil
	}
	num, den, ok := uint64(0), uint64(0), false
	if vui != nil && vui.TimingInfo != nil {
		ti := vui.TimingInfo
		// one field period = num_units_in_tick / time_scale seconds
		num, den = timeline.MPEGClock*uint64(ti.NumUnitsInTick), uint64(ti.TimeScale)
		ok = ti.NumUnitsInTick > 0 && ti.TimeScale > 0 && num >= den && num/den < timeline.MPEGClock*60
	}
	if !ok && a.opt.FrameRate > 0 && !math.IsInf(a.opt.FrameRate, 0) && a.opt.FrameRate <= 1000 {
		p, q := rateFraction(a.opt.FrameRate)
		num, den, ok = timeline.MPEGClock*q, 2*p, p > 0
	}
	if ok {
		g := gcd(num, den)
		num, den = num/g, den/g
		if !a.haveClk {
			a.clk = clock{num: num, den: den}
			a.haveClk = true
		} else if num != a.clk.num || den != a.clk.den {
			a.clk = clock{base: a.clk.at(a.decUnits), u0: a.decUnits, num: num, den: den}
		}
	}
	switch {
	case vui != nil && vui.BitstreamRestriction != nil:
		a.reorder = int(min(vui.BitstreamRestriction.MaxNumReorderFrames, maxReorder))
		a.delay = max(a.delay, 2*int64(a.reorder))
	case mc.PicOrderCntType == 2 || mc.ProfileIdc == 66:
		a.reorder = 0 // output order is decode order
	default:
		a.reorder = -1
	}
}

// flushGroup outputs all waiting pictures in POC order.
func (a *AnnexB) flushGroup() {
	if len(a.waiting) == 0 {
		return
	}
	slices.SortStableFunc(a.waiting, func(x, y *accessUnit) int {
		switch {
		case x.poc < y.poc:
			return -1
		case x.poc > y.poc:
			return 1
		}
		return 0
	})
	pos, need := a.outUnits, a.delay
	for _, w := range a.waiting {
		need = max(need, w.decStart-pos)
		pos += w.units
	}
	if need > a.delay {
		if a.outUnits > 0 {
			a.log.Warn("h264: reorder delay grows", "frames", float64(need)/2)
		}
		a.delay = need
	}
	for _, w := range a.waiting {
		a.output(w)
	}
	a.waiting = a.waiting[:0]
}

// output gives u the next presentation position.
func (a *AnnexB) output(u *accessUnit) {
	pos := a.outUnits
	if u.decStart-pos > a.delay {
		a.log.Warn("h264: reorder delay grows", "frames", float64(u.decStart-pos)/2)
		a.delay = u.decStart - pos
	}
	u.pts = a.clk.at(pos + a.delay)
	a.outUnits += u.units
	u.out = true
}

// pictureOrderCount computes the POC of a picture from its first slice
// (H.264 8.2.1), updating the state kept between pictures.
func (a *AnnexB) pictureOrderCount(si *sliceInfo) int64 {
	sh, sps, mc := &si.sh, si.sps, si.mc
	idr := si.nalType == mch264.NALUTypeIDR
	switch sps.PicOrderCntType {
	case 0:
		maxLsb := int64(1) << min(sps.Log2MaxPicOrderCntLsbMinus4+4, 32)
		if idr {
			a.prevMsb, a.prevLsb = 0, 0
		}
		lsb := int64(sh.PicOrderCntLsb)
		msb := a.prevMsb
		switch {
		case lsb < a.prevLsb && a.prevLsb-lsb >= maxLsb/2:
			msb += maxLsb
		case lsb > a.prevLsb && lsb-a.prevLsb > maxLsb/2:
			msb -= maxLsb
		}
		if si.refIdc != 0 {
			a.prevMsb, a.prevLsb = msb, lsb
		}
		top := msb + lsb
		if sh.FieldPicFlag {
			return top // top or bottom field: both are msb + lsb
		}
		return min(top, top+int64(sh.DeltaPicOrderCntBottom))
	case 1:
		maxFrameNum := int64(1) << min(sps.Log2MaxFrameNumMinus4+4, 32)
		frameNum := int64(sh.FrameNum)
		off := a.prevFrameNumO
		switch {
		case idr:
			off = 0
		case a.prevFrameNum > frameNum:
			off += maxFrameNum
		}
		a.prevFrameNum, a.prevFrameNumO = frameNum, off
		n := int64(len(mc.OffsetForRefFrames))
		abs := int64(0)
		if n != 0 {
			abs = off + frameNum
		}
		if si.refIdc == 0 && abs > 0 {
			abs--
		}
		expected := int64(0)
		if abs > 0 {
			var cycle int64
			for _, o := range mc.OffsetForRefFrames {
				cycle += int64(o)
			}
			expected = (abs - 1) / n * cycle
			for i := int64(0); i <= (abs-1)%n; i++ {
				expected += int64(mc.OffsetForRefFrames[i])
			}
		}
		if si.refIdc == 0 {
			expected += int64(mc.OffsetForNonRefPic)
		}
		switch {
		case !sh.FieldPicFlag:
			top := expected + int64(sh.DeltaPicOrderCnt[0])
			return min(top, top+int64(mc.OffsetForTopToBottomField)+int64(sh.DeltaPicOrderCnt[1]))
		case !sh.BottomFieldFlag:
			return expected + int64(sh.DeltaPicOrderCnt[0])
		default:
			return expected + int64(mc.OffsetForTopToBottomField) + int64(sh.DeltaPicOrderCnt[0])
		}
	}
	return a.decCount // type 2: output order is decode order
}

// clock maps field periods to 90 kHz ticks: base + (u-u0)·num/den.
type clock struct {
	base, u0 int64
	num, den uint64
}

func (c clock) at(u int64) int64 {
	d := u - c.u0
	neg := d < 0
	if neg {
		d = -d
	}
	q, r := uint64(d)/c.den, uint64(d)%c.den
	hi, lo := bits.Mul64(r, c.num)
	frac, _ := bits.Div64(hi, lo, c.den) // hi < den because r < den
	t := int64(q*c.num + frac)
	if neg {
		t = -t
	}
	return c.base + t
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	if a == 0 {
		return 1
	}
	return a
}

// rateFraction returns p/q ≈ fps, recognizing the NTSC rates N·1000/1001.
func rateFraction(fps float64) (p, q uint64) {
	if n := math.Round(fps * 1001); n > 0 && math.Abs(fps*1001-n) < 1e-3 && uint64(n)%1000 == 0 && math.Abs(fps-math.Round(fps)) > 1e-6 {
		return uint64(n), 1001
	}
	if math.Abs(fps-math.Round(fps)) < 1e-9 {
		return uint64(math.Round(fps)), 1
	}
	return uint64(math.Round(fps * 1000)), 1000
}
