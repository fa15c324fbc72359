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
	// options are the subscribe options passed to the edge (name, value
	// pairs: conflate, delta, compress); query is them as a query string
	// to append ("&name=value…", "" for none).
	options []string
	query   string
	// conflate, delta and compress say which of them a subscriber asked
	// for: conflate checks order instead of completeness, delta tracks
	// ids (see idTracker), compress asks for gzip on SSE and long-poll.
	conflate, delta, compress bool
	wakeGap                   time.Duration // --wake-gap, see meter
}

// newClientEnv prepares the dialers of c's subscribers.
func newClientEnv(c config) *clientEnv {
	e := &clientEnv{
		bases: c.URLs, size: c.Size, target: c.Target, reconnect: c.Reconnect,
		options: subscribeOptions(c), conflate: c.Conflate > 0, delta: c.Delta != "", compress: c.Compress, wakeGap: c.WakeGap,
	}
	for i := 0; i+1 < len(e.options); i += 2 {
		e.query += "&" + e.options[i] + "=" + url.QueryEscape(e.options[i+1])
	}
	for _, ip := range c.Sources {
		d := &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: ip},
			Timeout:   connectTimeout,
			KeepAlive: -1, // loopback, bounded runs: spare each socket four setsockopt calls
			Control:   bindNoPort,
		}
		e.dialers = append(e.dialers, d)
		e.ws = append(e.ws, &websocket.Dialer{
			NetDialContext:    d.DialContext,
			HandshakeTimeout:  connectTimeout,
			ReadBufferSize:    4096,
			WriteBufferSize:   512,
			EnableCompression: c.Compress,
		})
	}
	return e
}

// subscribeOptions returns the subscribe options of c that the edge is
// asked for, as name, value pairs.
func subscribeOptions(c config) []string {
	var o []string
	if c.Conflate > 0 {
		o = append(o, "conflate", c.Conflate.String())
	}
	if c.Delta != "" {
		o = append(o, "delta", c.Delta)
	}
	if c.Compress {
		o = append(o, "compress", "1")
	}
	return o
}

// subscribeURL returns the subscribe URL of channel on node with extra
// query parameters (name, value pairs), on scheme.
func (e *clientEnv) subscribeURL(node int, scheme, channel string, params ...string) string {
	u := *e.bases[node]
	u.Scheme = scheme
	u.Path = "/v1/subscribe"
	q := url.Values{"channel": {channel}}
	for i := 0; i+1 < len(e.options); i += 2 {
		q.Set(e.options[i], e.options[i+1])
	}
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

	meter   meter       // bytes and wake-ups of its connections
	window  meterCounts // what meter counted while the run published (see fleet)
	ids     idTracker   // with --delta, instead of track
	deltas  int64       // with --delta, delta messages received (first deliveries)
	fulls   int64       // with --delta, full messages received (first deliveries)
	lastSeq uint64      // with --conflate, the highest sequence number received
	// reordered counts, with --conflate, first deliveries below lastSeq.
	reordered int64
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
	s.meter.gap, s.meter.perRequest = s.env.wakeGap, s.transport == transportPoll
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
		if s.env.conflate {
			if seq < s.lastSeq {
				s.reordered++
			}
			s.lastSeq = max(s.lastSeq, seq)
		}
		s.shard.deliver(sent, now, s.env.reconnect && s.rc.lostAt == 0)
	}
}

// receiveID accounts, with --delta, for the message id received at now
// (unix nanoseconds), whose data is a delta or a full payload. A delta is
// not applied: its latency runs from the millisecond in its id, when the
// edge stored it, a full payload's from its send time.
func (s *subscriber) receiveID(id, data []byte, delta bool, now int64) {
	ms, first, ok := s.ids.observe(id)
	if !ok {
		s.unparsed++
		return
	}
	if !first {
		return
	}
	sent := int64(ms) * int64(time.Millisecond)
	if delta {
		s.deltas++
	} else {
		s.fulls++
		if _, t, ok := parsePayload(data); ok {
			sent = t
		} else {
			s.unparsed++
		}
	}
	s.shard.deliver(sent, now, s.env.reconnect && s.rc.lostAt == 0)
}

// receiveFrame accounts for the message objects of a WebSocket frame or
// a long-poll answer received at now, and returns how many it held.
func (s *subscriber) receiveFrame(frame []byte, now int64) int {
	if s.env.delta {
		return scanObjects(frame, func(id, data []byte, delta bool) { s.receiveID(id, data, delta, now) })
	}
	return scanMessages(frame, func(p []byte) { s.receive(p, now) })
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
