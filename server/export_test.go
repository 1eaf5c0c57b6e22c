package server

// InFlight is how many chunk uploads and ends are being handled.
func (s *Server) InFlight() int64 { return s.inflight.Load() }

// UploadBytesHeld is the room of Config.MaxUploadBytes that uploads hold.
func (s *Server) UploadBytesHeld() int64 { return s.held.Load() }

// UploadMemoryHeld is the room of Config.MaxUploadMemory that chunk bodies
// hold.
func (s *Server) UploadMemoryHeld() int64 { return s.spool.mem.held() }
