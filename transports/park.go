package transports

import (
	"net"
	"syscall"

	"github.com/edgeworks/edge/transports/internal/hijack"
)

// parkable returns the socket under conn when an idle reader of conn may
// be parked on it (see package internal/idle): conn is a TCP connection,
// maybe wrapped by the connection limiter, for coarse write deadlines or
// as a recycled keep-alive connection with nothing left to replay. A TLS
// connection is not: it may hold decrypted bytes that its socket no
// longer shows. Nil: keep a goroutine reading.
func parkable(conn net.Conn) syscall.RawConn {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			rc, err := c.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case *limitedConn:
			conn = c.Conn
		case *deadlineConn:
			conn = c.Conn
		case *hijack.ReplayConn:
			if c.Buffered() > 0 {
				return nil
			}
			conn = c.Conn
		default:
			return nil
		}
	}
}
