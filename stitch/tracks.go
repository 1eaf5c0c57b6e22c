package stitch

// The tracks of an MP4 part, as the first pass lists them: internal/demux
// selects them and reads their tables and fragments; here they become
// sample descriptions of the output and local samples.

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
)

// trackInfo is the H.264 track of a moov, as the first pass uses it.
type trackInfo struct {
	t         *demux.Track // nil for the video of an audio-only moov
	id        uint32
	timescale uint32
	trex      *mp4.TrexBox
	descIdx   []int // stsd entry -> index.descs, -1 when not H.264
	shift     int64 // edit list: added to media times
	hasEdit   bool
	matrix    [9]int32           // tkhd matrix (display rotation); zero: identity
	samples   bool               // the moov's tables list samples (progressive)
	audio     *trackInfo         // the moov's AAC track, nil if none
	ainfo     chunker.AACInfo    // and what its AudioSpecificConfig says
	asc       []byte             // the AudioSpecificConfig
	frag      []demux.FragSample // fragmentSamples' buffer, reused from part to part
}

// track returns the H.264 track of a movie (and its AAC track), reading
// them once. Which tracks are read, and their edit lists, are
// internal/demux's rules, as for package source.
func (m *merger) track(mv *demux.Movie) (*trackInfo, error) {
	if t, ok := m.tracks[mv.Moov]; ok {
		return t, nil
	}
	ts, err := mv.Tracks()
	if err != nil {
		return nil, fromDemux(err)
	}
	for _, u := range ts.Unreadable {
		m.log.Warn("stitch: AAC track ignored", "track", u.ID, "err", u.Err)
	}
	var audio *trackInfo
	if a := ts.Audio; a != nil {
		audio = &trackInfo{ainfo: a.AAC, asc: a.ASC, descIdx: []int{0}}
		if err := audio.read(a, mv); err != nil {
			return nil, err
		}
	}
	if ts.Video == nil {
		// Audio only: a video track without samples.
		ti := &trackInfo{timescale: audio.timescale, audio: audio}
		m.tracks[mv.Moov] = ti
		return ti, nil
	}
	ti := &trackInfo{audio: audio}
	if err := ti.read(ts.Video, mv); err != nil {
		return nil, err
	}
	for _, c := range ts.Video.Entries {
		if !demux.IsAVC(c) {
			ti.descIdx = append(ti.descIdx, -1)
			continue
		}
		d, err := m.descForEntry(c.(*mp4.VisualSampleEntryBox))
		if err != nil {
			return nil, err
		}
		ti.descIdx = append(ti.descIdx, d)
	}
	m.tracks[mv.Moov] = ti
	return ti, nil
}

// hasSamples reports whether the moov's video or audio track lists
// samples (a progressive file rather than an init section).
func (ti *trackInfo) hasSamples() bool {
	return ti.samples || (ti.audio != nil && ti.audio.samples)
}

// read takes what the first pass uses of track t of mv: its identity, edit
// list and fragment defaults, and whether its tables list samples.
func (ti *trackInfo) read(t *demux.Track, mv *demux.Movie) error {
	ti.t, ti.id, ti.timescale, ti.trex, ti.matrix = t, t.ID, t.Timescale, t.Trex, t.Matrix
	ti.shift, ti.hasEdit = t.Edit.Shift, t.Edit.Present
	switch {
	case t.HasSampleSizes():
		p, err := t.Samples()
		if err != nil {
			return fromDemux(err)
		}
		ti.samples = p.Len() > 0
	case !mv.Fragmented():
		return errorf(ErrUnsupported, "track %d: no stsz box (compact sample sizes?)", ti.id)
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

// maxPartSamples bounds the samples of one part that the first pass lists.
const maxPartSamples = 1 << 26

// progressiveSamples lists the samples of a progressive track from its
// sample tables, which internal/demux walks in the moov read at once. An
// empty sample extends the one before it.
func progressiveSamples(ti *trackInfo, objSize int64) ([]localSample, error) {
	p, err := ti.t.Samples()
	if err != nil {
		return nil, fromDemux(err)
	}
	if p.Len() > maxPartSamples {
		return nil, errorf(ErrUnsupported, "%d samples in one file", p.Len())
	}
	out := make([]localSample, 0, p.Len())
	var s demux.Sample
	for i := 1; ; i++ {
		if err := p.Next(&s); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fromDemux(err)
		}
		if s.Size > maxSampleSize {
			return nil, errorf(ErrUnsupported, "sample of %d bytes", s.Size)
		}
		if s.Off > uint64(objSize) || uint64(s.Size) > uint64(objSize)-s.Off {
			return nil, errorf(ErrInvalid, "sample %d at %d+%d beyond the end of the object (%d bytes)", i, s.Off, s.Size, objSize)
		}
		if s.Size > 0 {
			out = append(out, localSample{dts: s.DTS, pts: s.DTS + int64(s.CTO), off: int64(s.Off), size: s.Size,
				dur: s.Dur, sync: s.Sync, desc: int32(s.Desc)})
		} else if len(out) > 0 {
			out[len(out)-1].dur += s.Dur // an empty sample extends the previous one
		}
	}
}

// fragmentSamples appends the samples of the track's movie fragments in s
// (internal/demux reads each moof) to out, the track's samples in the
// moov's tables, whose decode times the fragments continue. An empty sample
// extends the one before it. noTFDT reports a first fragment without tfdt
// and no samples before it: its times are relative.
func fragmentSamples(out []localSample, ti *trackInfo, s *mp4Scan) (_ []localSample, noTFDT bool, err error) {
	f := &demux.Fragments{ID: ti.id, Trex: ti.trex}
	prog := len(out) > 0
	if prog {
		l := out[len(out)-1]
		f.Next = l.dts + int64(l.dur)
	}
	fs := ti.frag
	defer func() { ti.frag = fs[:0] }()
	for _, mf := range s.moofs {
		if fs, err = f.Append(fs[:0], mf.box, mf.start); err != nil {
			return nil, false, fromDemux(err)
		}
		for i := range fs {
			x := &fs[i]
			if x.Size > maxSampleSize {
				return nil, false, errorf(ErrUnsupported, "sample of %d bytes", x.Size)
			}
			if x.Off < 0 || x.Off > s.size || int64(x.Size) > s.size-x.Off {
				return nil, false, errorf(ErrInvalid, "fragment sample at %d+%d outside the object (%d bytes)", x.Off, x.Size, s.size)
			}
			if x.Size > 0 {
				out = append(out, localSample{dts: x.DTS, pts: x.DTS + int64(x.CTO), off: x.Off, size: x.Size,
					dur: x.Dur, sync: x.Sync(), desc: int32(x.Desc)})
			} else if len(out) > 0 {
				out[len(out)-1].dur += x.Dur
			}
		}
	}
	return out, f.NoTFDT && !prog, nil
}

// fromDemux gives an error of internal/demux this package's kind:
// ErrUnsupported for what it does not read, else ErrInvalid (a truncated
// object is an invalid one here). Other errors are returned as they are.
func fromDemux(err error) error {
	var de *demux.Error
	if !errors.As(err, &de) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnsupported) {
		return err
	}
	kind := ErrInvalid
	if de.Kind == demux.ErrUnsupported {
		kind = ErrUnsupported
	}
	return fmt.Errorf("%w: %w", kind, err)
}
