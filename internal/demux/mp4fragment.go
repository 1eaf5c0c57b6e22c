package demux

import (
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// maxTFDT bounds a fragment's base media decode time, so that the times
// computed from it do not overflow.
const maxTFDT = 1 << 62

// DecodeMoof decodes the moof box b, whose body (after the header) is
// body.
func DecodeMoof(b Box, body []byte) (moof *mp4.MoofBox, err error) {
	defer guard(&err, "moof")
	if b.Size > MaxMetaBox {
		return nil, errorf(ErrUnsupported, "moof box of %d bytes", b.Size)
	}
	h := mp4.BoxHeader{Name: b.Type, Size: uint64(b.Size), Hdrlen: int(b.Hdr)}
	box, err := mp4.DecodeBoxBodySR(uint64(b.Off), h, bits.NewFixedSliceReader(body))
	if err != nil {
		return nil, decodeErr(err)
	}
	moof, ok := box.(*mp4.MoofBox)
	if !ok {
		return nil, errorf(ErrInvalid, "moof box at %d", b.Off)
	}
	return moof, nil
}

// FragSample is one sample of a track in a movie fragment.
type FragSample struct {
	DTS   int64  // decode time in the track's timescale (no edit list applied)
	CTO   int32  // composition offset: PTS - DTS
	Dur   uint32 // duration
	Off   int64  // offset of its data in the input
	Size  uint32
	Desc  int    // 0-based index of its sample description
	Flags uint32 // its sample flags (trun, tfhd or trex)
}

// Sync reports whether the sample is a sync sample.
func (s *FragSample) Sync() bool { return s.Flags&mp4.NonSyncSampleFlags == 0 }

// Fragments follows one track through the movie fragments of an input,
// moof by moof.
type Fragments struct {
	ID   uint32       // the track
	Trex *mp4.TrexBox // its defaults, nil without
	// Next is the decode time of the track's next sample: a fragment
	// without tfdt continues from it. Set it before the first fragment
	// when the track has samples before (in the moov's tables).
	Next int64
	// NoTFDT reports that the first moof read has a fragment of the track
	// without tfdt: its times are relative to Next as it was.
	NoTFDT bool

	moofs int // moof boxes read
}

// NewFragments returns a Fragments that follows track t.
func NewFragments(t *Track) *Fragments { return &Fragments{ID: t.ID, Trex: t.Trex} }

// Append appends to dst the samples of the track in moof, which begins at
// offset moofOff of the input: decode times from tfdt (or Next), sizes,
// durations, flags and composition offsets from trun with the defaults of
// tfhd and trex, data offsets from the base data offset (the moof, unless
// tfhd says) and trun's data offsets.
func (f *Fragments) Append(dst []FragSample, moof *mp4.MoofBox, moofOff int64) (_ []FragSample, err error) {
	defer guard(&err, "moof")
	first := f.moofs == 0
	f.moofs++
	for _, traf := range moof.Trafs {
		tfhd := traf.Tfhd
		if tfhd == nil || tfhd.TrackID != f.ID {
			continue
		}
		if traf.Tfdt != nil {
			v := traf.Tfdt.BaseMediaDecodeTime()
			if v > maxTFDT {
				return dst, errorf(ErrInvalid, "tfdt out of range")
			}
			f.Next = int64(v)
		} else if first {
			f.NoTFDT = true
		}
		desc := 0
		if tfhd.HasSampleDescriptionIndex() && tfhd.SampleDescriptionIndex > 0 {
			desc = int(tfhd.SampleDescriptionIndex) - 1
		} else if f.Trex != nil && f.Trex.DefaultSampleDescriptionIndex > 0 {
			desc = int(f.Trex.DefaultSampleDescriptionIndex) - 1
		}
		base := moofOff
		if tfhd.HasBaseDataOffset() {
			base = int64(tfhd.BaseDataOffset)
		}
		pos := base
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(tfhd, f.Trex)
			if trun.HasDataOffset() {
				pos = base + int64(trun.DataOffset)
			}
			for _, s := range trun.Samples {
				dst = append(dst, FragSample{DTS: f.Next, CTO: s.CompositionTimeOffset, Dur: s.Dur, Off: pos,
					Size: s.Size, Desc: desc, Flags: s.Flags})
				f.Next += int64(s.Dur)
				pos += int64(s.Size)
			}
		}
	}
	return dst, nil
}
