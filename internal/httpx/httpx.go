// Package httpx holds the HTTP header rules that package hls (playlists
// and segments) and package server (the VOD file, the JSON API, ingest)
// share: which origins may read media or write to ingest (CORS), and
// content-coding negotiation. It is their one home.
package httpx

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// MediaMethods are the methods a media resource (playlist, segment, VOD
// file) answers: its Allow header and the methods a preflight grants.
const MediaMethods = "GET, HEAD, OPTIONS"

// exposedHeaders are the response headers, beyond the CORS-safelisted ones,
// that a script on another origin (hls.js, a player reading ranges of a
// file) needs to read: the length and range of a partial answer, whether
// ranges are served, the validators it revalidates with, and the age and
// date of a cached copy (players estimate the live edge with them).
// Content-Length and Last-Modified are safelisted by the Fetch standard
// now, but not by every browser in use. Link names the next page of a
// listing.
const exposedHeaders = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Age, Date, Link"

// Origins lists web origins ("https://app.example.com": scheme, host and
// port, compared exactly with what browsers send in Origin); "*" stands
// for every origin. It is the one rule of which pages a CORS answer
// grants: to read media (hls.Handler.AllowOrigins) and to write to
// ingest (server.Config.AllowOrigins).
type Origins []string

// Any reports whether o holds "*".
func (o Origins) Any() bool { return slices.Contains(o, "*") }

// Allows reports whether o lets pages of origin in: origin is not empty,
// and o holds it or "*".
func (o Origins) Allows(origin string) bool {
	return origin != "" && (o.Any() || slices.Contains(o, origin))
}

// media reports whether the answer to a page of origin may be read, and
// with which Access-Control-Allow-Origin: "*" when allow is empty (every
// origin, the default of media) or holds "*"; origin itself when allow
// holds it; none otherwise. The answer depends on the origin (Vary:
// Origin) unless it is "*".
func (o Origins) media(origin string) (grant string, varies bool) {
	switch {
	case len(o) == 0 || o.Any():
		return "*", false
	case o.Allows(origin):
		return origin, true
	}
	return "", true
}

// SetMediaCORS sets the headers that let a page read a media answer to r
// (and its headers, see exposedHeaders): on every answer of a media
// resource, errors included, so that a script can read why it failed.
// allow lists the origins whose pages may read it. Empty, every origin
// may (Access-Control-Allow-Origin: *, the same answer for all: public
// media is commonly played by pages of other sites). Otherwise the answer
// grants r's Origin when allow lets it in (see Origins.Allows), and no
// origin else; it carries Vary: Origin either way, so that a cache keeps
// the answer of one origin from another.
func SetMediaCORS(h http.Header, r *http.Request, allow Origins) {
	grant, varies := allow.media(r.Header.Get("Origin"))
	if varies && !slices.Contains(h.Values("Vary"), "Origin") { // once, when called again (Preflight)
		h.Add("Vary", "Origin")
	}
	if grant == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", grant)
	h.Set("Access-Control-Expose-Headers", exposedHeaders)
}

// Preflight answers an OPTIONS request r to a media resource, a CORS
// preflight or not: 204 with Allow and, to a page that allow lets read
// (see SetMediaCORS), the grant of GET and HEAD with the request headers
// players send (Range, the conditional ones), which browsers may cache
// for a day. A page of another origin gets the 204 without a grant: its
// browser does not send the request.
func Preflight(w http.ResponseWriter, r *http.Request, allow Origins) {
	h := w.Header()
	SetMediaCORS(h, r, allow)
	h.Set("Allow", MediaMethods)
	if h.Get("Access-Control-Allow-Origin") != "" {
		h.Set("Access-Control-Allow-Methods", MediaMethods)
		h.Set("Access-Control-Allow-Headers", "Range, If-Range, If-None-Match, If-Modified-Since")
		h.Set("Access-Control-Max-Age", "86400")
	}
	w.WriteHeader(http.StatusNoContent)
}

// AcceptsGzip reports whether the request's Accept-Encoding names gzip with
// a quality above 0 (RFC 9110, section 12.5.3). A bare "*" does not count:
// gzip is sent only to clients that name it.
func AcceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
				continue
			}
			// q=0 among the parameters, wherever, refuses it.
			for param := range strings.SplitSeq(params, ";") {
				name, q, ok := strings.Cut(strings.TrimSpace(param), "=")
				if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
					return err != nil || f > 0
				}
			}
			return true
		}
	}
	return false
}
