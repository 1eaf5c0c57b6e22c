// Package hls writes, parses and serves HTTP Live Streaming playlists for the
// segments livechunk produces: live (sliding window), EVENT and VOD media
// playlists, multivariant playlists, and an http.Handler that serves
// playlists and segments from any gocloud.dev/blob bucket.
//
// Playlists follow RFC 8216 and Apple's HLS Authoring Specification: the
// lowest EXT-X-VERSION the features need (RFC 8216 section 7), an
// EXT-X-TARGETDURATION that every rounded EXTINF respects (section 4.3.3.1)
// and that does not change during a playlist's life (section 6.2.1) unless
// a segment outlasts it (see PublisherStats.TargetDurationRaised), EXTINF
// computed from exact tick durations, EXT-X-MAP for fMP4 (section 4.3.2.5),
// EXT-X-DISCONTINUITY wherever the chunker marked one (section 4.3.2.3),
// and live windows and deletions as section 6.2.2 asks.
//
// A [Publisher] is safe for concurrent use; a [Handler] serves requests
// concurrently. The other types are plain values, not safe for concurrent
// use while they are modified. Nothing in this package starts a goroutine.
// Errors are returned wrapped; test with errors.Is: [ErrInvalidConfig],
// [ErrInvalidSegment], [ErrPublisherFinished] and [ErrBadKey] reject a call,
// [ErrParse] a playlist text, and errors of the bucket keep their gcerrors
// code.
package hls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is the playlist type.
type Type int

const (
	// Live is a sliding-window live playlist: no EXT-X-PLAYLIST-TYPE, old
	// segments leave from the head.
	Live Type = iota
	// Event is an append-only playlist (EXT-X-PLAYLIST-TYPE:EVENT).
	Event
	// VOD is a complete, immutable playlist (EXT-X-PLAYLIST-TYPE:VOD).
	VOD
)

// valid reports whether t is Live, Event or VOD.
func (t Type) valid() bool { return t == Live || t == Event || t == VOD }

// Errors of the arguments of NewPublisher and Publisher.Add.
var (
	// ErrInvalidConfig: a nil bucket, or a PublisherConfig value that no
	// default stands for (an unknown Type, a negative duration).
	ErrInvalidConfig = errors.New("hls: invalid configuration")
	// ErrInvalidSegment: a segment without a timescale or a positive
	// duration.
	ErrInvalidSegment = errors.New("hls: invalid segment")
	// ErrPublisherFinished: Add after Finish.
	ErrPublisherFinished = errors.New("hls: Add after Finish")
)

