package hls

import (
	"bytes"
	"fmt"
	"strings"
)

// Variant is one EXT-X-STREAM-INF entry of a multivariant playlist.
type Variant struct {
	// URI of the variant's media playlist, relative to the multivariant one.
	URI string
	// Bandwidth is the peak bit rate in bits per second (see PeakBandwidth).
	Bandwidth int64
	// AverageBandwidth is the average bit rate in bits per second.
	AverageBandwidth int64
	// Codecs are RFC 6381 codec strings, for example "avc1.64001f" and
	// "mp4a.40.2".
	Codecs []string
	// Width and Height of the video.
	Width, Height int
	// FrameRate of the video (rendered with three decimals).
	FrameRate float64
}

// MultivariantPlaylist lists the renditions of one presentation.
type MultivariantPlaylist struct {
	// IndependentSegments adds EXT-X-INDEPENDENT-SEGMENTS: the segments of
	// every variant start with a picture that decodes on its own.
	IndependentSegments bool
	// Variants are the EXT-X-STREAM-INF entries, in order.
	Variants []Variant
}

// Render returns the playlist text.
func (m *MultivariantPlaylist) Render() []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	// Nothing here needs more than version 1, but the media playlists do;
	// clients use the highest anyway. RFC 8216 does not require
	// EXT-X-VERSION in a multivariant playlist without such features.
	if m.IndependentSegments {
		b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	}
	for _, v := range m.Variants {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", v.Bandwidth)
		if v.AverageBandwidth > 0 {
			fmt.Fprintf(&b, ",AVERAGE-BANDWIDTH=%d", v.AverageBandwidth)
		}
		if len(v.Codecs) > 0 {
			fmt.Fprintf(&b, ",CODECS=%q", strings.Join(v.Codecs, ","))
		}
		if v.Width > 0 && v.Height > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", v.Width, v.Height)
		}
		if v.FrameRate > 0 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", v.FrameRate)
		}
		b.WriteString("\n")
		b.WriteString(v.URI)
		b.WriteString("\n")
	}
	return b.Bytes()
}

// PeakBandwidth returns the largest bit rate, in bits per second, over any
// run of consecutive segments lasting between 0.5 and 1.5 target durations
// (Apple HLS authoring spec 9.1); a segment longer than 1.5 target
// durations counts on its own. It also returns the average over all
// segments. A [BandwidthMeter] gives the same figures without keeping the
// segments.
func PeakBandwidth(segs []Segment, targetSeconds float64) (peak, average int64) {
	m := BandwidthMeter{TargetSeconds: targetSeconds}
	for i := range segs {
		m.Add(segs[i])
	}
	return m.Bandwidth()
}

// BandwidthMeter measures the peak and average bit rate of a growing
// sequence of segments, as [PeakBandwidth] does, in memory bounded by the
// segments of 1.5 target durations: a recording that runs for days does
// not keep its segment list for the multivariant playlist. The zero value
// with TargetSeconds set is ready to use; it is not safe for concurrent
// use.
type BandwidthMeter struct {
	// TargetSeconds is the target segment duration in seconds.
	TargetSeconds float64

	totalBytes int64
	totalSec   float64
	peak       int64
	recent     []meterEntry // the segments a later window may still start at
}

type meterEntry struct {
	bytes int64
	sec   float64
}

// Add counts the next segment.
func (m *BandwidthMeter) Add(s Segment) {
	sec := s.Seconds()
	m.totalBytes += s.Bytes
	m.totalSec += sec
	m.recent = append(m.recent, meterEntry{s.Bytes, sec})
	// Every run that ends with this segment: [i..last] counts when it
	// lasts at least half a target and, unless it is this segment alone, at
	// most 1.5 targets.
	lo, hi := 0.5*m.TargetSeconds, 1.5*m.TargetSeconds
	var bytes int64
	var total float64
	last := len(m.recent) - 1
	for i := last; i >= 0; i-- {
		bytes += m.recent[i].bytes
		total += m.recent[i].sec
		if i < last && total > hi {
			break
		}
		if total >= lo && total > 0 {
			if r := int64(float64(bytes*8)/total + 0.5); r > m.peak {
				m.peak = r
			}
		}
	}
	// A segment further back than 1.5 targets cannot start a counted run
	// that ends later.
	for len(m.recent) > 0 && m.sumRecent() > hi {
		m.recent = m.recent[1:]
	}
}

func (m *BandwidthMeter) sumRecent() float64 {
	var t float64
	for _, e := range m.recent {
		t += e.sec
	}
	return t
}

// Bandwidth returns the peak and average bit rates of the segments added
// so far, in bits per second; the peak is the average when no run
// qualified.
func (m *BandwidthMeter) Bandwidth() (peak, average int64) {
	if m.totalSec > 0 {
		average = int64(float64(m.totalBytes*8)/m.totalSec + 0.5)
	}
	peak = m.peak
	if peak == 0 {
		peak = average
	}
	return peak, average
}
