package idle

import (
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the two ends of a loopback TCP connection, closed with the
// test.
func pair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// watch adds server to w and parks it; the returned channel receives
// once per ready call.
func watch(t *testing.T, w *Watcher, server *net.TCPConn) (*Handle, chan struct{}) {
	t.Helper()
	ready := make(chan struct{}, 8)
	h := w.Add(rawConn(t, server), func() { ready <- struct{}{} })
	if h == nil {
		t.Fatal("Add returned nil")
	}
	if err := h.Park(); err != nil {
		t.Fatal(err)
	}
	return h, ready
}

func waitReady(t *testing.T, ready <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("not ready after %s", what)
	}
}

// notReady checks that no ready call is pending; a ready call happens on
// the watcher's goroutine while it holds the lock, so once Parked (which
// takes it) counts the handle as parked after the event, none is in
// flight for it.
func notReady(t *testing.T, w *Watcher, ready <-chan struct{}, wantParked int) {
	t.Helper()
	if n := w.Parked(); n != wantParked {
		t.Fatalf("%d parked, want %d", n, wantParked)
	}
	select {
	case <-ready:
		t.Fatal("ready without cause")
	default:
	}
}

// A parked socket is reported once it is readable, whatever made it so:
// data, the peer's close, a reset, or data that arrived before the park.
func TestParkReportsReadable(t *testing.T) {
	tests := []struct {
		name   string
		before bool // the peer acts before the park
		peer   func(*net.TCPConn)
	}{
		{"data", false, func(c *net.TCPConn) { c.Write([]byte("x")) }},
		{"data before park", true, func(c *net.TCPConn) { c.Write([]byte("x")) }},
		{"close", false, func(c *net.TCPConn) { c.Close() }},
		{"half close", false, func(c *net.TCPConn) { c.CloseWrite() }},
		{"reset", false, func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"reset before park", true, func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Watcher
			defer w.Wait()
			server, client := pair(t)
			if tt.before {
				tt.peer(client)
			}
			h, ready := watch(t, &w, server)
			defer h.Remove()
			if !tt.before {
				notReady(t, &w, ready, 1)
				tt.peer(client)
			}
			waitReady(t, ready, tt.name)
			if n := w.Parked(); n != 0 {
				t.Fatalf("%d parked after ready, want 0", n)
			}
		})
	}
}

// A reported socket is not reported again until parked again, and is
// reported at once when parked again while still readable; a drained one
// waits for new data.
func TestParkIsOneShot(t *testing.T) {
	var w Watcher
	defer w.Wait()
	server, client := pair(t)
	h, ready := watch(t, &w, server)
	defer h.Remove()
	client.Write([]byte("ab"))
	waitReady(t, ready, "the first byte")
	client.Write([]byte("c")) // more data, while not parked
	notReady(t, &w, ready, 0)

	if err := h.Park(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ready, "parking with data unread")

	buf := make([]byte, 8)
	if n, err := server.Read(buf); err != nil || n != 3 {
		t.Fatalf("read %d, %v", n, err)
	}
	if err := h.Park(); err != nil {
		t.Fatal(err)
	}
	notReady(t, &w, ready, 1)
	client.Write([]byte("d"))
	waitReady(t, ready, "new data")
}

// Remove stops the reports at once, may be called twice, takes the
// socket out of the set before it closes (a later connection on the same
// descriptor is not reported for it), and the last Remove ends the
// watcher's goroutine.
func TestRemove(t *testing.T) {
	var w Watcher
	server, client := pair(t)
	h, ready := watch(t, &w, server)
	fd := func(c *net.TCPConn) (fd uintptr) {
		rawConn(t, c).Control(func(f uintptr) { fd = f })
		return fd
	}
	old := fd(server)
	h.Remove()
	h.Remove()
	server.Close()
	client.Write([]byte("x"))
	client.Close()
	if err := h.Park(); err == nil {
		t.Fatal("Park after Remove succeeded")
	}
	w.Wait() // the last handle went: the goroutine ends

	// A new connection, likely on the same descriptor, parked anew.
	server2, client2 := pair(t)
	h2, ready2 := watch(t, &w, server2)
	defer h2.Remove()
	t.Logf("descriptor %d, then %d", old, fd(server2))
	client2.Write([]byte("y"))
	waitReady(t, ready2, "data on the new connection")
	select {
	case <-ready:
		t.Fatal("a removed handle was reported")
	default:
	}
	h2.Remove()
	w.Wait()
}

// Many sockets share one watcher, and each is reported to its own ready.
func TestManyParked(t *testing.T) {
	var w Watcher
	defer w.Wait()
	const n = 200
	type parked struct {
		h      *Handle
		ready  chan struct{}
		client *net.TCPConn
	}
	all := make([]parked, n)
	for i := range all {
		s, c := pair(t)
		h, r := watch(t, &w, s)
		all[i] = parked{h, r, c}
	}
	if got := w.Parked(); got != n {
		t.Fatalf("%d parked, want %d", got, n)
	}
	for i := 0; i < n; i += 2 {
		all[i].client.Write([]byte("x"))
	}
	for i := 0; i < n; i += 2 {
		waitReady(t, all[i].ready, "data")
	}
	notReady(t, &w, all[1].ready, n/2)
	for _, p := range all {
		p.h.Remove()
	}
	if got := w.Parked(); got != 0 {
		t.Fatalf("%d parked after removing all", got)
	}
}
