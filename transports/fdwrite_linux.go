package transports

import (
	"net"
	"syscall"
)

// socketFD returns the descriptor of conn's TCP socket (conn maybe
// wrapped, as parkable says), or -1.
func socketFD(conn net.Conn) int {
	rc := parkable(conn)
	if rc == nil {
		return -1
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil {
		return -1
	}
	return fd
}

// writeFD writes b to the non-blocking socket fd with one system call and
// returns how much it took: 0 with a nil error when it had no room.
func writeFD(fd int, b []byte) (int, error) {
	n, err := syscall.Write(fd, b)
	switch err {
	case nil:
		return n, nil
	case syscall.EAGAIN, syscall.EINTR:
		return 0, nil
	}
	return 0, err
}
