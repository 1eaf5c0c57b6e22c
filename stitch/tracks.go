package stitch

// The tracks of an MP4 part: which track is read, its sample descriptions,
// edit list and sample tables, as the first pass lists them.

import (
	"bytes"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
)

// trackInfo is the H.264 track of a moov, as the first pass uses it.
type trackInfo struct {
	id        uint32
	timescale uint32
	trex      *mp4.TrexBox
	stbl      *mp4.StblBox
	descIdx   []int // stsd entry -> index.descs, -1 when not H.264
	shift     int64 // edit list: added to media times
	hasEdit   bool
	matrix    [9]int32        // tkhd matrix (display rotation); zero: identity
	samples   bool            // the stbl lists samples (progressive)
	audio     *trackInfo      // the moov's AAC track, nil if none
	ainfo     chunker.AACInfo // and what its AudioSpecificConfig says
	asc       []byte          // the AudioSpecificConfig
}

// track returns the H.264 track of moov, reading it once.
func (m *merger) track(moov *mp4.MoovBox) (*trackInfo, error) {
	if t, ok := m.tracks[moov]; ok {
		return t, nil
	}
	var trak, atrak *mp4.TrakBox
	other := ""
	for _, t := range moov.Traks {
		if t.Tkhd == nil || t.Mdia == nil || t.Mdia.Mdhd == nil || t.Mdia.Minf == nil ||
			t.Mdia.Minf.Stbl == nil || t.Mdia.Minf.Stbl.Stsd == nil || len(t.Mdia.Minf.Stbl.Stsd.Children) == 0 {
			continue
		}
		switch typ := t.Mdia.Minf.Stbl.Stsd.Children[0].Type(); typ {
		case "avc1", "avc3":
			if trak == nil {
				trak = t
			}
		case "mp4a":
			if atrak == nil {
				atrak = t
			}
		case "hvc1", "hev1", "encv", "avc2", "avc4", "dvav", "dva1", "dvh1", "dvhe", "av01", "vp09":
			if other == "" {
				other = typ
			}
		}
	}
	var audio *trackInfo
	if atrak != nil {
		var err error
		if audio, err = m.audioTrack(moov, atrak); err != nil {
			return nil, err
		}
	}
	if trak == nil {
		switch {
		case other != "":
			return nil, errorf(ErrUnsupported, "video track is %s, not H.264", other)
		case audio == nil:
			return nil, errorf(ErrUnsupported, "no H.264 video track (nor an AAC one)")
		}
		// Audio only: a video track without samples.
		ti := &trackInfo{timescale: audio.timescale, audio: audio, stbl: &mp4.StblBox{}}
		m.tracks[moov] = ti
		return ti, nil
	}
	ti := &trackInfo{id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale, stbl: trak.Mdia.Minf.Stbl, audio: audio}
	if mx := trak.Tkhd.Matrix; mx != mp4.UnityMatrix() {
		ti.matrix = mx
	}
	if ti.timescale == 0 {
		return nil, errorf(ErrInvalid, "track %d: timescale 0", ti.id)
	}
	for _, c := range ti.stbl.Stsd.Children {
		vse, ok := c.(*mp4.VisualSampleEntryBox)
		if !ok || (c.Type() != "avc1" && c.Type() != "avc3") {
			ti.descIdx = append(ti.descIdx, -1)
			continue
		}
		d, err := m.descForEntry(vse)
		if err != nil {
			return nil, err
		}
		ti.descIdx = append(ti.descIdx, d)
	}
	if err := ti.readTables(moov, trak); err != nil {
		return nil, err
	}
	m.tracks[moov] = ti
	return ti, nil
}

// hasSamples reports whether the moov's video or audio track lists
// samples (a progressive file rather than an init section).
func (ti *trackInfo) hasSamples() bool {
	return ti.samples || (ti.audio != nil && ti.audio.samples)
}

