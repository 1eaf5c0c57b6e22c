package stitch

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// selection is the part of the joined stream that is written: samples
// [a, b) in decode order, and the edit that presents them.
type selection struct {
	a, b      int
	dtsA      int64 // DTS of sample a, ticks after samples[0]
	mediaTime int64 // elst media_time: where presentation starts, in output media ticks
	editDur   int64 // elst segment_duration, ticks
	ctoShift  int64 // added to every composition offset so that none is negative
	keyframes int
}

// selectRange chooses the samples for presentation range [from, to) of
// the joined stream (to == 0: to the end), starting at the keyframe at or
// before from.
func (ix *index) selectRange(from, to time.Duration) (selection, error) {
	var sel selection
	if from < 0 || to < 0 || (to > 0 && to <= from) {
		return sel, fmt.Errorf("%w: [%v, %v)", ErrEmptyRange, from, to)
	}
	fromT := ix.origin + durationToTicks(from, ix.timescale)
	toT := int64(math.MaxInt64)
	if to > 0 {
		toT = ix.origin + durationToTicks(to, ix.timescale)
	}
	// a: the last keyframe presented at or before fromT.
	// b: one after the last sample presented before toT.
	// shown: the PTS of the picture presented at fromT.
	var dts int64
	sel.a, sel.b = 0, 0
	dtsA := int64(0)
	shown := int64(math.MinInt64)
	for i := range ix.samples {
		s := &ix.samples[i]
		pts := dts + int64(s.cto)
		if s.sync && pts <= fromT {
			sel.a, dtsA = i, dts
		}
		if pts <= fromT {
			shown = max(shown, pts)
		}
		if pts < toT {
			sel.b = i + 1
		}
		dts += int64(s.dur)
	}
	if sel.b <= sel.a {
		return sel, fmt.Errorf("%w: [%v, %v) holds no picture", ErrEmptyRange, from, to)
	}
	reqFrom := fromT
	if from > 0 && shown > ix.origin {
		// Start with the whole picture presented at From: players
		// (ffmpeg) drop a picture that begins before the edit.
		fromT = shown
	}
	sel.dtsA = dtsA
	// Presentation end, composition offsets, keyframes of the selection.
	minCTO := int64(math.MaxInt64)
	presEnd := int64(math.MinInt64)
	dts = dtsA
	for i := sel.a; i < sel.b; i++ {
		s := &ix.samples[i]
		pts := dts + int64(s.cto)
		presEnd = max(presEnd, pts+int64(s.dur))
		minCTO = min(minCTO, int64(s.cto))
		if s.sync {
			sel.keyframes++
		}
		dts += int64(s.dur)
	}
	sel.ctoShift = max(0, -minCTO)
	start := max(fromT, dtsA-sel.ctoShift)
	end := min(toT, presEnd)
	if end <= start || end <= reqFrom {
		return sel, fmt.Errorf("%w: [%v, %v) starts after the end (%v)", ErrEmptyRange, from, to,
			ticksToDuration(presEnd-ix.origin, ix.timescale))
	}
	sel.mediaTime = start - dtsA + sel.ctoShift
	sel.editDur = end - start
	return sel, nil
}

// chunk is one run of samples of the output that share a sample
// description and sit back to back in the mdat.
type chunk struct {
	n    uint32
	desc uint16
	size int64
}

// chunks lists the output chunks of the selection: one per input part
// (and per sample description within it).
func (ix *index) chunks(sel selection) []chunk {
	var out []chunk
	for pi := range ix.parts {
		p := &ix.parts[pi]
		lo, hi := max(sel.a, p.first), min(sel.b, p.first+p.n)
		for i := lo; i < hi; i++ {
			s := &ix.samples[i]
			if i == lo || out[len(out)-1].desc != s.desc {
				out = append(out, chunk{desc: s.desc})
			}
			c := &out[len(out)-1]
			c.n++
			c.size += int64(s.size)
		}
	}
	return out
}

// header is the beginning of the output file: ftyp, moov and the mdat
// box header. payload is the number of sample bytes that follow.
type header struct {
	data    []byte
	payload int64
	co64    bool
	descs   int
}

