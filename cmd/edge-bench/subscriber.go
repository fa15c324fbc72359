package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// connectTimeout bounds how long one subscriber may take to become ready.
const connectTimeout = 10 * time.Second

// clientEnv is what the subscribers of a run share: where the edge is and
// one dialer per source address. Subscriber i uses source i % len(sources).
type clientEnv struct {
	base    *url.URL
	dialers []*net.Dialer
	ws      []*websocket.Dialer
	poll    []*http.Client
	size    int // frame size of baseline clients
}

// newClientEnv prepares the dialers of c's subscribers.
func newClientEnv(c config) *clientEnv {
	e := &clientEnv{base: c.URL, size: c.Size}
	perSource := c.Subs/len(c.Sources) + 1
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
		e.poll = append(e.poll, &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: perSource,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}})
	}
	return e
}

// close closes the idle connections of the long-poll clients.
func (e *clientEnv) close() {
	for _, c := range e.poll {
		c.CloseIdleConnections()
	}
}

// subscribeURL returns the subscribe URL of channel with extra query
// parameters (name, value pairs), on scheme.
func (e *clientEnv) subscribeURL(scheme, channel string, params ...string) string {
	u := *e.base
	u.Scheme = scheme
	u.Path = "/v1/subscribe"
	q := url.Values{"channel": {channel}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// subscriber is one connection subscribed to one channel, and what it
// received. Its fields are written by its own goroutine only; read them
// after that goroutine ended.
type subscriber struct {
	id        int
	transport string
	channel   int // index of the channel: bench-<channel>
	env       *clientEnv
	shard     *shard

	track      seqTracker
	unparsed   int64 // message payloads that were not edge-bench payloads
	connectErr error // why it never became ready
	ended      error // why its connection ended before the run stopped it
}

// channelName returns the name of channel i of a run.
func channelName(i int) string { return "bench-" + strconv.Itoa(i) }

// run connects and calls ready once: when the edge has joined the
// subscriber to its channel, or when that failed (connectErr says why).
// Then it receives until ctx is done or the connection ends.
func (s *subscriber) run(ctx context.Context, ready func()) {
	isReady := false
	markReady := func() {
		isReady = true
		ready()
	}
	var err error
	switch s.transport {
	case transportWS:
		err = s.runWS(ctx, markReady)
	case transportSSE:
		err = s.runSSE(ctx, markReady)
	case transportPoll:
		err = s.runPoll(ctx, markReady)
	default:
		err = s.runTCP(ctx, markReady)
	}
	switch {
	case !isReady:
		s.connectErr = err
		ready()
	case ctx.Err() == nil:
		s.ended = err
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
		s.shard.deliver(sent, now)
	}
}

// ramp runs start(i, done) for every i in [0, n), each in a goroutine
// that wg owns, batch at a time: a batch starts once every start of the
// previous one called done. It returns how many it started, fewer than n
// when ctx ended first.
func ramp(ctx context.Context, n, batch int, wg *sync.WaitGroup, start func(i int, done func())) int {
	started := 0
	for started < n && ctx.Err() == nil {
		size := min(batch, n-started)
		var pending sync.WaitGroup
		pending.Add(size)
		for i := started; i < started+size; i++ {
			wg.Go(func() { start(i, pending.Done) })
		}
		pending.Wait()
		started += size
	}
	return started
}
