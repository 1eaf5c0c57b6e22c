// Package hlscheck validates media playlists against the rules livechunk
// keeps: RFC 8216's (the tags of section 4, the lowest EXT-X-VERSION of
// section 7, the updates and live windows of section 6.2) and a program
// date time on the first segment of a live or event playlist and after
// each discontinuity. It parses independently of package hls so the two
// cannot share a bug.
package hlscheck

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Entry is one segment of a checked playlist.
type Entry struct {
	Seq           uint64
	URI           string
	Seconds       float64
	Discontinuity bool
	Map           string
	PDT           string
}

// Media is what Check learned about a playlist.
type Media struct {
	Version        int
	Target         int
	MediaSeq       uint64
	DiscSeq        uint64
	HasDiscSeq     bool
	Type           string
	Ended          bool
	Independent    bool
	Entries        []Entry
	TotalSeconds   float64
	DiscBeforeHead int // discontinuity tags among entries
}

var pdtRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)

// Check validates one media playlist and returns what it found and every
// rule it breaks.
func Check(text string) (*Media, []error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	m := &Media{}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	if len(lines) == 0 || lines[0] != "#EXTM3U" {
		fail("first line is not #EXTM3U")
		return m, errs
	}
	seen := map[string]int{}
	var cur Entry
	haveInf := false
	needVersion := 1
	curMap := ""
	haveTarget := false
	for i, l := range lines[1:] {
		n := i + 2
		if l == "" {
			continue
		}
		tag, val, _ := strings.Cut(l, ":")
		if strings.HasPrefix(l, "#EXT") {
			seen[tag]++
		}
		switch tag {
		case "#EXT-X-VERSION":
			v, err := strconv.Atoi(val)
			if err != nil {
				fail("line %d: bad version %q", n, val)
			}
			m.Version = v
		case "#EXT-X-TARGETDURATION":
			v, err := strconv.Atoi(val)
			if err != nil || v < 1 {
				fail("line %d: target duration %q is not a positive integer", n, val)
			}
			m.Target = v
			haveTarget = true
		case "#EXT-X-MEDIA-SEQUENCE":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				fail("line %d: media sequence %q", n, val)
			}
			if len(m.Entries) > 0 || haveInf {
				fail("line %d: EXT-X-MEDIA-SEQUENCE after the first segment", n)
			}
			m.MediaSeq = v
		case "#EXT-X-DISCONTINUITY-SEQUENCE":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				fail("line %d: discontinuity sequence %q", n, val)
			}
			if len(m.Entries) > 0 || haveInf {
				fail("line %d: EXT-X-DISCONTINUITY-SEQUENCE after the first segment", n)
			}
			m.DiscSeq = v
			m.HasDiscSeq = true
		case "#EXT-X-PLAYLIST-TYPE":
			if val != "VOD" && val != "EVENT" {
				fail("line %d: playlist type %q", n, val)
			}
			m.Type = val
		case "#EXT-X-ENDLIST":
			m.Ended = true
		case "#EXT-X-INDEPENDENT-SEGMENTS":
			m.Independent = true
		case "#EXT-X-DISCONTINUITY":
			cur.Discontinuity = true
			m.DiscBeforeHead++
		case "#EXT-X-MAP":
			if !strings.HasPrefix(val, `URI="`) {
				fail("line %d: EXT-X-MAP without quoted URI", n)
			}
			uri := strings.TrimPrefix(val, `URI="`)
			uri, _, _ = strings.Cut(uri, `"`)
			curMap = uri
			if needVersion < 6 {
				needVersion = 6
			}
		case "#EXT-X-PROGRAM-DATE-TIME":
			if !pdtRE.MatchString(val) {
				fail("line %d: program date time %q lacks milliseconds or zone", n, val)
			}
			if _, err := time.Parse(time.RFC3339Nano, val); err != nil {
				fail("line %d: program date time %q: %v", n, val, err)
			}
			cur.PDT = val
		case "#EXTINF":
			d, _, ok := strings.Cut(val, ",")
			if !ok {
				fail("line %d: EXTINF without comma", n)
			}
			f, err := strconv.ParseFloat(d, 64)
			if err != nil || f <= 0 {
				fail("line %d: EXTINF %q", n, d)
			}
			if strings.Contains(d, ".") && needVersion < 3 {
				needVersion = 3
			}
			cur.Seconds = f
			haveInf = true
		default:
			if strings.HasPrefix(l, "#EXT") {
				fail("line %d: unexpected tag %q", n, tag)
				continue
			}
			if strings.HasPrefix(l, "#") {
				continue
			}
			if !haveInf {
				fail("line %d: URI %q without EXTINF", n, l)
			}
			cur.URI = l
			cur.Map = curMap
			cur.Seq = m.MediaSeq + uint64(len(m.Entries))
			if strings.HasSuffix(l, ".m4s") && curMap == "" {
				fail("line %d: fMP4 segment %q without EXT-X-MAP", n, l)
			}
			m.Entries = append(m.Entries, cur)
			m.TotalSeconds += cur.Seconds
			cur = Entry{}
			haveInf = false
		}
	}
	if haveInf {
		fail("EXTINF without URI at the end")
	}
	for _, once := range []string{"#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-PLAYLIST-TYPE", "#EXT-X-ENDLIST", "#EXT-X-INDEPENDENT-SEGMENTS"} {
		if seen[once] > 1 {
			fail("%s appears %d times", once, seen[once])
		}
	}
	if !haveTarget {
		fail("no EXT-X-TARGETDURATION")
	}
	if needVersion > 1 && m.Version != needVersion {
		fail("EXT-X-VERSION is %d, the features used need exactly %d (lowest correct)", m.Version, needVersion)
	}
	for _, e := range m.Entries {
		if r := int(math.Floor(e.Seconds + 0.5)); r > m.Target {
			fail("segment %s: EXTINF %.6f rounds to %d > target %d", e.URI, e.Seconds, r, m.Target)
		}
	}
	if m.Type == "VOD" && !m.Ended {
		fail("VOD playlist without EXT-X-ENDLIST")
	}
	if len(m.Entries) > 0 && m.Entries[0].PDT == "" && m.Type != "VOD" {
		fail("live/event playlist without EXT-X-PROGRAM-DATE-TIME on its first segment")
	}
	for _, e := range m.Entries {
		if e.Discontinuity && e.PDT == "" && m.Type != "VOD" {
			fail("segment %s after a discontinuity lacks EXT-X-PROGRAM-DATE-TIME", e.URI)
		}
	}
	if m.Type == "" && !m.Ended && len(m.Entries) > 0 {
		// Live: the window must cover three target durations, unless the
		// stream is still younger than that (all segments since 0 listed).
		if m.TotalSeconds < 3*float64(m.Target)-0.001 && m.MediaSeq > 0 {
			fail("live window of %.3fs is shorter than 3 target durations (%ds)", m.TotalSeconds, 3*m.Target)
		}
		if !m.HasDiscSeq {
			fail("live playlist without EXT-X-DISCONTINUITY-SEQUENCE")
		}
	}
	return m, errs
}

