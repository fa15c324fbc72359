package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// connectTimeout bounds how long one subscriber may take to become ready.
const connectTimeout = 10 * time.Second

// clientEnv is what the subscribers of a run share: where the edge's
// nodes are and one dialer per source address. Subscriber i uses source
// i % len(sources).
type clientEnv struct {
	bases   []*url.URL // --url: one edge or the nodes of a fleet
	dialers []*net.Dialer
	ws      []*websocket.Dialer
	size    int    // payload bytes: the frame size of baseline clients
	target  string // edge, nchan or centrifugo: the server's wire forms
	// reconnect is --reconnect: subscribers keep their cursor and
	// reconnect when their connection ends.
	reconnect bool
}

// newClientEnv prepares the dialers of c's subscribers.
func newClientEnv(c config) *clientEnv {
	e := &clientEnv{bases: c.URLs, size: c.Size, target: c.Target, reconnect: c.Reconnect}
	for _, ip := range c.Sources {
		d := &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: ip},
			Timeout:   connectTimeout,
			KeepAlive: -1, // loopback, bounded runs: spare each socket four setsockopt calls
			Control:   bindNoPort,
		}
		e.dialers = append(e.dialers, d)
		e.ws = append(e.ws, &websocket.Dialer{
			NetDialContext:   d.DialContext,
			HandshakeTimeout: connectTimeout,
			ReadBufferSize:   4096,
			WriteBufferSize:  512,
		})
	}
	return e
}

// subscribeURL returns the subscribe URL of channel on node with extra
// query parameters (name, value pairs), on scheme.
func (e *clientEnv) subscribeURL(node int, scheme, channel string, params ...string) string {
	u := *e.bases[node]
	u.Scheme = scheme
	u.Path = "/v1/subscribe"
	q := url.Values{"channel": {channel}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// nchanURL returns the URL of path on node, on scheme.
func (e *clientEnv) nchanURL(node int, scheme, path string) string {
	u := *e.bases[node]
	u.Scheme, u.Path, u.RawQuery = scheme, path, ""
	return u.String()
}

// subscriber is one connection subscribed to one channel, and what it
// received. Its fields are written by its own goroutine only; read them
// after that goroutine ended.
type subscriber struct {
	id        int
	transport string
	channel   int // index of the channel: bench-<channel>
	node      int // index in env.bases of the node it connects to
	env       *clientEnv
	shard     *shard

	track      seqTracker
	unparsed   int64  // message payloads that were not edge-bench payloads
	gaps       int64  // gap signals: history after its cursor was lost
	connectErr error  // why it never became ready
	ended      error  // why its connection ended before the run stopped it
	cursor     []byte // with --reconnect, the last id (or start position) the edge gave
	rc         reconnectState
}

// host returns the host:port of the node the subscriber connects to.
func (s *subscriber) host() string { return s.env.bases[s.node].Host }

// channelName returns the name of channel i of a run.
func channelName(i int) string { return "bench-" + strconv.Itoa(i) }

// connect connects the subscriber and returns once the edge has joined it
// to its channel, with the loop that then receives until ctx is done or
// the connection ends (it closes the connection) and, with --reconnect,
// reconnects (see stay). When connecting fails it sets connectErr and
// returns nil.
func (s *subscriber) connect(ctx context.Context) (receive func()) {
	recv, err := s.dial(ctx)
	if err != nil {
		s.connectErr = err
		return nil
	}
	if s.env.reconnect {
		s.rc.readyAt = time.Now()
	}
	return func() { s.stay(ctx, recv) }
}

// dial connects the subscriber to its node, from its cursor if it has
// one, and returns once the edge has joined it to its channel, with the
// loop that then receives until ctx is done or the connection ends.
func (s *subscriber) dial(ctx context.Context) (receive func() error, err error) {
	switch s.transport {
	case transportWS:
		if s.env.target == targetCentrifugo {
			return s.connectCentrifugoWS(ctx)
		}
		return s.connectWS(ctx)
	case transportSSE:
		return s.connectSSE(ctx)
	case transportPoll:
		if s.env.target == targetNchan {
			return s.connectNchanPoll(ctx)
		}
		return s.connectPoll(ctx)
	}
	return s.connectTCP(ctx)
}

// closeOnDone closes c when ctx ends. The function it returns closes c at
// once and stops watching ctx.
func closeOnDone(ctx context.Context, c io.Closer) (closeNow func()) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return func() {
		stop()
		c.Close()
	}
}

// receive accounts for one message payload received at now (unix
// nanoseconds).
func (s *subscriber) receive(p []byte, now int64) {
	seq, sent, ok := parsePayload(p)
	if !ok {
		s.unparsed++
		return
	}
	if s.track.observe(seq) {
		s.shard.deliver(sent, now, s.env.reconnect && s.rc.lostAt == 0)
	}
}

// ramp connects subscribers 0 … n-1 from window connector goroutines,
// each taking the next subscriber as soon as its last one is ready (or
// failed), so a slow connection holds up one slot rather than a whole
// batch. connect(i) connects subscriber i and returns its receive loop, or
// nil; ramp runs each loop in a goroutine that wg owns. Dialing and
// handshakes, which need deep stacks, thus run on a few goroutines whose
// stacks have grown, not on a new small one per subscriber. ramp returns,
// once every connect it started returned, how many it started: fewer than
// n when ctx ended first.
func ramp(ctx context.Context, n, window int, wg *sync.WaitGroup, connect func(i int) (receive func())) int {
	var next atomic.Int64
	var connectors sync.WaitGroup
	for range min(window, n) {
		connectors.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if receive := connect(i); receive != nil {
					wg.Go(receive)
				}
			}
		})
	}
	connectors.Wait()
	return min(int(next.Load()), n)
}
