package transports

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/edgeworks/edge/transports/internal/hijack"
)

// sendQueue watches, from the kernel's counters of a TCP connection,
// whether the peer takes the bytes the edge writes: a peer that stopped
// reading (a frozen tab, a suspended process) acknowledges bytes until its
// receive buffer is full and then advertises a zero window, while its
// connection looks alive. The zero value watches nothing. It is used by
// one goroutine at a time (the stream's write turn).
type sendQueue struct {
	rc syscall.RawConn // the TCP socket; nil: none to watch
	// due is how many bytes the peer must have acknowledged, counted
	// from the start of the connection, by the next check: all that was
	// written at the previous one. Zero: nothing was pending then.
	due uint64
}

// watchSendQueue returns a sendQueue for conn, which may wrap the TCP
// connection (TLS, the connection limiter, a recycled keep-alive
// connection); for anything else it watches nothing.
func watchSendQueue(conn net.Conn) sendQueue {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			rc, err := c.SyscallConn()
			if err != nil {
				return sendQueue{}
			}
			return sendQueue{rc: rc}
		case *limitedConn:
			conn = c.Conn
		case *hijack.ReplayConn:
			conn = c.Conn
		case interface{ NetConn() net.Conn }: // *tls.Conn
			conn = c.NetConn()
		default:
			return sendQueue{}
		}
	}
}

// stalled reports whether bytes that were waiting for the peer at the
// previous call are still unacknowledged, and notes what waits now. Called
// once a heartbeat, it reports a peer that has not drained the send queue
// for a whole heartbeat. It reports false when the kernel cannot tell
// (bytes_acked, in TCP_INFO since Linux 4.1, reads zero).
func (q *sendQueue) stalled() bool {
	if q.rc == nil {
		return false
	}
	var acked uint64
	var queued int
	var err error
	// TCP_INFO first, then SIOCOUTQ (written but not yet acknowledged):
	// the peer may acknowledge more in between, which only makes due
	// smaller than what was written, never larger.
	cerr := q.rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			acked = info.Bytes_acked
			queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		}
	})
	due := q.due
	q.due = 0
	if cerr != nil || err != nil || acked == 0 {
		return false
	}
	if queued > 0 {
		q.due = acked + uint64(queued)
	}
	return due != 0 && acked < due
}

// abort makes closing the connection reset it, dropping what waits in
// the send queue at once instead of leaving the kernel to retry a peer
// that takes nothing.
func (q *sendQueue) abort() {
	if q.rc == nil {
		return
	}
	q.rc.Control(func(fd uintptr) {
		unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
}
