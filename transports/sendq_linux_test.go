package transports

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeworks/edge/transports/internal/hijack"
)

// tcpPair returns the two ends of a loopback TCP connection; the client's
// receive buffer is small, so that it fills after a few KiB it does not
// read.
func tcpPair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return err
	}}
	client, err = d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), client
}

// queued returns what waits in conn's send queue, unacknowledged.
func queued(t *testing.T, conn *net.TCPConn) int {
	t.Helper()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitDrained waits until the peer has acknowledged all that conn sent.
func waitDrained(t *testing.T, conn *net.TCPConn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued(t, conn) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still unacknowledged", queued(t, conn))
		}
		time.Sleep(time.Millisecond) // polling a kernel counter, not synchronisation
	}
}

// fill writes more than the peer's receive buffer takes, so that bytes
// wait in the send queue.
func fill(t *testing.T, conn *net.TCPConn) {
	t.Helper()
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write(make([]byte, 256<<10)) // stops at the deadline once the queues are full
	if queued(t, conn) == 0 {
		t.Fatal("nothing waits in the send queue")
	}
}

// watchSendQueue finds the TCP socket under the connection types a
// hijacked SSE stream may have, and nothing under others.
func TestWatchSendQueue(t *testing.T) {
	server, _ := tcpPair(t)
	pipe, other := net.Pipe()
	defer pipe.Close()
	defer other.Close()
	tests := []struct {
		name  string
		conn  net.Conn
		watch bool
	}{
		{name: "TCP", conn: server, watch: true},
		{name: "limited", conn: &limitedConn{Conn: server}, watch: true},
		{name: "recycled", conn: &hijack.ReplayConn{Conn: &limitedConn{Conn: server}}, watch: true},
		{name: "TLS", conn: tls.Server(&limitedConn{Conn: server}, &tls.Config{}), watch: true},
		{name: "pipe", conn: pipe},
		{name: "TLS over a pipe", conn: tls.Server(pipe, &tls.Config{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if q := watchSendQueue(tt.conn); (q.rc != nil) != tt.watch {
				t.Fatalf("watching %v, want %v", q.rc != nil, tt.watch)
			}
		})
	}
}

// stalled reports a peer that has not taken, by the next check, what
// waited for it at the previous one, and only such a peer.
func TestSendQueueStalled(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, server *net.TCPConn, client net.Conn, q *sendQueue) []bool // the results of stalled, in order
		want []bool
	}{
		{
			name: "nothing written",
			run: func(t *testing.T, _ *net.TCPConn, _ net.Conn, q *sendQueue) []bool {
				return []bool{q.stalled(), q.stalled()}
			},
			want: []bool{false, false},
		},
		{
			name: "peer reads",
			run: func(t *testing.T, server *net.TCPConn, client net.Conn, q *sendQueue) []bool {
				var got []bool
				for range 3 {
					server.Write(make([]byte, 64<<10))
					io.ReadFull(client, make([]byte, 64<<10))
					waitDrained(t, server)
					got = append(got, q.stalled())
				}
				return got
			},
			want: []bool{false, false, false},
		},
		{
			name: "peer frozen",
			run: func(t *testing.T, server *net.TCPConn, _ net.Conn, q *sendQueue) []bool {
				fill(t, server)
				return []bool{q.stalled(), q.stalled(), q.stalled()}
			},
			want: []bool{false, true, true},
		},
		{
			name: "peer drains between checks",
			run: func(t *testing.T, server *net.TCPConn, client net.Conn, q *sendQueue) []bool {
				fill(t, server)
				first := q.stalled()
				client.SetReadDeadline(time.Now().Add(10 * time.Second))
				go io.Copy(io.Discard, client)
				waitDrained(t, server)
				return []bool{first, q.stalled()}
			},
			want: []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := tcpPair(t)
			q := watchSendQueue(server)
			if got := tt.run(t, server, client, &q); !equalBools(got, tt.want) {
				t.Fatalf("stalled: %v, want %v", got, tt.want)
			}
		})
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// abort makes Close reset the connection, so the kernel drops the bytes
// a frozen peer never took instead of retrying it.
func TestSendQueueAbort(t *testing.T) {
	server, client := tcpPair(t)
	fill(t, server)
	q := watchSendQueue(server)
	q.abort()
	server.Close()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer read until %v, want a reset", err)
	}
}
