package server

// InFlight is how many chunk uploads and ends are being handled.
func (s *Server) InFlight() int64 { return s.inflight.Load() }
