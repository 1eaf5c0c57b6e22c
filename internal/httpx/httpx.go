// Package httpx holds the HTTP header rules that package hls (playlists
// and segments) and package server (the VOD file, the JSON API, ingest)
// share: which origins may read media or write to ingest (CORS), and
// content-coding negotiation. It is their one home.
package httpx

import (
	"fmt"
	"net/http"
	"net/url"
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
// port); "*" stands for every origin. It is the one rule of which pages a
// CORS answer grants: to read media (hls.Handler.AllowOrigins) and to
// write to ingest (server.Config.AllowOrigins). An entry is taken in the
// spelling browsers send in Origin (see Origin): "HTTPS://App.example.com/"
// lets "https://app.example.com" in. An entry that is no origin
// ("app.example.com", "https://app.example.com/path") lets nothing in;
// package server refuses it.
type Origins []string

// Origin returns o, an entry of Origins, as browsers spell an origin in
// the Origin header: scheme and host in lower case, without the scheme's
// default port (80 for http, 443 for https) and without one trailing "/"
// ("HTTPS://App.Example.com:443/" is "https://app.example.com"); "*" as
// it is. It fails for anything else: no scheme or no host, a user, a
// path, a query or a fragment.
func Origin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return "", fmt.Errorf("invalid origin %q: %w", o, err)
	case u.Scheme == "" || u.Host == "":
		return "", fmt.Errorf("invalid origin %q: scheme and host are required", o)
	case u.User != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("invalid origin %q: user, path, query and fragment are not allowed", o)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" || port == "" {
		host = strings.TrimSuffix(strings.TrimSuffix(host, port), ":")
	}
	return u.Scheme + "://" + host, nil // url.Parse lowered the scheme
}

// Any reports whether o holds "*".
func (o Origins) Any() bool { return slices.Contains(o, "*") }

// Allows reports whether o lets pages of origin (a request's Origin, as
// its browser sent it) in: origin is not empty, and o holds it (see
// Origin) or "*".
func (o Origins) Allows(origin string) bool {
	if origin == "" {
		return false
	}
	for _, e := range o {
		if c, err := Origin(e); err == nil && c == origin || e == "*" {
			return true
		}
	}
	return false
}

// media reports whether the answer to a page of origin may be read, and
// with which Access-Control-Allow-Origin: "*" when allow is empty (every
// origin, the default of media) or holds "*"; origin itself when allow
// lets it in; none otherwise. The answer depends on the origin (Vary:
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

// VaryOrigin adds Origin to h's Vary, once (when called again): the answer
// depends on the request's Origin, and a cache keeps the answer of one
// origin from another.
func VaryOrigin(h http.Header) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Origin") {
				return
			}
		}
	}
	h.Add("Vary", "Origin")
}

// GrantOrigin lets pages of origin ("*" for every origin) read the
// answer (Access-Control-Allow-Origin) and the response headers listed in
// exposed beyond the CORS-safelisted ones (Access-Control-Expose-Headers,
// unless exposed is "").
func GrantOrigin(h http.Header, origin, exposed string) {
	h.Set("Access-Control-Allow-Origin", origin)
	if exposed != "" {
		h.Set("Access-Control-Expose-Headers", exposed)
	}
}

// grantRequests is the grant of a preflight: requests with methods and
// the request headers listed in headers, which the browser may cache for
// maxAge seconds.
func grantRequests(h http.Header, methods, headers string, maxAge int) {
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", headers)
	h.Set("Access-Control-Max-Age", strconv.Itoa(maxAge))
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
	if varies {
		VaryOrigin(h)
	}
	if grant != "" {
		GrantOrigin(h, grant, exposedHeaders)
	}
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
		grantRequests(h, MediaMethods, "Range, If-Range, If-None-Match, If-Modified-Since", 86400)
	}
	w.WriteHeader(http.StatusNoContent)
}

// ingestExposed are the response headers of ingest, beyond the
// CORS-safelisted ones, that a script reads: when to send again, and
// which credential was missing.
const ingestExposed = "Retry-After, WWW-Authenticate"

// SetIngestCORS sets the CORS headers of an answer to r, a write to
// ingest, refusals included: Vary: Origin when r has an Origin and, when
// allow lets it in (see Origins.Allows), the grant of that origin (never
// "*": the answer may carry credentials' errors) with the headers a
// script reads (ingestExposed). Which writes are refused is the caller's
// rule.
func SetIngestCORS(h http.Header, r *http.Request, allow Origins) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	VaryOrigin(h)
	if allow.Allows(origin) {
		GrantOrigin(h, origin, ingestExposed)
	}
}

// GrantIngestPreflight sets the grant of a CORS preflight of a write to
// ingest by a page of origin, which the caller let in: methods with
// Authorization and Content-Type, which browsers may cache for 10
// minutes. (Vary: Origin is the caller's, refusals need it too: see
// VaryOrigin.)
func GrantIngestPreflight(h http.Header, origin, methods string) {
	GrantOrigin(h, origin, "")
	grantRequests(h, methods, "Authorization, Content-Type", 600)
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
