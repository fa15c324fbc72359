package transports

import (
	"errors"
	"net"
	"syscall"
)

// laneSupported reports whether the publish lane can look at a
// connection's first bytes without taking them (peek).
const laneSupported = true

// errNoPeek is peek's error for a connection it cannot look into.
var errNoPeek = errors.New("the connection is not a TCP socket")

// peek waits, within conn's read deadline, for conn's first bytes and
// copies up to len(p) of them into p without taking them: a later read of
// conn returns them again. It returns 0 when the client closed.
func peek(conn net.Conn, p []byte) (int, error) {
	rc := parkable(conn)
	if rc == nil {
		return 0, errNoPeek
	}
	var n int
	var err error
	if rerr := rc.Read(func(fd uintptr) bool {
		for {
			n, _, err = syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK)
			if err != syscall.EINTR {
				return err != syscall.EAGAIN
			}
		}
	}); rerr != nil {
		return 0, rerr
	}
	return max(n, 0), err
}
