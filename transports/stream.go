package transports

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/internal/hijack"
	"github.com/edgeworks/edge/transports/metrics"
)

// writeTimeout bounds every write to a client; a client that does not take
// bytes for that long is gone or hopelessly slow.
const writeTimeout = 10 * time.Second

// deadlineSlack is how much earlier than asked a stream's write deadline
// may come (see writeDeadline): every write so has between
// writeTimeout-deadlineSlack and writeTimeout to complete.
const deadlineSlack = writeTimeout / 2

// writeDeadline is what a connection knows of its write deadline. Its
// zero value sets every deadline asked for. A stream's connection is
// coarse (see coarseDeadlines): it moves the deadline only when the one
// set would come more than deadlineSlack before the one asked for, so a
// connection that writes often re-arms its deadline timer about once per
// deadlineSlack instead of on every write (a third of the write path's own
// CPU under fan-out), while every write stays bounded. It is used by one
// writer at a time (whoever holds the write turn; gorilla's lock on its
// writes).
type writeDeadline int64

// coarseNone is a coarse writeDeadline with no deadline set; above it, the
// deadline set in Unix nanoseconds.
const coarseNone writeDeadline = 1

// set reports whether t must be set on the connection, and notes it.
func (d *writeDeadline) set(t time.Time) bool {
	switch {
	case *d == 0:
		return true
	case t.IsZero():
		*d = coarseNone
		return true
	}
	n := t.UnixNano()
	if *d > coarseNone && n >= int64(*d) && n-int64(*d) < int64(deadlineSlack) {
		return false
	}
	*d = writeDeadline(n)
	return true
}

// forget notes that the deadline set is no longer known.
func (d *writeDeadline) forget() {
	if *d != 0 {
		*d = coarseNone
	}
}

// coarseDeadlines makes conn's write deadlines coarse (see writeDeadline)
// and returns it: the connection the edge accepted itself when conn is,
// or wraps one, else conn wrapped.
func coarseDeadlines(conn net.Conn) net.Conn {
	for c := conn; ; {
		switch cc := c.(type) {
		case *limitedConn:
			cc.wd = coarseNone
			return conn
		case *deadlineConn:
			return conn
		case *hijack.ReplayConn:
			c = cc.Conn
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = cc.NetConn()
		default:
			return &deadlineConn{Conn: conn, wd: coarseNone}
		}
	}
}

// deadlineConn is a connection with coarse write deadlines, for those that
// the edge did not accept itself (a handler served by another server).
type deadlineConn struct {
	net.Conn
	wd writeDeadline
}

// SetWriteDeadline sets t coarsely.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	if !c.wd.set(t) {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.wd.forget()
	return c.Conn.SetDeadline(t)
}

// directOut writes a stream's whole buffers to its hijacked connection.
// On Linux, for a TCP socket, it first writes with a system call of its
// own: when the socket takes the whole buffer, as it does but for a slow
// reader, that is all, with none of Go's poller (its locks and readiness
// state) and no deadline to move, a write that cannot block. Only what the
// socket did not take goes through conn, within writeTimeout, as every
// write did before (go doc ./cmd/edge-bench: 8–12% of the edge's CPU per
// WebSocket delivery).
//
// The descriptor is conn's: a stream writes and closes its connection
// only holding its write turn, so it stays open while write runs.
type directOut struct {
	conn net.Conn // with coarse write deadlines (coarseDeadlines)
	fd   int      // conn's socket; -1: write through conn alone
}

// directMax is the largest buffer directOut writes itself; a larger one
// (history, a burst) is rarely taken whole, and goes to the poller at once.
const directMax = 64 << 10

func newDirectOut(conn net.Conn) directOut {
	conn = coarseDeadlines(conn)
	return directOut{conn: conn, fd: socketFD(conn)}
}

// write writes b. The caller holds the stream's turn.
func (d *directOut) write(b []byte) error {
	if d.fd >= 0 && len(b) <= directMax {
		n, err := writeFD(d.fd, b)
		switch {
		case err != nil:
			return &net.OpError{Op: "write", Net: "tcp", Source: d.conn.LocalAddr(), Addr: d.conn.RemoteAddr(), Err: err}
		case n == len(b):
			return nil
		}
		b = b[n:]
	}
	d.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := d.conn.Write(b)
	return err
}

// bufPool holds the write buffers of streaming connections, so an idle
// connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// framesPool holds the frame slices writers take from their sessions.
var framesPool = sync.Pool{New: func() any { f := make([]*edge.Frame, 0, 64); return &f }}

