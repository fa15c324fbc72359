package hijack

import (
	"net"
	"sync"
)

// Listener is a server's listener that also hands net/http connections
// given back after a hand-written answer (GiveBack), so that the client's
// next request on that keep-alive connection is served as usual. Its
// methods are safe for concurrent use.
type Listener struct {
	net.Listener
	sort     func(*Listener, net.Conn)
	accepted chan acceptResult
	back     chan net.Conn
	done     chan struct{} // closed by Close
	once     sync.Once
	loop     sync.WaitGroup // the accept loop
	sorting  sync.WaitGroup // the goroutines running sort
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// NewListener wraps ln. Its goroutine accepts from ln until Close, which
// waits for it; errors go to Accept's caller, which decides whether to go
// on. With sort, each connection accepted goes to sort, on a goroutine of
// its own, instead of to Accept: sort serves it, or hands it to net/http
// with GiveBack (see Wait).
func NewListener(ln net.Listener, sort func(*Listener, net.Conn)) *Listener {
	l := &Listener{
		Listener: ln,
		sort:     sort,
		accepted: make(chan acceptResult),
		back:     make(chan net.Conn),
		done:     make(chan struct{}),
	}
	l.loop.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	defer l.loop.Done()
	for {
		conn, err := l.Listener.Accept()
		if err == nil && l.sort != nil {
			l.sorting.Add(1)
			go func() {
				defer l.sorting.Done()
				l.sort(l, conn)
			}()
			continue
		}
		select {
		case l.accepted <- acceptResult{conn, err}:
		case <-l.done:
			if conn != nil {
				conn.Close()
			}
			return
		}
	}
}

// Accept returns the next new or given-back connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.accepted:
		return a.conn, a.err
	case conn := <-l.back:
		return conn, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and waits for its accept loop to end;
// connections given back later are closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
		l.loop.Wait()
	})
	return err
}

// Wait waits, after Close, for every call of sort to return.
func (l *Listener) Wait() { l.sorting.Wait() }

// GiveBack hands conn, whose next request net/http is to read, to the
// server's next Accept; pending are bytes of it that were already read
// (see Take). It waits until net/http accepts the connection, or closes
// it when the listener closed.
func (l *Listener) GiveBack(conn net.Conn, pending []byte) {
	select {
	case l.back <- Replay(conn, pending):
	case <-l.done:
		conn.Close()
	}
}

// Replay returns conn, reading pending first when there are any: bytes
// read from conn that are the start of what its reader is to read next.
func Replay(conn net.Conn, pending []byte) net.Conn {
	if len(pending) == 0 {
		return conn
	}
	return &ReplayConn{Conn: conn, pending: pending}
}

// ReplayConn is a connection whose reads return the bytes already read
// from it (the pending of Replay) before reading the connection.
type ReplayConn struct {
	net.Conn
	pending []byte
}

// Buffered returns how many pending bytes are left to read.
func (c *ReplayConn) Buffered() int { return len(c.pending) }

// Read reads the pending bytes first, then the connection.
func (c *ReplayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
