package edge

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

const numShards = 64

// Hub is the channel registry of one node: it keeps which local sessions
// subscribe to which channel and fans every live message out to them. It is
// safe for concurrent use.
//
// Lock order: a shard's mu, then a Session's mu, then the presence
// queue's (see presenceOps); the long-poll members' mu (pollMembers),
// taken under no other, then the presence queue's. The hub never holds a
// shard lock while it enqueues on sessions, and never does I/O: presence's
// store calls run on goroutines of their own.
type Hub struct {
	broker Broker
	cfg    Config
	log    *slog.Logger
	seed   maphash.Seed
	shards [numShards]shard

	mu sync.Mutex
	// mu guards sessions, and the setting of closing (so no session is
	// registered after Shutdown took the list).
	sessions map[*Session]struct{}
	closing  atomic.Bool
	count    atomic.Int64
	slow     atomic.Int64 // sessions closed as slow consumers
	tracer   trace.Tracer // nil: no fan-out spans
	wakeAll  func([]Waker)

	// afterFunc makes the timers of conflation windows (time.AfterFunc;
	// a test's fake clock).
	afterFunc func(time.Duration, func()) windowTimer

	presence *presenceOps  // nil: no channel keeps presence
	polls    pollMembers   // the long-poll members (PollMember)
	node     string        // this node's name in presence
	conns    atomic.Uint64 // the last connection number given (Session.SetMember)
}

type shard struct {
	mu sync.RWMutex
	// mu guards chans and their lists. Each list is copy-on-write: readers
	// take it under RLock and use it after unlocking.
	chans map[string]*listeners
}

// listeners are a channel's local sessions.
type listeners struct {
	// name is the channel's name, one string shared by the frames the
	// hub delivers and the sessions' subscriptions, so that a session
	// matches a frame to its subscription by pointer (Go compares strings
	// of one pointer without reading them).
	name string
	subs []*Session
}

// subscribers returns channel's local sessions and its shared name.
func (sh *shard) subscribers(channel string) ([]*Session, string) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if l := sh.chans[channel]; l != nil {
		return l.subs, l.name
	}
	return nil, channel
}

// NewHub returns a hub that relays the broker's live messages, with the
// zero fields of cfg set to their defaults. NewHub calls broker.Relay. It
// panics when cfg.Validate fails: a caller validates configuration first.
func NewHub(broker Broker, cfg Config, log *slog.Logger) *Hub {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("edge: NewHub: %v", err))
	}
	h := &Hub{
		broker:   broker,
		cfg:      cfg,
		log:      log,
		seed:     maphash.MakeSeed(),
		sessions: make(map[*Session]struct{}),
		node:     cfg.Node,

		afterFunc: afterFunc,
	}
	if h.node == "" {
		h.node = defaultNode()
	}
	for i := range h.shards {
		h.shards[i].chans = make(map[string]*listeners)
	}
	broker.Relay(h.deliver)
	if lr, ok := broker.(LossReporter); ok {
		lr.OnLost(h.lost)
	}
	if p, ok := broker.(Presence); ok && cfg.Presence != nil {
		h.presence = newPresenceOps(p, h.node, log)
		p.OnPresence(h.announce)
	}
	return h
}

// SetTracer makes the hub trace the fan-out of traced publishes with t
// (see Broker.Relay). Call it before the broker runs.
func (h *Hub) SetTracer(t trace.Tracer) { h.tracer = t }

// SetWakeAll makes the hub wake the sessions that a live message was
// queued on with one call of wakeAll, once it queued it on all of them,
// instead of one Wake each: a server can then hand them to its writers in
// batches. wakeAll must return at once and must not call the sessions; it
// must not keep the slice. Call it before the broker runs.
func (h *Hub) SetWakeAll(wakeAll func([]Waker)) { h.wakeAll = wakeAll }

// wakersPool holds the slices deliver collects Wakers in.
var wakersPool = sync.Pool{New: func() any { w := make([]Waker, 0, 64); return &w }}

// Broker returns the broker the hub relays.
func (h *Hub) Broker() Broker { return h.broker }

// Config returns the hub's configuration.
func (h *Hub) Config() Config { return h.cfg }

// Sessions returns how many sessions are open.
func (h *Hub) Sessions() int { return int(h.count.Load()) }

// SlowConsumers returns how many sessions were closed for falling behind.
func (h *Hub) SlowConsumers() int64 { return h.slow.Load() }

// SessionStats sums the open sessions of one kind (see Session.SetKind).
type SessionStats struct {
	Sessions       int
	Subscriptions  int // channels subscribed
	QueuedFrames   int // frames waiting for the connections' writers
	QueuedBytes    int
	MaxQueuedBytes int // the fullest queue
}

// Stats sums the open sessions into stats by kind; a kind beyond the end
// counts in the last. It walks every session: call it at metrics
// collection, not on a hot path.
func (h *Hub) Stats(stats []SessionStats) {
	if len(stats) == 0 {
		return
	}
	h.mu.Lock()
	all := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		st := &stats[min(int(s.kind), len(stats)-1)]
		st.Sessions++
		st.Subscriptions += len(s.subs)
		st.QueuedFrames += len(s.queue)
		st.QueuedBytes += s.queued
		st.MaxQueuedBytes = max(st.MaxQueuedBytes, s.queued)
		s.mu.Unlock()
	}
}

