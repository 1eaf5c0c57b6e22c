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
	// IndependentSegments adds EXT-X-INDEPENDENT-SEGMENTS (default in
	// NewMultivariant: every livechunk segment starts with an IDR picture).
	IndependentSegments bool
	Variants            []Variant
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
// segments.
func PeakBandwidth(segs []Segment, targetSeconds float64) (peak, average int64) {
	var totalBytes int64
	var totalSec float64
	for i := range segs {
		totalBytes += segs[i].Bytes
		totalSec += segs[i].Seconds()
		var bytes int64
		var sec float64
		for j := i; j < len(segs); j++ {
			bytes += segs[j].Bytes
			sec += segs[j].Seconds()
			if sec > 1.5*targetSeconds && j > i {
				break
			}
			if sec >= 0.5*targetSeconds || j == i && sec > 1.5*targetSeconds {
				if sec > 0 {
					if r := int64(float64(bytes*8)/sec + 0.5); r > peak {
						peak = r
					}
				}
			}
		}
	}
	if totalSec > 0 {
		average = int64(float64(totalBytes*8)/totalSec + 0.5)
	}
	if peak == 0 {
		peak = average
	}
	return peak, average
}
