package stitch

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/livechunk/livechunk/internal/timeline"
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
	start     int64 // presentation start and end, ticks after samples[0]'s DTS
	end       int64

	// The movie: its timescale and duration, the empty edit before the
	// video (when the audio starts first), and the audio.
	movieTS  uint32
	movieDur int64
	vEmpty   int64
	aEmpty   int64           // movie ticks of empty edit before the audio
	audio    *audioSelection // nil: no audio track
}

// selectRange chooses the samples for presentation range [from, to) of
// the joined stream (to == 0: to the end), starting at the keyframe at or
// before from.
func (ix *index) selectRange(from, to time.Duration) (selection, error) {
	var sel selection
	if from < 0 || to < 0 || (to > 0 && to <= from) {
		return sel, fmt.Errorf("%w: [%v, %v)", ErrEmptyRange, from, to)
	}
	fromT := ix.origin + timeline.Ticks(from, ix.timescale)
	toT := int64(math.MaxInt64)
	if to > 0 {
		toT = ix.origin + timeline.Ticks(to, ix.timescale)
	}
	var shown int64
	sel.a, sel.b, sel.dtsA, shown = ix.samplesIn(fromT, toT)
	if sel.b <= sel.a {
		return sel, fmt.Errorf("%w: [%v, %v) holds no picture", ErrEmptyRange, from, to)
	}
	sel.b = ix.keepPresentedBefore(sel.a, sel.b)
	reqFrom := fromT
	if from > 0 && shown > ix.origin {
		// Start with the whole picture presented at From: players
		// (ffmpeg) drop a picture that begins before the edit.
		fromT = shown
	}
	presStart, presEnd, minCTO := ix.presentation(&sel)
	sel.ctoShift = max(0, -minCTO)
	// The video is presented from its first picture: where the input's
	// edit list starts the movie earlier (an empty edit that delays the
	// video behind its audio, or behind a B-frame reorder delay), the
	// movie's empty edit before the video keeps that delay (selectAll).
	start := max(fromT, presStart)
	end := min(toT, presEnd)
	if end <= start || end <= reqFrom {
		return sel, fmt.Errorf("%w: [%v, %v) starts after the end (%v)", ErrEmptyRange, from, to,
			timeline.Duration(presEnd-ix.origin, ix.timescale))
	}
	sel.mediaTime = start - sel.dtsA + sel.ctoShift
	sel.editDur = end - start
	sel.start, sel.end = start, end
	sel.movieTS, sel.movieDur = ix.timescale, sel.editDur
	return sel, nil
}

// samplesIn returns the samples [a, b) that present [fromT, toT): a, the
// last keyframe presented at or before fromT (and its DTS, dtsA); b, one
// after the last sample presented before toT; and shown, the PTS of the
// picture presented at fromT.
func (ix *index) samplesIn(fromT, toT int64) (a, b int, dtsA, shown int64) {
	shown = math.MinInt64
	var dts int64
	for i := range ix.samples {
		s := &ix.samples[i]
		pts := dts + int64(s.cto)
		if s.sync && pts <= fromT {
			a, dtsA = i, dts
		}
		if pts <= fromT {
			shown = max(shown, pts)
		}
		if pts < toT {
			b = i + 1
		}
		dts += int64(s.dur)
	}
	return a, b, dtsA, shown
}

// keepPresentedBefore extends the samples [a, b): the samples up to b may
// include a reference picture presented after the range (decoded before
// the B pictures presented before it); the pictures decoded after b that
// are presented before that one are kept too, so that what an output
// without an edit list (MPEG-TS) shows past the range is a run of the
// input's pictures, not one with a hole. It returns the new b.
func (ix *index) keepPresentedBefore(a, b int) int {
	if b >= len(ix.samples) {
		return b
	}
	var maxPTS int64 = math.MinInt64
	d := int64(0)
	for i := 0; i < b; i++ {
		if i >= a {
			maxPTS = max(maxPTS, d+int64(ix.samples[i].cto))
		}
		d += int64(ix.samples[i].dur)
	}
	for b < len(ix.samples) && !ix.samples[b].sync && d+int64(ix.samples[b].cto) < maxPTS {
		d += int64(ix.samples[b].dur)
		b++
	}
	return b
}

// presentation returns where the selection's pictures are presented (the
// first's PTS, the end of the last), its smallest composition offset, and
// counts its keyframes into sel.
func (ix *index) presentation(sel *selection) (start, end, minCTO int64) {
	start, end, minCTO = math.MaxInt64, math.MinInt64, math.MaxInt64
	dts := sel.dtsA
	for i := sel.a; i < sel.b; i++ {
		s := &ix.samples[i]
		pts := dts + int64(s.cto)
		start, end = min(start, pts), max(end, pts+int64(s.dur))
		minCTO = min(minCTO, int64(s.cto))
		if s.sync {
			sel.keyframes++
		}
		dts += int64(s.dur)
	}
	return start, end, minCTO
}

