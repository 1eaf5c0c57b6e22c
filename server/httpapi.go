package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/livechunk/livechunk/internal/httpx"
	"gocloud.dev/blob"
)

// The pages of /api/streams (see StreamsPage).
const (
	// DefaultStreamsLimit is the size of a page of streams when none is
	// asked for.
	DefaultStreamsLimit = 100
	// MaxStreamsLimit is the largest page of streams: each one costs a
	// read of its playlist.
	MaxStreamsLimit = 1000
)

// StreamsPage selects one page of Server.Streams. The streams are in the
// byte order of their names; a page holds the first Limit of those whose
// names sort after After.
type StreamsPage struct {
	// After is the name the page starts after: "" for the first page,
	// the next name returned with the previous page for the others. It
	// need not be the name of a stream.
	After string
	// Limit is the most streams in the page: DefaultStreamsLimit when 0
	// or less, MaxStreamsLimit when above it.
	Limit int
}

func (p StreamsPage) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultStreamsLimit
	case p.Limit > MaxStreamsLimit:
		return MaxStreamsLimit
	}
	return p.Limit
}

// streamNames returns the first limit names of streams (those with a
// directory in the bucket, and the live ones) that sort after after, and
// whether there are more. The listing of the bucket is read whole (one
// name per stream), but only limit+1 names are kept: the cost of a page
// (a playlist read per stream) does not grow with the bucket.
func (s *Server) streamNames(ctx context.Context, after string, limit int) (names []string, more bool, err error) {
	keep := func(n string) {
		if n > after {
			names = append(names, n)
		}
		// Trim to the smallest limit+1 now and then: memory stays
		// bounded by the page, the work is n log(limit).
		if len(names) > 2*(limit+1) {
			slices.Sort(names)
			names = slices.Compact(names)
			names = names[:min(len(names), limit+1)]
		}
	}
	// The listing's order is that of the keys ("cam-1/" before "cam/"),
	// not of the names: no early stop.
	it := s.cfg.Bucket.List(&blob.ListOptions{Prefix: s.cfg.Prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if obj.IsDir {
			n := strings.TrimSuffix(strings.TrimPrefix(obj.Key, s.cfg.Prefix), "/")
			if ValidStreamName(n) {
				keep(n)
			}
		}
	}
	s.mu.Lock()
	for n := range s.live {
		keep(n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > limit {
		return names[:limit], true, nil
	}
	return names, false, nil
}

// known reports whether a stream called name exists: live on this node,
// with ingest state, or with objects in the bucket.
func (s *Server) known(ctx context.Context, name string) (bool, error) {
	if st, _ := s.getStream(name, false); st != nil {
		return true, nil
	}
	if vs, err := s.store.versions(ctx, name); err != nil || len(vs) > 0 {
		return len(vs) > 0, err
	}
	it := s.cfg.Bucket.List(&blob.ListOptions{Prefix: s.streamPrefix(name)})
	if _, err := it.Next(ctx); err == io.EOF {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// handleAPIStream answers GET /api/streams/{stream}: the StreamInfo of
// one stream (what the /watch page polls), 404 when there is none.
func (s *Server) handleAPIStream(w http.ResponseWriter, r *http.Request) {
	httpx.SetMediaCORS(w.Header(), r, s.cfg.PlaybackOrigins)
	name := r.PathValue("stream")
	if !ValidStreamName(name) {
		failStatus(w, http.StatusNotFound, "no stream %q", name)
		return
	}
	ok, err := s.known(r.Context(), name)
	switch {
	case err != nil:
		failStatus(w, http.StatusBadGateway, "looking for stream %q: %v", name, err)
	case !ok:
		failStatus(w, http.StatusNotFound, "no stream %q", name)
	default:
		writeJSONFor(w, r, http.StatusOK, s.info(r.Context(), name))
	}
}

// streamsPageOf reads the page that a request to /api/streams asks for
// (?after=NAME&limit=N).
func streamsPageOf(r *http.Request) (StreamsPage, error) {
	q := r.URL.Query()
	var p StreamsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxStreamsLimit {
			return p, fmt.Errorf("invalid limit %q (1 to %d)", v, MaxStreamsLimit)
		}
		p.Limit = n
	}
	p.After = q.Get("after")
	if len(p.After) > 64 {
		return p, fmt.Errorf("invalid after %q (a stream name)", p.After)
	}
	return p, nil
}

// nextLink is the Link header of the page of /api/streams that follows
// the one ending at next.
func (s *Server) nextLink(next string, limit int) string {
	q := url.Values{"after": {next}, "limit": {strconv.Itoa(limit)}}
	return fmt.Sprintf(`<%s?%s>; rel="next"`, s.url("/api/streams"), q.Encode())
}

// minGzip is the smallest answer worth compressing.
const minGzip = 1024

// gzipped returns body compressed with gzip when r accepts it, the answer
// is a success and body is worth it (minGzip); it sets the headers that
// say so (Content-Encoding, and Vary in any case: the answer depends on
// Accept-Encoding). The one place JSON answers are compressed; refusals
// stay small and plain.
func gzipped(h http.Header, r *http.Request, status int, body []byte) []byte {
	h.Add("Vary", "Accept-Encoding")
	if status < 200 || status > 299 || len(body) < minGzip || !httpx.AcceptsGzip(r) {
		return body
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	_, _ = zw.Write(body)
	if zw.Close() != nil {
		return body
	}
	h.Set("Content-Encoding", "gzip")
	return b.Bytes()
}

// setMissing fills in the given-up chunks of in from spans: the first
// maxMissing ranges, their total number and the number of chunks in all.
func (in *StreamInfo) setMissing(spans []span) {
	in.Missing, in.MissingRanges, in.MissingCount = nil, len(spans), 0
	for i, sp := range spans {
		if i < maxMissing {
			in.Missing = append(in.Missing, [2]uint64(sp))
		}
		in.MissingCount += sp[1] - sp[0] + 1
	}
}

// maxMissing bounds the ranges of missing chunks listed in a StreamInfo.
const maxMissing = 100

// vodETag returns a strong entity tag for the object key that rd reads
// (for If-None-Match, If-Range and Range, answered by http.ServeContent):
// the MD5 of its bytes when the store keeps one, else the store's own
// strong ETag, else its size and modification time. The attributes are
// read apart from rd; they are used only when they describe the same
// version (the same size and time).
func vodETag(ctx context.Context, b *blob.Bucket, key string, rd *blob.Reader) string {
	fallback := fmt.Sprintf(`"%x-%x"`, rd.Size(), rd.ModTime().UnixNano())
	a, err := b.Attributes(ctx, key)
	if err != nil || a.Size != rd.Size() || !a.ModTime.Equal(rd.ModTime()) {
		return fallback
	}
	if len(a.MD5) > 0 {
		return `"` + hex.EncodeToString(a.MD5) + `"`
	}
	t := strings.Trim(a.ETag, `"`)
	if a.ETag == "" || strings.HasPrefix(a.ETag, "W/") || strings.ContainsFunc(t, func(c rune) bool {
		return c == '"' || c <= ' ' || c == 0x7f // not an etagc (RFC 9110, section 8.8.3)
	}) {
		return fallback
	}
	return `"` + t + `"`
}

// ingestMethod is the method of the ingest route whose path goes on with
// n after the stream name ("" for /ingest/{stream}): POST for a pushed
// body and for an end, PUT for a chunk.
func ingestMethod(n string) string {
	if n == "" || n == "end" {
		return http.MethodPost
	}
	return http.MethodPut
}

// handleIngestOther answers the requests under /ingest/ that no ingest
// route takes, in JSON like every ingest answer: 405 with Allow when the
// path names an ingest resource and the method is not one of its (204
// with Allow for OPTIONS), 404 otherwise.
func (s *Server) handleIngestOther(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/ingest/"), "/")
	allow := ""
	switch {
	case slices.Contains(parts, ""):
	case len(parts) == 1:
		allow = ingestMethod("")
	case len(parts) == 2:
		allow = ingestMethod(parts[1])
	}
	if allow == "" {
		in := s.url("/ingest/")
		failStatus(w, http.StatusNotFound, "no ingest route %q (PUT %s{stream}/{n}, POST %s{stream}, POST %s{stream}/end)", s.url(r.URL.Path), in, in, in)
		return
	}
	w.Header().Set("Allow", allow+", OPTIONS")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	failStatus(w, http.StatusMethodNotAllowed, "%s is not allowed on %q (allowed: %s)", r.Method, s.url(r.URL.Path), allow)
}