// buildHeader builds ftyp + moov + mdat header for the selection. Chunk
// offsets are 32-bit (stco) unless a chunk starts beyond 4 GiB (co64); the
// mdat header has a 64-bit size when the payload needs it.
func (ix *index) buildHeader(sel selection) (h header, err error) {
	defer guard(&err, "building moov")
	chunks := ix.chunks(sel)
	for _, c := range chunks {
		h.payload += c.size
	}
	ftyp := mp4.NewFtyp("isom", 0x200, []string{"isom", "iso2", "avc1", "mp41"})
	mdatHdr := uint64(8)
	if uint64(h.payload)+8 > math.MaxUint32 {
		mdatHdr = 16
	}
	lastChunk := int64(0)
	if len(chunks) > 0 {
		lastChunk = chunks[len(chunks)-1].size
	}
	var moov *mp4.MoovBox
	var offsets []uint64
	for _, co64 := range []bool{false, true} {
		offsets = offsets[:0]
		moov, err = ix.buildMoov(sel, chunks, co64, &h.descs)
		if err != nil {
			return h, err
		}
		base := ftyp.Size() + moov.Size() + mdatHdr
		if !co64 && base+uint64(h.payload-lastChunk) > math.MaxUint32 {
			continue // the last chunk would start beyond 4 GiB
		}
		h.co64 = co64
		off := base
		for _, c := range chunks {
			offsets = append(offsets, off)
			off += uint64(c.size)
		}
		break
	}
	stbl := moov.Trak.Mdia.Minf.Stbl
	if h.co64 {
		stbl.Co64.ChunkOffset = offsets
	} else {
		for i, o := range offsets {
			stbl.Stco.ChunkOffset[i] = uint32(o)
		}
	}
	var b bytes.Buffer
	b.Grow(int(ftyp.Size() + moov.Size() + mdatHdr))
	if err := ftyp.Encode(&b); err != nil {
		return h, err
	}
	if err := moov.Encode(&b); err != nil {
		return h, err
	}
	if err := mp4.EncodeHeaderWithSize("mdat", uint64(h.payload)+mdatHdr, mdatHdr == 16, &b); err != nil {
		return h, err
	}
	h.data = b.Bytes()
	return h, nil
}

