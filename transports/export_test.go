package transports

// ParkedConns returns how many of s's connections are parked with its
// idle watcher, waiting for their client with no goroutine.
func ParkedConns(s *Server) int { return s.idle.Parked() }

// DashboardUpdate is the dashboard payload of the delta tests and
// measurements: about 1 KiB of JSON state, a value of which changes at
// each update n.
var DashboardUpdate = dashboardUpdate
