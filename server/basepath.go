package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// The Server under a path prefix (Config.BasePath): the rule of the prefix
// (checkBasePath), taking it off requests (under), and putting it back on
// every URL the Server makes (url, baseWriter for the redirects of its
// ServeMux, and ownerURL for the chunks other nodes forward to it).

// checkBasePath returns p in its one spelling (no trailing "/"; "" for
// the root), or why it is not a BasePath (see Config.BasePath).
func checkBasePath(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("server: %w: BasePath %q %s", ErrInvalid, p, why)
	}
	if p[0] != '/' {
		return bad(`does not start with "/"`)
	}
	if strings.Contains(p, "//") {
		// "//" alone would be the root, and every URL the Server makes
		// would start with "//", another host's.
		return bad(`holds an empty segment ("//")`)
	}
	trimmed := strings.TrimSuffix(p, "/")
	if strings.ContainsFunc(trimmed, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("/-._~", c))
	}) {
		return bad("holds a character other than letters, digits, '/', '-', '.', '_' and '~'")
	}
	if path.Clean(trimmed) != trimmed {
		return bad(fmt.Sprintf("is not clean (%q)", path.Clean(trimmed)))
	}
	first, _, _ := strings.Cut(trimmed[1:], "/")
	for _, r := range routeRoots() {
		if first == r {
			return bad(fmt.Sprintf("starts with %q, a route of the Server's own", "/"+r))
		}
	}
	return trimmed, nil
}

// ownerURL returns where the other nodes send the chunks of this node's
// streams (see Config.AdvertiseURL): advertise with base added to its
// path, unless that path is base or ends with base's segments already;
// "" for no advertise. It fails unless advertise is an absolute http or
// https URL without query or fragment.
func ownerURL(advertise, base string) (string, error) {
	if advertise == "" {
		return "", nil
	}
	u, err := url.Parse(advertise)
	switch {
	case err != nil:
	case u.Scheme != "http" && u.Scheme != "https":
		err = errors.New("not an http or https URL")
	case u.Host == "":
		err = errors.New("no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		err = errors.New("holds a query or a fragment")
	}
	if err != nil {
		return "", fmt.Errorf("server: %w: AdvertiseURL %q: %w", ErrInvalid, advertise, err)
	}
	// base starts with "/": a path that ends with it ends with its
	// segments. The escaped path keeps its spelling ("%2F").
	p, raw := strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.EscapedPath(), "/")
	if !strings.HasSuffix(p, base) {
		p, raw = p+base, raw+base
	}
	u.Path, u.RawPath = p, raw
	return u.String(), nil
}

// url returns the URL path of p, a path of the Server's routes ("/watch/cam"),
// as clients see it: under Config.BasePath.
func (s *Server) url(p string) string { return s.cfg.BasePath + p }

// under returns r with Config.BasePath taken off its path, r itself when
// its path does not start with BasePath (it was taken off before; see
// Config.BasePath), or nil when it has answered r: with a redirect to
// BasePath + "/", the index page, when r's path is BasePath itself, or
// 404 when r's escaped path spells BasePath otherwise ("/%73tudio/..."),
// as http.StripPrefix does.
func (s *Server) under(w http.ResponseWriter, r *http.Request) *http.Request {
	base := s.cfg.BasePath
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	if base == "" || !ok || rest != "" && rest[0] != '/' {
		return r
	}
	// RawPath, when set, is r's path as the client escaped it (and
	// unescapes to Path).
	rawRest, ok := strings.CutPrefix(r.URL.RawPath, base)
	if r.URL.RawPath != "" && !ok {
		http.NotFound(w, r)
		return nil
	}
	if rest == "" {
		u := &url.URL{Path: base + "/", RawQuery: r.URL.RawQuery}
		// As http.ServeMux redirects "/dir" to "/dir/": keeping the method.
		http.Redirect(w, r, rootPath(u.String()), http.StatusTemporaryRedirect)
		return nil
	}
	if rawRest != "" && rawRest[0] != '/' {
		// BasePath ended in an escaped "/" ("/studio%2Fapi/..."): the
		// rest's escaped form is made from Path, not escaped twice.
		rawRest = ""
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = rest
	r2.URL.RawPath = rawRest
	return r2
}

// rootPath returns loc, a Location, with a leading run of '/' and '\'
// made one "/": a browser reads "//host/..." (and "/\host/...", "\\host")
// as a URL of another host. Other Locations are returned as they are.
func rootPath(loc string) string {
	if loc == "" || loc[0] != '/' && loc[0] != '\\' {
		return loc
	}
	return "/" + strings.TrimLeft(loc, `/\`)
}

// baseWriter puts Config.BasePath in front of a root-absolute Location
// header ("/live/"): the redirects that the Server's ServeMux makes
// ("/live" to "/live/", an unclean path to its clean one) name a path of
// the Server's routes. A Location that starts with "//" or '\' is taken
// as root-absolute too (see rootPath): the answer never names another
// host that way. Unwrap keeps http.ResponseController working
// through it.
type baseWriter struct {
	http.ResponseWriter
	base  string
	wrote bool
}

func (bw *baseWriter) WriteHeader(code int) {
	if !bw.wrote && code >= 200 {
		bw.wrote = true
		h := bw.Header()
		if loc := h.Get("Location"); loc != "" && (loc[0] == '/' || loc[0] == '\\') {
			h.Set("Location", rootPath(bw.base+rootPath(loc)))
		}
	}
	bw.ResponseWriter.WriteHeader(code)
}

func (bw *baseWriter) Write(p []byte) (int, error) {
	if !bw.wrote {
		bw.WriteHeader(http.StatusOK)
	}
	return bw.ResponseWriter.Write(p)
}

// ReadFrom keeps the copy of a body (http.ServeContent) as fast as without
// baseWriter.
func (bw *baseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !bw.wrote {
		bw.WriteHeader(http.StatusOK)
	}
	return io.Copy(bw.ResponseWriter, src)
}

func (bw *baseWriter) Unwrap() http.ResponseWriter { return bw.ResponseWriter }
