// Package httpx holds the HTTP header rules that package hls (playlists
// and segments) and package server (the VOD file, the JSON API) share:
// cross-origin access to media, and content-coding negotiation. It is
// their one home; neither package writes these headers on its own.
package httpx

import (
	"net/http"
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
// now, but not by every browser in use.
const exposedHeaders = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Age, Date"

// SetMediaCORS sets the headers that let a page of any origin read a media
// answer (and its headers, see exposedHeaders): on every answer of a media
// resource, errors included, so that a script can read why it failed.
func SetMediaCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", exposedHeaders)
}

// Preflight answers an OPTIONS request to a media resource, a CORS
// preflight or not: 204 with Allow, and the grant of GET and HEAD with the
// request headers players send (Range, the conditional ones) to any
// origin, which browsers may cache for a day.
func Preflight(w http.ResponseWriter) {
	h := w.Header()
	SetMediaCORS(h)
	h.Set("Allow", MediaMethods)
	h.Set("Access-Control-Allow-Methods", MediaMethods)
	h.Set("Access-Control-Allow-Headers", "Range, If-Range, If-None-Match, If-Modified-Since")
	h.Set("Access-Control-Max-Age", "86400")
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
