package hls

import (
	"path"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
)

// SegmentOf returns the playlist entry of the durable segment that ev
// reports, for a playlist next to it (under the same prefix): its URI and,
// for fMP4, its init section's (EXT-X-MAP) by name, its exact duration,
// its discontinuity and its size. at is its program date time (zero:
// none). With a Sink, ev comes from sink.Config.OnDurable; a destination
// of the caller's makes it with sink.SegmentEvent. [Publisher.Add] takes
// the result.
//
// If ev.Kind is not sink.KindSegment (an init section), SegmentOf returns
// the zero Segment, which Publisher.Add refuses with ErrInvalidSegment.
func SegmentOf(ev sink.Event, at time.Time) Segment {
	if ev.Kind != sink.KindSegment {
		return Segment{}
	}
	si := ev.Segment
	seg := Segment{
		URI:             path.Base(ev.Key),
		Duration:        si.Duration,
		Timescale:       si.Timescale,
		Discontinuity:   si.Discontinuity,
		ProgramDateTime: at,
		Bytes:           int64(si.Size),
	}
	if si.Format == chunker.FMP4 && ev.Init != nil {
		seg.Map = sink.InitKey("", ev.Init.Seq)
	}
	return seg
}