// buildMoov builds the moov box; chunk offsets are left zero.
func (ix *index) buildMoov(sel selection, chunks []chunk, co64 bool, ndesc *int) (*mp4.MoovBox, error) {
	ts := ix.timescale
	samples := ix.samples[sel.a:sel.b]

	// Sample descriptions in order of first use.
	used := map[uint16]uint32{}
	stsd := mp4.NewStsdBox()
	var first *desc
	for _, c := range chunks {
		if _, ok := used[c.desc]; !ok {
			d := ix.descs[c.desc]
			if first == nil {
				first = d
			}
			stsd.AddChild(d.entry)
			used[c.desc] = uint32(len(used) + 1)
		}
	}
	*ndesc = len(used)
	if len(used) > 1 {
		// With several sample descriptions of different picture sizes,
		// ffmpeg (and Chromium, which demuxes MP4 with it) derives a
		// pixel aspect ratio from the tkhd size and the last entry's size
		// unless the entries carry a pasp box: give each entry a square
		// pixel one unless it has its own.
		for _, e := range stsd.Children {
			if v, ok := e.(*mp4.VisualSampleEntryBox); ok && v.Pasp == nil {
				v.AddChild(&mp4.PaspBox{HSpacing: 1, VSpacing: 1})
			}
		}
	}

	stts := &mp4.SttsBox{}
	var mediaDur uint64
	ctts := &mp4.CttsBox{EndSampleNr: []uint32{0}}
	nonZeroCTO := false
	stss := &mp4.StssBox{}
	sizes := make([]uint32, len(samples))
	for i := range samples {
		s := &samples[i]
		sizes[i] = s.size
		mediaDur += uint64(s.dur)
		if n := len(stts.SampleCount); n > 0 && stts.SampleTimeDelta[n-1] == s.dur {
			stts.SampleCount[n-1]++
		} else {
			stts.SampleCount = append(stts.SampleCount, 1)
			stts.SampleTimeDelta = append(stts.SampleTimeDelta, s.dur)
		}
		c := int64(s.cto) + sel.ctoShift
		if c > math.MaxInt32 {
			return nil, errorf(ErrInvalid, "composition offset %d out of range", c)
		}
		if c != 0 {
			nonZeroCTO = true
		}
		if n := len(ctts.SampleOffset); n > 0 && ctts.SampleOffset[n-1] == int32(c) {
			ctts.EndSampleNr[n]++
		} else {
			ctts.SampleOffset = append(ctts.SampleOffset, int32(c))
			ctts.EndSampleNr = append(ctts.EndSampleNr, uint32(i+1))
		}
		if s.sync {
			stss.SampleNumber = append(stss.SampleNumber, uint32(i+1))
		}
	}
	stsc := &mp4.StscBox{}
	for i, c := range chunks {
		if i == 0 || chunks[i-1].n != c.n || chunks[i-1].desc != c.desc {
			if err := stsc.AddEntry(uint32(i+1), c.n, used[c.desc]); err != nil {
				return nil, err
			}
		}
	}

	stbl := mp4.NewStblBox()
	stbl.AddChild(stsd)
	stbl.AddChild(stts)
	if len(stss.SampleNumber) < len(samples) {
		stbl.AddChild(stss)
	}
	if nonZeroCTO {
		stbl.AddChild(ctts)
	}
	stbl.AddChild(stsc)
	stbl.AddChild(&mp4.StszBox{SampleNumber: uint32(len(sizes)), SampleSize: sizes})
	if co64 {
		stbl.AddChild(&mp4.Co64Box{ChunkOffset: make([]uint64, len(chunks))})
	} else {
		stbl.AddChild(&mp4.StcoBox{ChunkOffset: make([]uint32, len(chunks))})
	}

	minf := mp4.NewMinfBox()
	minf.AddChild(mp4.CreateVmhd())
	dinf := &mp4.DinfBox{}
	dinf.AddChild(mp4.CreateDref())
	minf.AddChild(dinf)
	minf.AddChild(stbl)

	mdhd := &mp4.MdhdBox{Timescale: ts, Duration: mediaDur}
	if mediaDur > math.MaxUint32 {
		mdhd.Version = 1
	}
	mdhd.SetLanguage("und")
	hdlr, err := mp4.CreateHdlr("video")
	if err != nil {
		return nil, err
	}
	mdia := mp4.NewMdiaBox()
	mdia.AddChild(mdhd)
	mdia.AddChild(hdlr)
	mdia.AddChild(minf)

	editDur := uint64(sel.editDur)
	elst := &mp4.ElstBox{Entries: []mp4.ElstEntry{{SegmentDuration: editDur, MediaTime: sel.mediaTime, MediaRateInteger: 1}}}
	if editDur > math.MaxUint32 || sel.mediaTime > math.MaxInt32 {
		elst.Version = 1
	}
	edts := &mp4.EdtsBox{}
	edts.AddChild(elst)
	edts.Elst = []*mp4.ElstBox{elst}

	tkhd := mp4.CreateTkhd()
	tkhd.Flags = 3 // enabled, in movie
	tkhd.TrackID = 1
	tkhd.Duration = editDur
	if editDur > math.MaxUint32 {
		tkhd.Version = 1
	}
	if first != nil {
		tkhd.Width = mp4.Fixed32(first.width << 16)
		tkhd.Height = mp4.Fixed32(first.height << 16)
	}
	trak := mp4.NewTrakBox()
	trak.AddChild(tkhd)
	trak.AddChild(edts)
	trak.AddChild(mdia)

	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = ts
	mvhd.Duration = editDur
	mvhd.NextTrackID = 2
	if editDur > math.MaxUint32 {
		mvhd.Version = 1
	}
	moov := mp4.NewMoovBox()
	moov.AddChild(mvhd)
	moov.AddChild(trak)
	return moov, nil
}
