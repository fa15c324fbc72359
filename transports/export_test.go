package transports

// ParkedConns returns how many of s's connections are parked with its
// idle watcher, waiting for their client with no goroutine.
func ParkedConns(s *Server) int { return s.idle.Parked() }
