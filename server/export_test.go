package server

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
