package server

import (
	"net/http"
	"net/http/httptest"
)

// InFlight is how many chunk uploads and ends are being handled.
func (s *Server) InFlight() int64 { return s.inflight.Load() }

// UploadBytesHeld is the room of Config.MaxUploadBytes that spooled
// uploads hold.
func (s *Server) UploadBytesHeld() int64 { return s.spool.disk.held() }

// UploadMemoryHeld is the room of Config.MaxUploadMemory that chunk bodies
// hold.
func (s *Server) UploadMemoryHeld() int64 { return s.spool.mem.held() }

// SetMissing fills in the given-up chunks of in from inclusive ranges.
func (in *StreamInfo) SetMissing(ranges [][2]uint64) {
	spans := make([]span, len(ranges))
	for i, r := range ranges {
		spans[i] = span(r)
	}
	in.setMissing(spans)
}

// RouteRoots are the first segments of the Server's routes.
func RouteRoots() []string { return routeRoots() }

// OwnerURL is where the other nodes send the chunks of s's streams.
func (s *Server) OwnerURL() string { return s.ownerURL }

// LocationUnder is the Location header that a handler's answer with
// Location loc carries once the Server under base has made it its own.
func LocationUnder(base, loc string) string {
	rec := httptest.NewRecorder()
	bw := &baseWriter{ResponseWriter: rec, base: base}
	bw.Header().Set("Location", loc)
	bw.WriteHeader(http.StatusMovedPermanently)
	return rec.Header().Get("Location")
}
