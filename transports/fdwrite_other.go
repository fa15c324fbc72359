//go:build !linux

package transports

import (
	"io"
	"net"
)

// directWriter returns conn: writing to the socket around Go's poller
// (fdWriter) is done on Linux only.
func directWriter(conn net.Conn) io.Writer { return conn }
