package transports

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgeworks/edge/transports/internal/hijack"
)

// directOut writes to the socket itself for a TCP connection, wrapped or
// not, and leaves every other connection to its own Write.
func TestDirectOutSocket(t *testing.T) {
	server, client := tcpPair(t)
	defer client.Close()
	defer server.Close()
	pipe, _ := net.Pipe()
	tests := []struct {
		name   string
		conn   net.Conn
		direct bool
	}{
		{"TCP", server, true},
		{"limited", &limitedConn{Conn: server}, true},
		{"coarse deadlines", &deadlineConn{Conn: server}, true},
		{"replay with nothing left", hijack.Replay(server, nil), true},
		{"not a socket", pipe, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if direct := newDirectOut(tt.conn).fd >= 0; direct != tt.direct {
				t.Errorf("direct = %v, want %v", direct, tt.direct)
			}
		})
	}
}

// directOut writes every byte in order when the socket takes only part of
// a write (the rest goes through the poller, waiting for room), and
// reports a reset peer as a *net.OpError.
func TestDirectOutWrite(t *testing.T) {
	t.Run("more than the socket takes at once", func(t *testing.T) {
		server, client := tcpPair(t)
		defer client.Close()
		defer server.Close()
		// A small send buffer: most writes are taken in part.
		if err := server.SetWriteBuffer(4096); err != nil {
			t.Fatal(err)
		}
		d := newDirectOut(server)
		want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: far beyond both buffers
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		for i := 0; i < 4; i++ {
			if err := d.write(want[i*len(want)/4 : (i+1)*len(want)/4]); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		server.CloseWrite()
		select {
		case b := <-got:
			if !bytes.Equal(b, want) {
				t.Fatalf("read %d bytes, not the %d written in order", len(b), len(want))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not get every byte")
		}
	})
	t.Run("a closed peer", func(t *testing.T) {
		server, client := tcpPair(t)
		defer server.Close()
		client.(*net.TCPConn).SetLinger(0)
		client.Close()
		d := newDirectOut(server)
		var err error
		for i := 0; i < 100 && err == nil; i++ { // the reset arrives after a write or two
			err = d.write([]byte("x"))
		}
		var ne *net.OpError
		if !errors.As(err, &ne) {
			t.Fatalf("write to a reset peer: %v, want a *net.OpError", err)
		}
	})
}