// readTables reads what every track needs of its trak: trex, whether the
// stbl lists samples, and the edit list.
func (ti *trackInfo) readTables(moov *mp4.MoovBox, trak *mp4.TrakBox) error {
	if moov.Mvex != nil {
		if trex, ok := moov.Mvex.GetTrex(ti.id); ok {
			ti.trex = trex
		}
	}
	if st := ti.stbl.Stsz; st != nil && st.SampleNumber > 0 {
		ti.samples = true
	} else if ti.stbl.Stsz == nil && moov.Mvex == nil {
		return errorf(ErrUnsupported, "track %d: no stsz box (compact sample sizes?)", ti.id)
	}
	// Edit list: leading empty edits delay the track; the first non-empty
	// edit's media_time is where presentation starts. Later edits are
	// ignored.
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
		if delay > 1<<40 || mediaTime < 0 || mediaTime > 1<<50 {
			return errorf(ErrInvalid, "track %d: edit list out of range", ti.id)
		}
		ti.shift = rescale(int64(delay), moov.Mvhd.Timescale, ti.timescale) - mediaTime
		ti.hasEdit = true
	}
	return nil
}

// descForEntry returns the output sample description equal to vse, adding
// it if new.
func (m *merger) descForEntry(vse *mp4.VisualSampleEntryBox) (int, error) {
	d := &desc{entry: vse, width: int(vse.Width), height: int(vse.Height)}
	if vse.AvcC != nil {
		d.sps, d.pps = vse.AvcC.SPSnalus, vse.AvcC.PPSnalus
	}
	d.key = descKey(vse)
	return m.addDesc(d), nil
}

// descForPS returns an avc1 sample description for the parameter sets,
// adding it if new.
func (m *merger) descForPS(sps, pps [][]byte) (idx int, err error) {
	defer guard(&err, "parameter sets")
	if len(sps) == 0 || len(pps) == 0 {
		return 0, errorf(ErrInvalid, "keyframe without SPS and PPS")
	}
	s, err := avc.ParseSPSNALUnit(sps[0], false)
	if err != nil {
		return 0, errorf(ErrInvalid, "SPS: %v", err)
	}
	avcC, err := mp4.CreateAvcC(sps, pps, true)
	if err != nil {
		return 0, errorf(ErrInvalid, "avcC: %v", err)
	}
	w, h := uint16(s.Width), uint16(s.Height)
	vse := mp4.CreateVisualSampleEntryBox("avc1", w, h, avcC)
	return m.addDesc(&desc{entry: vse, key: descKey(vse), sps: sps, pps: pps, width: int(w), height: int(h)}), nil
}

// descKey identifies a sample entry by what a decoder needs: its type and
// its avcC (profile, level and parameter sets). Entries that differ only
// in other child boxes (btrt, pasp, colr) are the same description; the
// first one seen is written.
func descKey(vse *mp4.VisualSampleEntryBox) []byte {
	var b bytes.Buffer
	b.WriteString(vse.Type())
	if vse.AvcC != nil {
		if err := vse.AvcC.Encode(&b); err != nil {
			b.WriteString(err.Error())
		}
	}
	return b.Bytes()
}

func (m *merger) addDesc(d *desc) int {
	for i, e := range m.ix.descs {
		if bytes.Equal(e.key, d.key) {
			return i
		}
	}
	m.ix.descs = append(m.ix.descs, d)
	return len(m.ix.descs) - 1
}

