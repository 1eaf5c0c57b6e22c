package sink

import (
	"path"
	"strconv"
	"strings"

	"github.com/livechunk/livechunk/chunker"
)

// Content types and cache policy of uploaded objects. Segments and init
// sections never change once written, so they are cacheable forever.
const (
	contentTypeInit = "video/mp4"
	contentTypeM4S  = "video/iso.segment"
	contentTypeTS   = "video/mp2t"
	cacheControl    = "public, max-age=31536000, immutable"
)

// CleanPrefix returns the sanitized form of a key prefix, as used by
// [InitKey], [SegmentKey] and [Config].Prefix: the prefix is treated as a
// directory, "." and ".." elements are resolved without ever leaving the
// root, empty elements and leading slashes are dropped, and a non-empty
// result ends with "/". For example "../live//cam1" becomes "live/cam1/" and
// "/" becomes "".
func CleanPrefix(prefix string) string {
	if prefix == "" {
		return ""
	}
	// Cleaning a rooted path resolves ".." against the root, so the result
	// can never escape it.
	p := strings.TrimPrefix(path.Clean("/"+prefix), "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// InitKey returns the object key of init section seq under prefix (sanitized
// with [CleanPrefix]), for example "live/init-0.mp4".
func InitKey(prefix string, seq uint64) string {
	return CleanPrefix(prefix) + "init-" + strconv.FormatUint(seq, 10) + ".mp4"
}

// SegmentKey returns the object key of media segment seq in format f under
// prefix (sanitized with [CleanPrefix]), for example "live/seg-000042.m4s" or
// "live/seg-000042.ts". The sequence number has at least six digits so that
// keys of a normal recording sort in order.
func SegmentKey(prefix string, f chunker.Format, seq uint64) string {
	n := strconv.FormatUint(seq, 10)
	if len(n) < 6 {
		n = strings.Repeat("0", 6-len(n)) + n
	}
	return CleanPrefix(prefix) + "seg-" + n + f.SegmentExt()
}

// segmentContentType returns the Content-Type of media segments in format f.
func segmentContentType(f chunker.Format) string {
	if f == chunker.TS {
		return contentTypeTS
	}
	return contentTypeM4S
}

// KeySeq returns the sequence number of a segment or init section key (of
// any prefix, in either format) and whether it names one: "seg-000042.m4s"
// is segment 42, "init-3.mp4" init section 3.
func KeySeq(key string) (seq uint64, init, ok bool) {
	name := path.Base(key)
	var num string
	switch {
	case strings.HasPrefix(name, "seg-"):
		num = strings.TrimPrefix(name, "seg-")
		if n, found := strings.CutSuffix(num, chunker.FMP4.SegmentExt()); found {
			num = n
		} else if n, found := strings.CutSuffix(num, chunker.TS.SegmentExt()); found {
			num = n
		} else {
			return 0, false, false
		}
	case strings.HasPrefix(name, "init-") && strings.HasSuffix(name, ".mp4"):
		num, init = strings.TrimSuffix(strings.TrimPrefix(name, "init-"), ".mp4"), true
	default:
		return 0, false, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, init, true
}

// InitEvent returns the Event that reports init section in as durable under
// prefix, as a Sink reports it after uploading it; Accepted is left zero.
// An init without data (MPEG-TS output) has no Key. A destination other
// than a Sink (a chunker.Output of the caller's) describes what it stored
// with it, for hls.SegmentOf and for hooks that take Events.
func InitEvent(prefix string, in *chunker.Init) Event {
	ev := Event{Kind: KindInit, Seq: in.Seq, Bytes: len(in.Data), Init: in}
	if len(in.Data) > 0 {
		ev.Key = InitKey(prefix, in.Seq)
	}
	return ev
}

// SegmentEvent returns the Event that reports seg as durable under prefix at
// SegmentKey(prefix, seg.Format, seg.Seq), as a Sink reports it after
// uploading it; Accepted is left zero. The Event does not hold seg: it
// stays valid after seg is released.
func SegmentEvent(prefix string, seg *chunker.Segment) Event {
	info := SegmentInfo{
		Seq:           seg.Seq,
		Format:        seg.Format,
		Timescale:     seg.Timescale,
		FirstDTS:      seg.FirstDTS,
		FirstPTS:      seg.FirstPTS,
		Duration:      seg.Duration,
		Frames:        seg.Frames,
		Keyframes:     seg.Keyframes,
		Discontinuity: seg.Discontinuity,
		Long:          seg.Long,
		FrameRate:     seg.FrameRate,
		Size:          len(seg.Data),
	}
	if seg.Init != nil {
		info.InitSeq = seg.Init.Seq
	}
	return Event{
		Kind:    KindSegment,
		Seq:     seg.Seq,
		Key:     SegmentKey(prefix, seg.Format, seg.Seq),
		Bytes:   len(seg.Data),
		Init:    seg.Init,
		Segment: info,
	}
}