// String returns "live", "event" or "vod".
func (t Type) String() string {
	switch t {
	case Live:
		return "live"
	case Event:
		return "event"
	case VOD:
		return "vod"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Segment is one media segment entry of a media playlist.
type Segment struct {
	// URI of the segment, relative to the playlist.
	URI string
	// Duration in ticks of Timescale (exact); EXTINF is derived from it.
	Duration int64
	// Timescale is the number of ticks per second of Duration.
	Timescale uint32
	// Discontinuity puts EXT-X-DISCONTINUITY before the segment.
	Discontinuity bool
	// Map is the URI of the init section (EXT-X-MAP) the segment needs, or
	// "" for self-contained (TS) segments.
	Map string
	// ProgramDateTime is the wall-clock time of the segment's first sample;
	// zero means unknown.
	ProgramDateTime time.Time
	// Bytes is the segment size (not rendered; used for bandwidth).
	Bytes int64
}

// Seconds returns the exact duration in seconds as a float (for EXTINF).
func (s Segment) Seconds() float64 {
	if s.Timescale == 0 {
		return 0
	}
	return float64(s.Duration) / float64(s.Timescale)
}

// MediaPlaylist is an HLS media playlist.
type MediaPlaylist struct {
	// Type is Live (no EXT-X-PLAYLIST-TYPE), Event or VOD.
	Type Type
	// TargetDuration in whole seconds. When zero, Render computes it from
	// the segments (fine for VOD; live playlists must fix it up front).
	TargetDuration int
	// MediaSequence is the sequence number of the first segment listed.
	MediaSequence uint64
	// DiscontinuitySequence counts EXT-X-DISCONTINUITY tags removed from the
	// head.
	DiscontinuitySequence uint64
	// IndependentSegments adds EXT-X-INDEPENDENT-SEGMENTS: every segment
	// starts with a picture that decodes on its own (the chunker's do,
	// unless chunker.Config.OpenGOP is set).
	IndependentSegments bool
	// Ended adds EXT-X-ENDLIST.
	Ended bool
	// Segments in order.
	Segments []Segment
}

// ExtinfRound returns a duration in seconds rounded to the nearest integer,
// as RFC 8216 section 4.3.3.1 compares EXTINF with the target duration.
func ExtinfRound(sec float64) int { return int(math.Floor(sec + 0.5)) }

// ComputeTargetDuration returns the smallest valid EXT-X-TARGETDURATION for
// the segments (at least 1).
func ComputeTargetDuration(segs []Segment) int {
	td := 1
	for _, s := range segs {
		if r := ExtinfRound(s.Seconds()); r > td {
			td = r
		}
	}
	return td
}

// Version returns the lowest EXT-X-VERSION that the playlist's features need
// (RFC 8216 section 7): 3 for decimal EXTINF, 6 for EXT-X-MAP in a media
// playlist that is not I-frames only.
func (p *MediaPlaylist) Version() int {
	v := 3 // decimal EXTINF durations
	for _, s := range p.Segments {
		if s.Map != "" {
			v = 6
			break
		}
	}
	return v
}

// appendExtinf appends seconds with up to 6 decimals (at least 3).
func appendExtinf(b []byte, sec float64) []byte {
	start := len(b)
	b = strconv.AppendFloat(b, sec, 'f', 6, 64)
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	if i := bytes.IndexByte(b[start:], '.'); i >= 0 {
		for len(b)-start-i-1 < 3 {
			b = append(b, '0')
		}
	}
	return b
}

// Render returns the playlist text.
func (p *MediaPlaylist) Render() []byte {
	return p.AppendRender(make([]byte, 0, 128+96*len(p.Segments)))
}

// AppendRender appends the playlist text to b and returns the extended
// slice, as Render but into a buffer the caller can reuse: a live or EVENT
// playlist is rendered again on every segment, and an EVENT playlist of N
// segments would otherwise make O(N²) bytes of garbage over its life.
func (p *MediaPlaylist) AppendRender(b []byte) []byte {
	td := p.TargetDuration
	if td == 0 {
		td = ComputeTargetDuration(p.Segments)
	}
	b = append(b, "#EXTM3U\n#EXT-X-VERSION:"...)
	b = strconv.AppendInt(b, int64(p.Version()), 10)
	b = append(b, "\n#EXT-X-TARGETDURATION:"...)
	b = strconv.AppendInt(b, int64(td), 10)
	b = append(b, "\n#EXT-X-MEDIA-SEQUENCE:"...)
	b = strconv.AppendUint(b, p.MediaSequence, 10)
	b = append(b, '\n')
	if p.DiscontinuitySequence > 0 || p.Type == Live {
		// A live stream that may ever contain a discontinuity carries it
		// (Apple 8.17); it is cheap to always carry it in live playlists.
		b = append(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"...)
		b = strconv.AppendUint(b, p.DiscontinuitySequence, 10)
		b = append(b, '\n')
	}
	switch p.Type {
	case Event:
		b = append(b, "#EXT-X-PLAYLIST-TYPE:EVENT\n"...)
	case VOD:
		b = append(b, "#EXT-X-PLAYLIST-TYPE:VOD\n"...)
	}
	if p.IndependentSegments {
		b = append(b, "#EXT-X-INDEPENDENT-SEGMENTS\n"...)
	}
	curMap := ""
	for i, s := range p.Segments {
		if s.Discontinuity {
			b = append(b, "#EXT-X-DISCONTINUITY\n"...)
		}
		if s.Map != "" && s.Map != curMap {
			b = append(b, "#EXT-X-MAP:URI=\""...)
			b = append(b, s.Map...)
			b = append(b, "\"\n"...)
			curMap = s.Map
		}
		if !s.ProgramDateTime.IsZero() && (i == 0 || s.Discontinuity || p.Segments[i-1].ProgramDateTime.IsZero()) {
			b = append(b, "#EXT-X-PROGRAM-DATE-TIME:"...)
			b = s.ProgramDateTime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
			b = append(b, '\n')
		}
		b = append(b, "#EXTINF:"...)
		b = appendExtinf(b, s.Seconds())
		b = append(b, ",\n"...)
		b = append(b, s.URI...)
		b = append(b, '\n')
	}
	if p.Ended {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	}
	return b
}

// ErrParse is returned (wrapped) by ParseMedia and LoadMedia for playlists
// that cannot be parsed.
var ErrParse = errors.New("hls: cannot parse playlist")

// extinfTimescale is the timescale of durations parsed from EXTINF.
const extinfTimescale = 1000000

// ParseMedia parses a media playlist as written by Render (and the common
// subset other muxers write). EXTINF durations come back in microseconds
// (Timescale 1000000) unless a "#EXT-X-LIVECHUNK-TICKS" comment carries the
// exact ticks.
func ParseMedia(data []byte) (*MediaPlaylist, error) {
	p := &MediaPlaylist{Type: Live}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	var cur Segment
	haveInf := false
	curMap := ""
	var pdt time.Time
	var lastPDT time.Time
	var lastEnd time.Duration
	first := true
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		if first {
			if l != "#EXTM3U" {
				return nil, fmt.Errorf("%w: line 1: missing #EXTM3U", ErrParse)
			}
			first = false
			continue
		}
		bad := func(err error) error { return fmt.Errorf("%w: line %d: %q: %v", ErrParse, line, l, err) }
		tag, val, _ := strings.Cut(l, ":")
		switch {
		case tag == "#EXT-X-VERSION":
			if _, err := strconv.Atoi(val); err != nil {
				return nil, bad(err)
			}
		case tag == "#EXT-X-TARGETDURATION":
			v, err := strconv.Atoi(val)
			if err != nil || v < 0 {
				return nil, bad(fmt.Errorf("target duration %q", val))
			}
			p.TargetDuration = v
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, bad(err)
			}
			p.MediaSequence = v
		case tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, bad(err)
			}
			p.DiscontinuitySequence = v
		case tag == "#EXT-X-PLAYLIST-TYPE":
			switch val {
			case "VOD":
				p.Type = VOD
			case "EVENT":
				p.Type = Event
			default:
				return nil, bad(fmt.Errorf("playlist type %q", val))
			}
		case tag == "#EXT-X-INDEPENDENT-SEGMENTS":
			p.IndependentSegments = true
		case tag == "#EXT-X-ENDLIST":
			p.Ended = true
		case tag == "#EXT-X-DISCONTINUITY":
			cur.Discontinuity = true
		case tag == "#EXT-X-MAP":
			attrs, err := parseAttributes(val)
			if err != nil {
				return nil, bad(err)
			}
			uri, ok := attrs["URI"]
			if !ok || uri == "" || !strings.Contains(val, `URI="`) {
				return nil, bad(errors.New("EXT-X-MAP without a quoted URI"))
			}
			curMap = uri
		case tag == "#EXT-X-PROGRAM-DATE-TIME":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return nil, bad(err)
			}
			pdt = t
		case tag == "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			sec, err := strconv.ParseFloat(strings.TrimSpace(d), 64)
			if err != nil || sec < 0 || math.IsInf(sec, 0) || math.IsNaN(sec) || sec > 1e7 {
				return nil, bad(fmt.Errorf("duration %q", d))
			}
			cur.Duration = int64(math.Round(sec * extinfTimescale))
			cur.Timescale = extinfTimescale
			haveInf = true
		case strings.HasPrefix(l, "#"):
			// Unknown tags and comments are ignored (RFC 8216 section 4.1).
		default:
			if !haveInf {
				return nil, bad(errors.New("URI without EXTINF"))
			}
			cur.URI = l
			cur.Map = curMap
			switch {
			case !pdt.IsZero():
				cur.ProgramDateTime = pdt
			case !lastPDT.IsZero() && !cur.Discontinuity:
				cur.ProgramDateTime = lastPDT.Add(lastEnd)
			}
			if !cur.ProgramDateTime.IsZero() {
				lastPDT = cur.ProgramDateTime
				lastEnd = time.Duration(cur.Duration) * time.Microsecond
			}
			p.Segments = append(p.Segments, cur)
			cur = Segment{}
			pdt = time.Time{}
			haveInf = false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParse, err)
	}
	if first {
		return nil, fmt.Errorf("%w: empty", ErrParse)
	}
	return p, nil
}

// parseAttributes parses an attribute list (RFC 8216 section 4.2).
func parseAttributes(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("attribute list %q", s)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted string in %q", s)
			}
			val = rest[1 : end+1]
			rest = rest[end+2:]
		} else {
			val, rest, _ = strings.Cut(rest, ",")
			if strings.ContainsAny(val, "\"\r\n") {
				return nil, fmt.Errorf("stray quote in attribute value %q", val)
			}
			rest = "," + rest
			if rest == "," {
				rest = ""
			}
		}
		out[strings.TrimSpace(name)] = val
		rest = strings.TrimPrefix(rest, ",")
		s = rest
	}
	return out, nil
}