// progressiveSamples lists the samples of a progressive track from its
// sample tables (stts, ctts, stsc, stsz, stco/co64, stss).
func progressiveSamples(ti *trackInfo, objSize int64) ([]localSample, error) {
	st := ti.stbl
	n := int(st.Stsz.SampleNumber)
	if st.Stts == nil || len(st.Stts.SampleCount) == 0 || st.Stsc == nil || len(st.Stsc.Entries) == 0 {
		return nil, errorf(ErrInvalid, "incomplete sample table")
	}
	var offsets []uint64
	switch {
	case st.Stco != nil:
		offsets = make([]uint64, len(st.Stco.ChunkOffset))
		for i, o := range st.Stco.ChunkOffset {
			offsets[i] = uint64(o)
		}
	case st.Co64 != nil:
		offsets = st.Co64.ChunkOffset
	default:
		return nil, errorf(ErrInvalid, "no chunk offsets")
	}
	if n > 1<<26 {
		return nil, errorf(ErrUnsupported, "%d samples in one file", n)
	}
	out := make([]localSample, 0, n)
	sttsIdx, sttsLeft := 0, st.Stts.SampleCount[0]
	cttsIdx := 0
	stscIdx := 0
	chunk, chunkLeft := 0, uint32(0) // chunk is 1-based
	var off uint64
	desc := int32(0)
	var dts int64
	stss := []uint32(nil)
	if st.Stss != nil {
		stss = st.Stss.SampleNumber
	}
	stssIdx := 0
	for i := 1; i <= n; i++ {
		for sttsLeft == 0 && sttsIdx+1 < len(st.Stts.SampleCount) {
			sttsIdx++
			sttsLeft = st.Stts.SampleCount[sttsIdx]
		}
		if sttsLeft > 0 {
			sttsLeft--
		}
		dur := st.Stts.SampleTimeDelta[sttsIdx]
		var cto int32
		if c := st.Ctts; c != nil && len(c.SampleOffset) > 0 {
			for cttsIdx+1 < len(c.SampleOffset) && uint32(i) > c.EndSampleNr[cttsIdx+1] {
				cttsIdx++
			}
			if uint32(i) <= c.EndSampleNr[len(c.EndSampleNr)-1] {
				cto = c.SampleOffset[cttsIdx]
			}
		}
		for chunkLeft == 0 {
			if chunk >= len(offsets) {
				return nil, errorf(ErrInvalid, "sample %d beyond the last chunk", i)
			}
			chunk++
			for stscIdx+1 < len(st.Stsc.Entries) && st.Stsc.Entries[stscIdx+1].FirstChunk <= uint32(chunk) {
				stscIdx++
			}
			chunkLeft = st.Stsc.Entries[stscIdx].SamplesPerChunk
			off = offsets[chunk-1]
			if len(st.Stsc.SampleDescriptionID) > stscIdx {
				desc = int32(st.Stsc.SampleDescriptionID[stscIdx]) - 1
			} else {
				desc = int32(st.Stsc.GetSampleDescriptionID(1)) - 1
			}
		}
		chunkLeft--
		size := st.Stsz.GetSampleSize(i)
		if size > maxSampleSize {
			return nil, errorf(ErrUnsupported, "sample of %d bytes", size)
		}
		if off+uint64(size) > uint64(objSize) {
			return nil, errorf(ErrInvalid, "sample %d at %d+%d beyond the end of the object (%d bytes)", i, off, size, objSize)
		}
		sync := true
		if stss != nil {
			for stssIdx < len(stss) && stss[stssIdx] < uint32(i) {
				stssIdx++
			}
			sync = stssIdx < len(stss) && stss[stssIdx] == uint32(i)
		}
		if size > 0 {
			out = append(out, localSample{dts: dts, pts: dts + int64(cto), off: int64(off), size: size, dur: dur, sync: sync, desc: desc})
		} else if len(out) > 0 {
			out[len(out)-1].dur += dur // an empty sample extends the previous one
		}
		dts += int64(dur)
		off += uint64(size)
	}
	return out, nil
}

