package demux

import (
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
)

// Track is a track of a Movie that livechunk reads: an H.264 or an AAC
// one.
type Track struct {
	ID        uint32
	Timescale uint32          // the media timescale (mdhd), not 0
	Trak      *mp4.TrakBox    // as Movie.Moov holds it
	Entries   []mp4.Box       // the sample descriptions (stsd children)
	Edit      Edit            // its edit list
	Trex      *mp4.TrexBox    // its defaults for movie fragments; nil without
	Matrix    [9]int32        // its tkhd matrix; zero for the identity
	ASC       []byte          // AAC: the AudioSpecificConfig of the first entry
	AAC       chunker.AACInfo // AAC: what ASC says

	mv  *Movie
	tab tables
}

// Samples opens the track's sample tables, which Movie's reader must still
// read. A track without an stsz box is ErrUnsupported (compact sample
// sizes, stz2, are not read).
func (t *Track) Samples() (*Samples, error) { return newSamples(t.mv.r, t.tab) }

// HasSampleSizes reports whether the track has an stsz box.
func (t *Track) HasSampleSizes() bool { return t.tab.stsz.present }

// MaxCompositionDelay returns the largest negative composition offset of
// the track's ctts box, negated (0 when there is none), and whether it has
// a ctts box at all.
func (t *Track) MaxCompositionDelay() (delay int64, present bool, err error) {
	d, err := maxCompositionDelay(t.mv.r, t.tab)
	return d, t.tab.ctts.present, err
}

// IsAVC reports whether a sample description is H.264 (avc1 or avc3).
func IsAVC(entry mp4.Box) bool {
	_, ok := entry.(*mp4.VisualSampleEntryBox)
	return ok && (entry.Type() == "avc1" || entry.Type() == "avc3")
}

// Tracks are the tracks of a movie that livechunk reads, and what it
// leaves out.
type Tracks struct {
	Video *Track // the first H.264 track (avc1, avc3); nil when none
	Audio *Track // the first AAC track that livechunk can use; nil when none
	// IgnoredAudio names the audio tracks left out, by codec ("AC-3",
	// "MP3", "AAC Main", ...); further AAC tracks are named "AAC".
	IgnoredAudio []string
	// Unreadable are the AAC tracks left out for an error (they are named
	// in IgnoredAudio too), for a log.
	Unreadable []TrackError
}

// TrackError is why a track is left out.
type TrackError struct {
	ID  uint32
	Err error
}

// otherVideo are the sample entry types of video that is not H.264.
var otherVideo = map[string]bool{
	"hvc1": true, "hev1": true, "encv": true, "avc2": true, "avc4": true, "dvav": true, "dva1": true,
	"dvh1": true, "dvhe": true, "av01": true, "vp09": true,
}

// Tracks selects the tracks to read: the first H.264 track and the first
// AAC track that can be read (see Tracks). Without an H.264 track, video of
// another codec is ErrUnsupported, and so is a movie without an AAC track
// either. In a progressive movie, the tables of both are opened once, so
// that a track they do not describe is reported here.
func (mv *Movie) Tracks() (ts Tracks, err error) {
	defer guard(&err, "moov")
	var other string
	for i, t := range mv.Moov.Traks {
		if !complete(t) {
			continue
		}
		if typ := t.Mdia.Minf.Stbl.Stsd.Children[0].Type(); typ == "avc1" || typ == "avc3" {
			if ts.Video, err = mv.track(t, i); err != nil {
				return ts, err
			}
			break
		} else if otherVideo[typ] && other == "" {
			other = typ
		}
	}
	mv.selectAudio(&ts)
	if ts.Video == nil {
		switch {
		case other != "":
			return ts, errorf(ErrUnsupported, "video track is %s, not H.264", other)
		case ts.Audio == nil:
			return ts, errorf(ErrUnsupported, "no H.264 video track (nor an AAC audio track)")
		}
	}
	return ts, nil
}