func (h *Hub) shard(channel string) *shard {
	return &h.shards[maphash.String(h.seed, channel)%numShards]
}

// deliver fans m out to the channel's local sessions. The frame is built
// only when someone listens. When the hub has a tracer, the fan-out of a
// traced publish is a span "fanout": the child of the recording span in
// ctx (a publish relayed synchronously), or of a sampled remote span
// context in ctx (a publish on another node or process, relayed by the
// broker), then of consumer kind.
func (h *Hub) deliver(ctx context.Context, m Message) {
	subs, name := h.shard(m.Channel).subscribers(m.Channel)
	m.Channel = name
	if t := h.tracer; t != nil {
		kind := trace.SpanKindUnspecified
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			kind = trace.SpanKindInternal
		} else if sc := span.SpanContext(); sc.IsRemote() && sc.IsSampled() {
			kind = trace.SpanKindConsumer
		}
		if kind != trace.SpanKindUnspecified {
			_, span := t.Start(ctx, "fanout", trace.WithSpanKind(kind), trace.WithAttributes(attribute.Int("edge.subscribers", len(subs))))
			defer span.End()
		}
	}
	if len(subs) == 0 {
		return
	}
	h.fanout(subs, NewFrame(m))
}

// fanout queues f on subs and wakes them.
func (h *Hub) fanout(subs []*Session, f *Frame) {
	if h.wakeAll == nil {
		for _, s := range subs {
			if w := s.push(f); w != nil {
				w.Wake()
			}
		}
		return
	}
	wp := wakersPool.Get().(*[]Waker)
	wake := (*wp)[:0]
	for _, s := range subs {
		if w := s.push(f); w != nil {
			wake = append(wake, w)
		}
	}
	if len(wake) > 0 {
		h.wakeAll(wake)
	}
	clear(wake)
	if cap(wake) <= 4096 {
		*wp = wake[:0]
		wakersPool.Put(wp)
	}
}

// lost closes the channel's local sessions with DisconnectResync: their
// live stream missed messages, and only a resume tells their clients.
func (h *Hub) lost(channel string) {
	subs, _ := h.shard(channel).subscribers(channel)
	for _, s := range subs {
		s.Close(DisconnectResync)
	}
}

// add registers s for channel's live frames and waits until the broker
// relays the channel. It returns the channel's shared name (see
// listeners).
func (h *Hub) add(ctx context.Context, channel string, s *Session) (string, error) {
	sh := h.shard(channel)
	sh.mu.Lock()
	l := sh.chans[channel]
	if l == nil {
		l = &listeners{name: channel}
		sh.chans[channel] = l
	}
	subs := make([]*Session, len(l.subs), len(l.subs)+1)
	copy(subs, l.subs)
	l.subs = append(subs, s)
	sh.mu.Unlock()
	if err := h.broker.Watch(ctx, channel); err != nil {
		h.unlist(channel, s)
		return "", err
	}
	return l.name, nil
}

// remove undoes add.
func (h *Hub) remove(channel string, s *Session) {
	h.unlist(channel, s)
	h.broker.Unwatch(channel)
}

func (h *Hub) unlist(channel string, s *Session) {
	sh := h.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l := sh.chans[channel]
	if l == nil {
		return
	}
	subs := make([]*Session, 0, len(l.subs))
	for _, o := range l.subs {
		if o != s {
			subs = append(subs, o)
		}
	}
	if len(subs) == 0 {
		delete(sh.chans, channel)
	} else {
		l.subs = subs
	}
}

// NewSession opens a session. It fails with ErrShuttingDown once Shutdown
// began. The caller owns the session and must call Release when done.
func (h *Hub) NewSession() (*Session, error) {
	s := &Session{
		hub:      h,
		maxBytes: h.cfg.QueueBytes,
		notify:   make(chan struct{}, 1),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return nil, ErrShuttingDown
	}
	h.sessions[s] = struct{}{}
	h.count.Add(1)
	return s, nil
}

func (h *Hub) release(s *Session) {
	h.mu.Lock()
	_, ok := h.sessions[s]
	delete(h.sessions, s)
	h.mu.Unlock()
	if ok {
		h.count.Add(-1)
	}
}

// Shutdown refuses new sessions and closes every open one with
// DisconnectShutdown: those marked CloseFirst at once, the others spread
// evenly over window so that clients do not all reconnect at the same
// instant. It returns when all are closed or ctx is done.
func (h *Hub) Shutdown(ctx context.Context, window time.Duration) {
	h.mu.Lock()
	h.closing.Store(true)
	all := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	all = slices.DeleteFunc(all, func(s *Session) bool {
		s.mu.Lock()
		first := s.first
		s.mu.Unlock()
		if first {
			s.Close(DisconnectShutdown)
		}
		return first
	})
	const batches = 20
	per := (len(all) + batches - 1) / batches
	tick := time.NewTicker(max(window/batches, time.Millisecond))
	defer tick.Stop()
	for len(all) > 0 {
		n := min(per, len(all))
		for _, s := range all[:n] {
			s.Close(DisconnectShutdown)
		}
		all = all[n:]
		if len(all) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			for _, s := range all {
				s.Close(DisconnectShutdown)
			}
			return
		}
	}
}

// ShuttingDown reports whether Shutdown began.
func (h *Hub) ShuttingDown() bool { return h.closing.Load() }
