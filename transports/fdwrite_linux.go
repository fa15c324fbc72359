package transports

import (
	"io"
	"net"
	"syscall"
)

// fdWriter writes to a TCP socket with a write system call of its own,
// and through conn, Go's poller, only for what the socket did not take at
// once, waiting for room within conn's write deadline. A stream's
// delivery so skips the poller's locks and state, an eighth of a
// WebSocket delivery's CPU (go doc ./cmd/edge-bench).
//
// The descriptor is conn's: its user writes only while conn cannot be
// closed, which a stream ensures by writing and closing its connection
// holding its write turn.
type fdWriter struct {
	fd   int
	conn net.Conn
}

// directWriter returns an fdWriter for conn when it is a TCP socket
// (maybe wrapped as parkable says), else conn.
func directWriter(conn net.Conn) io.Writer {
	rc := parkable(conn)
	if rc == nil {
		return conn
	}
	w := &fdWriter{fd: -1, conn: conn}
	if rc.Control(func(fd uintptr) { w.fd = int(fd) }) != nil || w.fd < 0 {
		return conn
	}
	return w
}

// Write writes p.
func (w *fdWriter) Write(p []byte) (int, error) {
	n, err := syscall.Write(w.fd, p)
	switch {
	case err == nil && n == len(p):
		return n, nil
	case err == syscall.EAGAIN || err == syscall.EINTR:
		n = 0
	case err != nil:
		return 0, &net.OpError{Op: "write", Net: "tcp", Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(), Err: err}
	}
	m, err := w.conn.Write(p[n:])
	return n + m, err
}