// complete reports whether a trak has the boxes a track needs, down to a
// sample description.
func complete(t *mp4.TrakBox) bool {
	return t.Tkhd != nil && t.Mdia != nil && t.Mdia.Mdhd != nil && t.Mdia.Minf != nil &&
		t.Mdia.Minf.Stbl != nil && t.Mdia.Minf.Stbl.Stsd != nil && len(t.Mdia.Minf.Stbl.Stsd.Children) > 0
}

// track reads the track trak, the i-th of the movie.
func (mv *Movie) track(t *mp4.TrakBox, i int) (*Track, error) {
	tr := &Track{ID: t.Tkhd.TrackID, Timescale: t.Mdia.Mdhd.Timescale, Trak: t,
		Entries: t.Mdia.Minf.Stbl.Stsd.Children, mv: mv, tab: mv.tabs[i]}
	if tr.Timescale == 0 {
		return nil, errorf(ErrInvalid, "track %d: timescale 0", tr.ID)
	}
	if mx := t.Tkhd.Matrix; mx != mp4.UnityMatrix() {
		tr.Matrix = mx
	}
	if mvex := mv.Moov.Mvex; mvex != nil {
		if trex, ok := mvex.GetTrex(tr.ID); ok {
			tr.Trex = trex
		}
	}
	var err error
	if tr.Edit, err = editOf(t, mv.Moov, tr.Timescale); err != nil {
		return nil, err
	}
	if !mv.Fragmented() {
		if _, err := tr.Samples(); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// selectAudio picks the first AAC track that livechunk can segment; the
// other audio tracks are named in IgnoredAudio.
func (mv *Movie) selectAudio(ts *Tracks) {
	for i, t := range mv.Moov.Traks {
		if !complete(t) {
			continue
		}
		entry := t.Mdia.Minf.Stbl.Stsd.Children[0]
		asc := aacConfig(entry)
		switch {
		case asc == nil:
			if name := audioEntryName(t, entry); name != "" {
				ts.IgnoredAudio = append(ts.IgnoredAudio, name)
			}
			continue
		case ts.Audio != nil:
			ts.IgnoredAudio = append(ts.IgnoredAudio, AACName(asc))
			continue
		}
		a, err := mv.audioTrack(t, i, asc)
		if err != nil {
			// A track the file cannot be read with, or audio livechunk
			// does not segment: the rest of the file is still read.
			ts.IgnoredAudio = append(ts.IgnoredAudio, UnreadableAAC(asc))
			ts.Unreadable = append(ts.Unreadable, TrackError{ID: t.Tkhd.TrackID, Err: err})
			continue
		}
		ts.Audio = a
	}
}

// audioTrack reads the AAC track trak, the i-th of the movie, whose
// AudioSpecificConfig is asc.
func (mv *Movie) audioTrack(t *mp4.TrakBox, i int, asc []byte) (*Track, error) {
	info, err := chunker.ParseAudioSpecificConfig(asc)
	if err != nil {
		return nil, err
	}
	tr, err := mv.track(t, i)
	if err != nil {
		return nil, err
	}
	tr.ASC, tr.AAC = asc, info
	return tr, nil
}

// aacConfig returns the AudioSpecificConfig of an mp4a sample entry, or nil.
func aacConfig(b mp4.Box) []byte {
	esds := mp4aEsds(b)
	if esds == nil {
		return nil
	}
	dc := esds.DecConfigDescriptor
	if dc == nil || dc.ObjectType != 0x40 || dc.DecSpecificInfo == nil {
		return nil
	}
	return dc.DecSpecificInfo.DecConfig
}

// mp4aEsds returns the esds of an mp4a sample entry, or nil.
func mp4aEsds(b mp4.Box) *mp4.EsdsBox {
	ase, ok := b.(*mp4.AudioSampleEntryBox)
	if !ok || ase.Type() != "mp4a" {
		return nil
	}
	if ase.Esds == nil && ase.Wave != nil {
		return ase.Wave.Esds // QuickTime sound description version 1
	}
	return ase.Esds
}
