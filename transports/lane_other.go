//go:build !linux

package transports

import (
	"errors"
	"net"
)

// laneSupported reports whether the publish lane can look at a
// connection's first bytes without taking them: on Linux only, so here
// net/http serves every connection.
const laneSupported = false

// peek is not available here (laneSupported).
func peek(net.Conn, []byte) (int, error) {
	return 0, errors.New("the publish lane needs Linux")
}