// chunk is one run of samples of one track of the output that share a
// sample description and sit back to back in the mdat.
type chunk struct {
	n     uint32
	desc  uint16
	size  int64
	audio bool
}

// chunks lists the output chunks of the selection in mdat order: per input
// part, its pictures (one chunk per sample description within the part),
// then its audio frames (one chunk), so that the tracks interleave part by
// part for progressive playback.
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
		if as := sel.audio; as != nil {
			lo, hi := max(as.a, p.audio.first), min(as.b, p.audio.first+p.audio.n)
			if lo < hi {
				c := chunk{audio: true, n: uint32(hi - lo)}
				for i := lo; i < hi; i++ {
					c.size += int64(ix.audio.samples[i].size)
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// trackChunks returns the chunks of one track.
func trackChunks(chunks []chunk, audio bool) []chunk {
	var out []chunk
	for _, c := range chunks {
		if c.audio == audio {
			out = append(out, c)
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
	// Offsets in mdat order, handed to each track's table in its order.
	var vi, ai int
	for i, c := range chunks {
		trak, k := moovTrak(moov, c.audio), &vi
		if c.audio {
			k = &ai
		}
		stbl := trak.Mdia.Minf.Stbl
		if h.co64 {
			stbl.Co64.ChunkOffset[*k] = offsets[i]
		} else {
			stbl.Stco.ChunkOffset[*k] = uint32(offsets[i])
		}
		*k++
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

// moovTrak returns the video or the audio track of a moov built by
// buildMoov.
func moovTrak(moov *mp4.MoovBox, audio bool) *mp4.TrakBox {
	for _, t := range moov.Traks {
		if (t.Mdia.Hdlr.HandlerType == "soun") == audio {
			return t
		}
	}
	return nil
}

// buildMoov builds the moov box: the video track (track 1) and the audio
// track; chunk offsets are left zero.
func (ix *index) buildMoov(sel selection, chunks []chunk, co64 bool, ndesc *int) (*mp4.MoovBox, error) {
	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = sel.movieTS
	mvhd.Duration = uint64(sel.movieDur)
	if sel.movieDur > math.MaxUint32 {
		mvhd.Version = 1
	}
	moov := mp4.NewMoovBox()
	moov.AddChild(mvhd)
	id := uint32(1)
	if sel.b > sel.a {
		trak, err := ix.buildVideoTrak(sel, trackChunks(chunks, false), co64, ndesc)
		if err != nil {
			return nil, err
		}
		trak.Tkhd.TrackID = id
		id++
		moov.AddChild(trak)
	}
	if sel.audio != nil {
		trak, err := ix.buildAudioTrak(sel, trackChunks(chunks, true), co64)
		if err != nil {
			return nil, err
		}
		trak.Tkhd.TrackID = id
		id++
		moov.AddChild(trak)
	}
	mvhd.NextTrackID = id
	return moov, nil
}

// editList returns an edts box: an empty edit of empty movie ticks when
// positive, then dur movie ticks of the media from mediaTime.
func editList(empty int64, dur uint64, mediaTime int64) *mp4.EdtsBox {
	elst := &mp4.ElstBox{}
	if empty > 0 {
		elst.Entries = append(elst.Entries, mp4.ElstEntry{SegmentDuration: uint64(empty), MediaTime: -1, MediaRateInteger: 1})
	}
	elst.Entries = append(elst.Entries, mp4.ElstEntry{SegmentDuration: dur, MediaTime: mediaTime, MediaRateInteger: 1})
	for _, e := range elst.Entries {
		if e.SegmentDuration > math.MaxUint32 || e.MediaTime > math.MaxInt32 {
			elst.Version = 1
		}
	}
	edts := &mp4.EdtsBox{}
	edts.AddChild(elst)
	edts.Elst = []*mp4.ElstBox{elst}
	return edts
}

// buildVideoTrak builds the video track.
func (ix *index) buildVideoTrak(sel selection, chunks []chunk, co64 bool, ndesc *int) (*mp4.TrakBox, error) {
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

	var st sampleTable
	ctts := &mp4.CttsBox{EndSampleNr: []uint32{0}}
	nonZeroCTO := false
	stss := &mp4.StssBox{}
	for i := range samples {
		s := &samples[i]
		st.add(s.size, s.dur)
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
	var tables []mp4.Box
	if len(stss.SampleNumber) < len(samples) {
		tables = append(tables, stss)
	}
	if nonZeroCTO {
		tables = append(tables, ctts)
	}
	trak, err := newTrak(trakSpec{
		handler:   "video",
		timescale: ix.timescale,
		stsd:      stsd,
		table:     &st,
		tables:    tables,
		chunks:    chunks,
		descIndex: used,
		co64:      co64,
		empty:     sel.vEmpty,
		editDur:   uint64(sel.editDur), // movie ticks: the movie has the video's timescale
		mediaTime: sel.mediaTime,
	})
	if err != nil {
		return nil, err
	}
	if first != nil {
		trak.Tkhd.Width = mp4.Fixed32(first.width << 16)
		trak.Tkhd.Height = mp4.Fixed32(first.height << 16)
	}
	if ix.matrix != [9]int32{} {
		trak.Tkhd.Matrix = ix.matrix // a phone's portrait video stays upright
	}
	return trak, nil
}

// sampleTable collects what the sample tables of both tracks list: the
// stts runs, the sample sizes and the media duration.
type sampleTable struct {
	stts     mp4.SttsBox
	sizes    []uint32
	mediaDur uint64
}

// add appends a sample of size bytes lasting dur ticks.
func (st *sampleTable) add(size, dur uint32) {
	st.sizes = append(st.sizes, size)
	st.mediaDur += uint64(dur)
	if n := len(st.stts.SampleCount); n > 0 && st.stts.SampleTimeDelta[n-1] == dur {
		st.stts.SampleCount[n-1]++
	} else {
		st.stts.SampleCount = append(st.stts.SampleCount, 1)
		st.stts.SampleTimeDelta = append(st.stts.SampleTimeDelta, dur)
	}
}

// trakSpec describes a track for newTrak.
type trakSpec struct {
	handler   string // "video" or "audio"
	timescale uint32 // media timescale
	stsd      *mp4.StsdBox
	table     *sampleTable
	tables    []mp4.Box // the boxes between stts and stsc (stss, ctts)
	chunks    []chunk
	descIndex map[uint16]uint32 // chunk.desc -> stsd entry number
	co64      bool
	empty     int64  // movie ticks of empty edit before the media
	editDur   uint64 // movie ticks of media presented
	mediaTime int64  // where presentation starts, media ticks
}

// newTrak builds a track: stbl (stsd, stts, the extra tables, stsc with
// one entry per change of samples per chunk or description, stsz, and a
// zeroed stco or co64 for buildHeader to fill), minf, mdhd, hdlr, the edit
// list, and an enabled tkhd lasting the edits.
func newTrak(sp trakSpec) (*mp4.TrakBox, error) {
	stsc := &mp4.StscBox{}
	for i, c := range sp.chunks {
		if i == 0 || sp.chunks[i-1].n != c.n || sp.chunks[i-1].desc != c.desc {
			if err := stsc.AddEntry(uint32(i+1), c.n, sp.descIndex[c.desc]); err != nil {
				return nil, err
			}
		}
	}
	st := sp.table
	stbl := mp4.NewStblBox()
	stbl.AddChild(sp.stsd)
	stbl.AddChild(&st.stts)
	for _, b := range sp.tables {
		stbl.AddChild(b)
	}
	stbl.AddChild(stsc)
	stbl.AddChild(&mp4.StszBox{SampleNumber: uint32(len(st.sizes)), SampleSize: st.sizes})
	if sp.co64 {
		stbl.AddChild(&mp4.Co64Box{ChunkOffset: make([]uint64, len(sp.chunks))})
	} else {
		stbl.AddChild(&mp4.StcoBox{ChunkOffset: make([]uint32, len(sp.chunks))})
	}

	minf := mp4.NewMinfBox()
	if sp.handler == "video" {
		minf.AddChild(mp4.CreateVmhd())
	} else {
		minf.AddChild(&mp4.SmhdBox{})
	}
	dinf := &mp4.DinfBox{}
	dinf.AddChild(mp4.CreateDref())
	minf.AddChild(dinf)
	minf.AddChild(stbl)

	mdhd := &mp4.MdhdBox{Timescale: sp.timescale, Duration: st.mediaDur}
	if st.mediaDur > math.MaxUint32 {
		mdhd.Version = 1
	}
	mdhd.SetLanguage("und")
	hdlr, err := mp4.CreateHdlr(sp.handler)
	if err != nil {
		return nil, err
	}
	mdia := mp4.NewMdiaBox()
	mdia.AddChild(mdhd)
	mdia.AddChild(hdlr)
	mdia.AddChild(minf)

	tkhd := mp4.CreateTkhd()
	tkhd.Flags = 3 // enabled, in movie
	tkhd.Duration = sp.editDur + uint64(max(sp.empty, 0))
	if tkhd.Duration > math.MaxUint32 {
		tkhd.Version = 1
	}
	trak := mp4.NewTrakBox()
	trak.AddChild(tkhd)
	trak.AddChild(editList(sp.empty, sp.editDur, sp.mediaTime))
	trak.AddChild(mdia)
	return trak, nil
}