// stream is what SSE and WebSocket connections share: a session, a write
// turn and a heartbeat, and no goroutine of their own while idle. The
// session wakes the turn when frames are queued; a timer wakes it when a
// heartbeat is due; whoever sees the client leave wakes it too. Its write
// function ends the stream with end.
type stream struct {
	s       *Server
	sess    *edge.Session
	turn    writeTurn
	every   time.Duration // heartbeat interval
	beat    *time.Timer   // armed and stopped holding the turn
	beatDue atomic.Bool
	gone    atomic.Bool // the client left
	closeFn func()      // closes the connection; called once, by end
	expiry  *time.Timer // closes the session when the token expires; used holding the turn
	tr      metrics.Transport
	ended   bool // end ran; used holding the turn
}

// init wires the stream; write runs holding the turn whenever there may be
// something to write. The caller then holds the turn (for the history it
// writes) until it calls Unlock.
func (st *stream) init(s *Server, tr metrics.Transport, sess *edge.Session, every time.Duration, write, closeFn func()) {
	st.s, st.tr, st.sess, st.every, st.closeFn = s, tr, sess, every, closeFn
	s.metrics.Connected(tr, 1)
	st.turn.write = write
	st.turn.mu.Lock()
	sess.SetWake(st)
}

// startHeartbeat arms the heartbeat. The caller holds the turn.
func (st *stream) startHeartbeat() {
	st.beat = time.AfterFunc(st.every, func() {
		st.beatDue.Store(true)
		st.turn.KickHere()
	})
}

// heartbeatDue reports whether a heartbeat is due and re-arms the timer.
// The caller holds the turn.
func (st *stream) heartbeatDue() bool {
	if !st.beatDue.Swap(false) {
		return false
	}
	st.beat.Reset(st.every)
	return true
}

// expireAt closes the session with DisconnectExpired at t, when the
// connection's token expires; a zero t means never. It replaces an earlier
// expiry (a WebSocket refresh). The caller holds the turn.
func (st *stream) expireAt(t time.Time) {
	if st.expiry != nil {
		st.expiry.Stop()
		st.expiry = nil
	}
	if !t.IsZero() {
		st.expiry = time.AfterFunc(time.Until(t), func() { st.sess.Close(edge.DisconnectExpired) })
	}
}

// leave records that the client left; the writer ends the stream.
func (st *stream) leave() {
	st.gone.Store(true)
	st.Wake()
}

// take returns the session's queued frames in a pooled slice; give it back
// with putFrames.
func (st *stream) take() *[]*edge.Frame {
	fp := framesPool.Get().(*[]*edge.Frame)
	*fp = st.sess.Take((*fp)[:0])
	return fp
}

// delivered counts n frames written, the oldest of them with id first,
// sampling its latency when the run is to. The caller holds the turn.
func (st *stream) delivered(n int, first edge.ID) {
	if n > 0 {
		st.s.metrics.Delivered(st.tr, n)
		if st.turn.sample {
			st.s.metrics.Latency(st.tr, first, time.Now())
		}
	}
}

// countMessages returns how many of frames are messages (not presence
// frames), and the id of the first of them.
func countMessages(frames []*edge.Frame) (n int, first edge.ID) {
	for _, f := range frames {
		if f.IsPresence() {
			continue
		}
		if n == 0 {
			first = f.ID
		}
		n++
	}
	return n, first
}

func putFrames(fp *[]*edge.Frame) {
	clear(*fp)
	if cap(*fp) <= 1024 {
		*fp = (*fp)[:0]
		framesPool.Put(fp)
	}
}

// end closes the connection and releases the session; nothing is written
// after it. The caller holds the turn.
func (st *stream) end() {
	if st.ended {
		return
	}
	st.ended = true
	st.s.metrics.Connected(st.tr, -1)
	st.turn.Close()
	if st.beat != nil {
		st.beat.Stop()
	}
	st.expireAt(time.Time{})
	st.sess.SetWake(nil)
	st.sess.Release()
	st.closeFn()
}

// fail ends the stream after a live write failed with err. A write that
// found no room for writeTimeout means a peer that stopped reading: its
// session closes as a slow consumer, as one whose queue overflows does.
// The caller holds the turn.
func (st *stream) fail(err error) {
	// gorilla/websocket hides the deadline error behind its own, which
	// still says Timeout.
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		st.sess.Close(edge.DisconnectSlow)
	}
	st.end()
}

// Wake has the stream's turn write what is due, on a writer.
func (st *stream) Wake() { st.turn.Kick(st.s.writers) }

func (st *stream) kickTurn() *writeTurn { return &st.turn }
