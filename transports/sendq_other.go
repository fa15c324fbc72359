//go:build !linux

package transports

import "net"

// sendQueue would watch whether a TCP peer takes the bytes the edge
// writes; the kernel counters it needs are read on Linux only, so here it
// watches nothing and a frozen peer is noticed when a write times out.
type sendQueue struct{}

// watchSendQueue returns a sendQueue that watches nothing.
func watchSendQueue(net.Conn) sendQueue { return sendQueue{} }

// stalled reports false: nothing is watched.
func (*sendQueue) stalled() bool { return false }

// abort does nothing.
func (*sendQueue) abort() {}