// fragmentSamples appends the samples of the track's movie fragments in s.
// noTFDT reports a first fragment without tfdt: its times are relative.
func fragmentSamples(out []localSample, ti *trackInfo, s *mp4Scan) (_ []localSample, noTFDT bool, err error) {
	var next int64
	if len(out) > 0 {
		l := out[len(out)-1]
		next = l.dts + int64(l.dur)
	}
	for fi, mf := range s.moofs {
		for _, traf := range mf.box.Trafs {
			if traf.Tfhd == nil || traf.Tfhd.TrackID != ti.id {
				continue
			}
			tfhd := traf.Tfhd
			if traf.Tfdt != nil {
				v := traf.Tfdt.BaseMediaDecodeTime()
				if v > 1<<62 {
					return nil, false, errorf(ErrInvalid, "tfdt out of range")
				}
				next = int64(v)
			} else if fi == 0 && len(out) == 0 {
				noTFDT = true
			}
			desc := int32(0)
			if tfhd.HasSampleDescriptionIndex() && tfhd.SampleDescriptionIndex > 0 {
				desc = int32(tfhd.SampleDescriptionIndex) - 1
			} else if ti.trex != nil && ti.trex.DefaultSampleDescriptionIndex > 0 {
				desc = int32(ti.trex.DefaultSampleDescriptionIndex) - 1
			}
			base := mf.start
			if tfhd.HasBaseDataOffset() {
				base = int64(tfhd.BaseDataOffset)
			}
			pos := base
			for _, trun := range traf.Truns {
				trun.AddSampleDefaultValues(tfhd, ti.trex)
				if trun.HasDataOffset() {
					pos = base + int64(trun.DataOffset)
				}
				for _, smp := range trun.Samples {
					if smp.Size > maxSampleSize {
						return nil, false, errorf(ErrUnsupported, "sample of %d bytes", smp.Size)
					}
					if pos < 0 || pos+int64(smp.Size) > s.size {
						return nil, false, errorf(ErrInvalid, "fragment sample at %d+%d outside the object (%d bytes)", pos, smp.Size, s.size)
					}
					if smp.Size > 0 {
						out = append(out, localSample{
							dts:  next,
							pts:  next + int64(smp.CompositionTimeOffset),
							off:  pos,
							size: smp.Size,
							dur:  smp.Dur,
							sync: smp.Flags&mp4.NonSyncSampleFlags == 0,
							desc: desc,
						})
					} else if len(out) > 0 {
						out[len(out)-1].dur += smp.Dur
					}
					next += int64(smp.Dur)
					pos += int64(smp.Size)
				}
			}
		}
	}
	return out, noTFDT, nil
}

// audioTrack reads the AAC track of a moov.
func (m *merger) audioTrack(moov *mp4.MoovBox, trak *mp4.TrakBox) (*trackInfo, error) {
	ti := &trackInfo{id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale, stbl: trak.Mdia.Minf.Stbl}
	if ti.timescale == 0 {
		return nil, errorf(ErrInvalid, "track %d: timescale 0", ti.id)
	}
	ase, ok := ti.stbl.Stsd.Children[0].(*mp4.AudioSampleEntryBox)
	var esds *mp4.EsdsBox
	if ok {
		esds = ase.Esds
		if esds == nil && ase.Wave != nil {
			esds = ase.Wave.Esds // QuickTime sound description version 1
		}
	}
	if esds == nil || esds.DecConfigDescriptor.DecSpecificInfo == nil {
		m.log.Warn("stitch: AAC track without an esds box ignored", "track", ti.id)
		return nil, nil
	}
	// A copy: the box was decoded from a read window that later reads reuse.
	asc := bytes.Clone(esds.DecConfigDescriptor.DecSpecificInfo.DecConfig)
	info, err := chunker.ParseAudioSpecificConfig(asc)
	if err != nil {
		m.log.Warn("stitch: AAC track ignored", "track", ti.id, "err", err)
		return nil, nil
	}
	ti.ainfo, ti.asc = info, asc
	ti.descIdx = []int{0}
	if err := ti.readTables(moov, trak); err != nil {
		return nil, err
	}
	return ti, nil
}
