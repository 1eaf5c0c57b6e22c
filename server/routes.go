package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/livechunk/livechunk/internal/httpx"
)

// route is one route of the Server: a pattern of its ServeMux, and the
// handler that answers it.
type route struct {
	pattern string
	handler func(s *Server) http.Handler
}

// routes are the Server's routes, the one list New registers and
// routeRoots reads.
var routes = []route{
	{"PUT /ingest/{stream}/{n}", func(s *Server) http.Handler { return lingering(s.handleChunk) }},
	{"POST /ingest/{stream}/end", func(s *Server) http.Handler { return lingering(s.handleEnd) }},
	{"POST /ingest/{stream}", func(s *Server) http.Handler { return lingering(s.handlePush) }},
	{"OPTIONS /ingest/{stream}/{n}", func(s *Server) http.Handler { return http.HandlerFunc(s.handlePreflight) }},
	{"OPTIONS /ingest/{stream}", func(s *Server) http.Handler { return http.HandlerFunc(s.handlePreflight) }},
	// Every other request under /ingest/ is answered in JSON too (405
	// with Allow, or 404); the routes above are more specific.
	{"/ingest/", func(s *Server) http.Handler { return lingering(s.handleIngestOther) }},
	{"/live/", func(s *Server) http.Handler { return http.StripPrefix("/live", s.hls) }},
	{"GET /vod/{file}", func(s *Server) http.Handler { return http.HandlerFunc(s.handleVOD) }},
	{"HEAD /vod/{file}", func(s *Server) http.Handler { return http.HandlerFunc(s.handleVOD) }},
	{"OPTIONS /vod/{file}", func(s *Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpx.Preflight(w, r, s.cfg.PlaybackOrigins) })
	}},
	{"GET /watch/{stream}", func(s *Server) http.Handler { return http.HandlerFunc(s.handleWatch) }},
	{"GET /api/streams", func(s *Server) http.Handler { return http.HandlerFunc(s.handleAPIStreams) }},
	{"GET /api/streams/{stream}", func(s *Server) http.Handler { return http.HandlerFunc(s.handleAPIStream) }},
	{"GET /assets/hls.min.js", func(*Server) http.Handler { return http.HandlerFunc(handleHLSJS) }},
	{"GET /{$}", func(s *Server) http.Handler { return http.HandlerFunc(s.handleIndex) }},
	{"GET /healthz", func(s *Server) http.Handler { return http.HandlerFunc(s.handleHealth) }},
}

// newMux returns the ServeMux of s's routes.
func (s *Server) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.pattern, rt.handler(s))
	}
	return mux
}

// routeRoots returns the first segments of the Server's routes ("api",
// "live", ...), sorted, each once. A BasePath may not start with one: a
// request's path must tell whether it holds BasePath or had it taken off
// before (see Config.BasePath).
func routeRoots() []string {
	var roots []string
	for _, rt := range routes {
		// "[METHOD ]/first/...": no pattern of the Server names a host.
		_, p, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			p = rt.pattern
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
		if first != "" && !strings.HasPrefix(first, "{") && !slices.Contains(roots, first) {
			roots = append(roots, first)
		}
	}
	slices.Sort(roots)
	return roots
}