// CheckUpdate validates that next is a legal update of prev (RFC 8216
// section 6.2.1): the target duration never changes, the media sequence
// never decreases, segments are only removed from the head and added at the
// tail with the same URIs and durations, the discontinuity sequence grows by
// exactly the number of removed discontinuities, and playlist types keep
// their promises.
func CheckUpdate(prev, next *Media) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if prev.Target != next.Target {
		fail("target duration changed from %d to %d", prev.Target, next.Target)
	}
	if next.MediaSeq < prev.MediaSeq {
		fail("media sequence went back from %d to %d", prev.MediaSeq, next.MediaSeq)
	}
	if prev.Type != next.Type {
		fail("playlist type changed from %q to %q", prev.Type, next.Type)
	}
	if prev.Ended {
		fail("playlist changed after EXT-X-ENDLIST")
	}
	if prev.Type == "EVENT" && next.MediaSeq != prev.MediaSeq {
		fail("EVENT playlist removed segments")
	}
	removed := int(next.MediaSeq - prev.MediaSeq)
	if removed > len(prev.Entries) {
		fail("media sequence jumped by %d, more than the %d segments listed", removed, len(prev.Entries))
		return errs
	}
	var removedDisc uint64
	for _, e := range prev.Entries[:removed] {
		if e.Discontinuity {
			removedDisc++
		}
	}
	if next.DiscSeq != prev.DiscSeq+removedDisc {
		fail("discontinuity sequence %d, want %d (+%d removed)", next.DiscSeq, prev.DiscSeq+removedDisc, removedDisc)
	}
	kept := prev.Entries[removed:]
	if len(next.Entries) < len(kept) {
		fail("segments removed from the tail")
		return errs
	}
	for i, e := range kept {
		n := next.Entries[i]
		if n.URI != e.URI || n.Seconds != e.Seconds || n.Discontinuity != e.Discontinuity || n.Map != e.Map {
			fail("segment %d changed: %+v -> %+v", e.Seq, e, n)
		}
	}
	return errs
}
