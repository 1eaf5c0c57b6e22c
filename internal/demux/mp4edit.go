package demux

import (
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/internal/timeline"
)

// Edit is what a track's edit list does to its media times.
//
// The rule: presentation time = media time + Shift, where Shift is the
// duration of the leading empty edits (media_time -1) minus the media_time
// of the first non-empty edit. So presentation starts where the file says,
// and decode times may be negative (with B-frames they usually are). Later
// edits are ignored. The audio track's edit list is applied the same way,
// so the encoder priming that an encoder declares with it (ffmpeg's AAC
// encoder: media_time 1024) puts the first frame before time 0 and
// audio/video sync is kept.
type Edit struct {
	Shift   int64 // added to media times, in the track's timescale
	Present bool  // the track has an edit list (and the movie a timescale)
}

// Bounds of an edit list: beyond them the file is invalid (and the shift
// would overflow later arithmetic).
const (
	maxEditDelay     = 1 << 40 // movie timescale
	maxEditMediaTime = 1 << 50 // track timescale, either sign
)

// editOf reads the edit list of trak, whose media timescale is timescale.
func editOf(trak *mp4.TrakBox, moov *mp4.MoovBox, timescale uint32) (Edit, error) {
	if trak.Edts == nil || len(trak.Edts.Elst) == 0 || moov.Mvhd == nil || moov.Mvhd.Timescale == 0 {
		return Edit{}, nil
	}
	var delay uint64
	mediaTime := int64(0)
	for _, e := range trak.Edts.Elst[0].Entries {
		if e.MediaTime == -1 {
			delay += min(e.SegmentDuration, maxEditDelay+1) // no wrap-around
			continue
		}
		mediaTime = e.MediaTime
		break
	}
	if delay > maxEditDelay || mediaTime < -maxEditMediaTime || mediaTime > maxEditMediaTime {
		return Edit{}, errorf(ErrInvalid, "track %d: edit list out of range", trak.Tkhd.TrackID)
	}
	shift := timeline.Rescale(int64(delay), moov.Mvhd.Timescale, timescale) - mediaTime
	return Edit{Shift: shift, Present: true}, nil
}
