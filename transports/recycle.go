package transports

import (
	"net"
	"sync"
)

// recycler is the server's listener: it hands net/http new connections
// and connections given back by a parked long-poll once it answered them,
// so the client's next request on that keep-alive connection is served
// as usual.
type recycler struct {
	net.Listener
	accepted chan acceptResult
	back     chan net.Conn
	done     chan struct{}
	once     sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// newRecycler wraps ln. Its goroutine accepts until Close; errors go to
// Accept's caller, which decides whether to go on.
func newRecycler(ln net.Listener) *recycler {
	r := &recycler{
		Listener: ln,
		accepted: make(chan acceptResult),
		back:     make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go r.acceptLoop()
	return r
}

func (r *recycler) acceptLoop() {
	for {
		conn, err := r.Listener.Accept()
		select {
		case r.accepted <- acceptResult{conn, err}:
		case <-r.done:
			if conn != nil {
				conn.Close()
			}
			return
		}
	}
}

// Accept returns the next new or given-back connection.
func (r *recycler) Accept() (net.Conn, error) {
	select {
	case a := <-r.accepted:
		return a.conn, a.err
	case conn := <-r.back:
		return conn, nil
	case <-r.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener; connections given back later are closed.
func (r *recycler) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		err = r.Listener.Close()
	})
	return err
}

// giveBack hands conn, whose next request net/http is to read, back to the
// server; pending are bytes of it that were already read.
func (r *recycler) giveBack(conn net.Conn, pending []byte) {
	if len(pending) > 0 {
		conn = &replayConn{Conn: conn, pending: pending}
	}
	select {
	case r.back <- conn:
	case <-r.done:
		conn.Close()
	}
}

// replayConn reads pending before the connection.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
