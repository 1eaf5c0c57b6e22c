package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// The Server under a path prefix (Config.BasePath): the rule of the prefix
// (checkBasePath), taking it off requests (under), and putting it back on
// every URL the Server makes (url, and baseWriter for the redirects of its
// ServeMux).

// routeRoots are the first segments of the Server's own routes. A
// BasePath may not start with one: a request's path must tell whether it
// holds BasePath or had it taken off before (see Config.BasePath).
var routeRoots = []string{"api", "assets", "healthz", "ingest", "live", "vod", "watch"}

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
	for _, r := range routeRoots {
		if first == r {
			return bad(fmt.Sprintf("starts with %q, a route of the Server's own", "/"+r))
		}
	}
	return trimmed, nil
}

// url returns the URL path of p, a path of the Server's routes ("/watch/cam"),
// as clients see it: under Config.BasePath.
func (s *Server) url(p string) string { return s.cfg.BasePath + p }

// under returns r with Config.BasePath taken off its path, r itself when
// its path does not start with BasePath (it was taken off before; see
// Config.BasePath), or nil when its path is BasePath itself: then it has
// redirected the client to BasePath + "/", the index page.
func (s *Server) under(w http.ResponseWriter, r *http.Request) *http.Request {
	base := s.cfg.BasePath
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	if base == "" || !ok || rest != "" && rest[0] != '/' {
		return r
	}
	if rest == "" {
		u := &url.URL{Path: base + "/", RawQuery: r.URL.RawQuery}
		// As http.ServeMux redirects "/dir" to "/dir/": keeping the method.
		http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
		return nil
	}
	// As http.StripPrefix does. A RawPath that spells BasePath otherwise
	// ("/%73tudio") is dropped: the path's escaped form is then made
	// from Path.
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = rest
	raw, ok := strings.CutPrefix(r.URL.RawPath, base)
	if !ok {
		raw = ""
	}
	r2.URL.RawPath = raw
	return r2
}

// baseWriter puts Config.BasePath in front of a root-absolute Location
// header ("/live/"): the redirects that the Server's ServeMux makes
// ("/live" to "/live/", an unclean path to its clean one) name a path of
// the Server's routes. Unwrap keeps http.ResponseController working
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
		if loc := h.Get("Location"); strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
			h.Set("Location", bw.base+loc)
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
