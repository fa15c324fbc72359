package resume

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeworks/edge/edge"
)

var (
	_ edge.Broker         = (*Memory)(nil)
	_ edge.BatchPublisher = (*Memory)(nil)
	_ edge.OncePublisher  = (*Memory)(nil)
	_ edge.KeyPublisher   = (*Memory)(nil)
)

// Memory is the embedded, single-node store: each channel keeps its recent
// messages in a ring bounded by MemoryConfig.HistorySize and HistoryTTL,
// all channels together by MemoryConfig.HistoryMemory. Ids have the Redis
// Stream form and are strictly increasing per channel.
//
// Gap detection: every channel has a floor, the newest id known to be lost
// (trimmed, expired, or from before this store started). A cursor below the
// floor gets Page.Gap; a cursor past the channel's newest id (from an
// earlier run of the edge, whose history is gone) gets Page.Ahead. The cursor "0-0" asks for everything retained and
// gets a gap only when this store trimmed messages of the channel.
//
// Memory is safe for concurrent use.
type Memory struct {
	cfg     MemoryConfig
	now     func() time.Time
	start   edge.ID
	bytes   atomic.Int64 // payload bytes retained over all channels
	deliver atomic.Pointer[func(context.Context, edge.Message)]

	once     *onceKeys // idempotency keys of recent publishes
	presence memPresence

	mu sync.RWMutex
	// mu guards channels and evicted.
	channels map[string]*memChannel
	evicted  edge.ID // newest id of any channel dropped for being idle
}

// memChannel is one channel's ring. Lock order: Memory.mu, then
// memChannel.mu.
type memChannel struct {
	mu sync.Mutex
	// mu guards the fields below.
	ring    []edge.Message // circular; len(ring) is the capacity
	head, n int
	last    edge.ID // newest id assigned (or the floor, before the first)
	floor   edge.ID // newest id known lost
	trimmed bool    // this store trimmed messages of the channel
	dead    bool    // dropped from Memory.channels; look it up again
}

// NewMemory returns an empty store, with the zero fields of cfg set to
// their defaults. It panics when cfg.Validate fails: a caller validates
// configuration first.
func NewMemory(cfg MemoryConfig) *Memory {
	return newMemory(cfg, time.Now)
}

func newMemory(cfg MemoryConfig, now func() time.Time) *Memory {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("resume: NewMemory: %v", err))
	}
	return &Memory{
		cfg:      cfg,
		now:      now,
		start:    edge.ID{Ms: uint64(now().UnixMilli())},
		once:     newOnceKeys(cfg.IdempotencyWindow, maxOnceKeys),
		channels: make(map[string]*memChannel),
	}
}

// Relay sets the function that receives every published message.
func (m *Memory) Relay(deliver func(context.Context, edge.Message)) { m.deliver.Store(&deliver) }

// Watch returns at once: the embedded store relays every channel.
func (m *Memory) Watch(context.Context, string) error { return nil }

// Unwatch does nothing: the embedded store relays every channel.
func (m *Memory) Unwatch(string) {}

// Ready always succeeds: the embedded store is always available.
func (m *Memory) Ready(context.Context) error { return nil }

// Publish stores the message, relays it, and returns its id.
func (m *Memory) Publish(ctx context.Context, channel, event string, data []byte) (edge.ID, error) {
	id, _, err := m.PublishKeyed(ctx, edge.Publication{Channel: channel, Event: event, Data: data}, "")
	return id, err
}

// PublishOnce is Publish with an idempotency key (edge.OncePublisher),
// remembered for MemoryConfig.IdempotencyWindow. The key is looked up and
// noted under the channel's lock, so two publishes with one key store one
// message whatever their timing.
func (m *Memory) PublishOnce(ctx context.Context, channel, event string, data []byte, key string) (edge.ID, bool, error) {
	return m.PublishKeyed(ctx, edge.Publication{Channel: channel, Event: event, Data: data}, key)
}

// PublishKeyed stores p with its conflation key (edge.KeyPublisher); with
// an idempotency key once it is PublishOnce.
func (m *Memory) PublishKeyed(ctx context.Context, p edge.Publication, once string) (edge.ID, bool, error) {
	var sum [sha256.Size]byte
	c := m.lockChannel(p.Channel)
	now := m.now()
	if once != "" {
		sum = onceSum(p.Event, p.Data)
		if id, replayed, err := m.once.lookup(p.Channel, once, sum, now); replayed || err != nil {
			c.mu.Unlock()
			return id, replayed, err
		}
	}
	msg := edge.Message{Channel: p.Channel, Event: p.Event, Data: slices.Clone(p.Data), Key: p.Key}
	m.storeLocked(ctx, c, &msg, now)
	if once != "" {
		m.once.remember(p.Channel, once, msg.ID, sum, now)
	}
	c.mu.Unlock()
	if m.bytes.Load() > m.cfg.HistoryMemory {
		m.enforceBudget(p.Channel)
	}
	return msg.ID, false, nil
}

// PublishBatch stores and relays the messages of each channel of pubs
// under one hold of the channel's lock, so that they get consecutive ids
// and are relayed in order, with no other publish between them.
func (m *Memory) PublishBatch(ctx context.Context, pubs []edge.Publication) []edge.Published {
	out := make([]edge.Published, len(pubs))
	for _, group := range byChannel(pubs) {
		channel := pubs[group[0]].Channel
		c := m.lockChannel(channel)
		now := m.now()
		for _, i := range group {
			p := pubs[i]
			msg := edge.Message{Channel: channel, Event: p.Event, Data: slices.Clone(p.Data), Key: p.Key}
			m.storeLocked(ctx, c, &msg, now)
			out[i].ID = msg.ID
		}
		c.mu.Unlock()
		if m.bytes.Load() > m.cfg.HistoryMemory {
			m.enforceBudget(channel)
		}
	}
	return out
}

// lockChannel returns the channel's ring, created if need be, locked.
func (m *Memory) lockChannel(channel string) *memChannel {
	for {
		c := m.channel(channel, true)
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock()
	}
}

// storeLocked gives msg the channel's next id at now, stores and relays
// it. Relaying under the channel lock makes subscribers see the channel's
// messages in id order.
func (m *Memory) storeLocked(ctx context.Context, c *memChannel, msg *edge.Message, now time.Time) {
	msg.ID = c.last.Next(uint64(now.UnixMilli()))
	c.last = msg.ID
	m.appendLocked(c, *msg)
	m.expireLocked(c, now)
	if d := m.deliver.Load(); d != nil {
		(*d)(ctx, *msg)
	}
}

// channel returns the channel's ring, creating it when create is set.
func (m *Memory) channel(name string, create bool) *memChannel {
	m.mu.RLock()
	c := m.channels[name]
	m.mu.RUnlock()
	if c != nil || !create {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c = m.channels[name]; c == nil {
		// After any channel was dropped, this one may be a channel that
		// had messages: "0-0" then gets a gap rather than a silent skip.
		floor := maxID(m.start, m.evicted)
		c = &memChannel{last: floor, floor: floor, trimmed: !m.evicted.IsZero()}
		m.channels[name] = c
	}
	return c
}

func maxID(a, b edge.ID) edge.ID {
	if a.Less(b) {
		return b
	}
	return a
}

// newFloor is the floor a channel gets when the store has no record of it.
func (m *Memory) newFloor() edge.ID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return maxID(m.start, m.evicted)
}

func (m *Memory) appendLocked(c *memChannel, msg edge.Message) {
	if c.n == m.cfg.HistorySize {
		m.dropOldestLocked(c)
	}
	if c.n == len(c.ring) {
		grown := make([]edge.Message, min(m.cfg.HistorySize, max(8, 2*len(c.ring))))
		for i := 0; i < c.n; i++ {
			grown[i] = c.ring[(c.head+i)%len(c.ring)]
		}
		c.ring, c.head = grown, 0
	}
	c.ring[(c.head+c.n)%len(c.ring)] = msg
	c.n++
	m.bytes.Add(int64(len(msg.Data) + len(msg.Key)))
}

func (m *Memory) dropOldestLocked(c *memChannel) {
	old := &c.ring[c.head]
	c.floor, c.trimmed = old.ID, true
	m.bytes.Add(-int64(len(old.Data) + len(old.Key)))
	*old = edge.Message{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// expireLocked drops messages older than HistoryTTL.
func (m *Memory) expireLocked(c *memChannel, now time.Time) {
	cutoff := uint64(now.Add(-m.cfg.HistoryTTL).UnixMilli())
	for c.n > 0 && c.ring[c.head].ID.Ms < cutoff {
		m.dropOldestLocked(c)
	}
}

// enforceBudget trims oldest messages until the store is within
// HistoryMemory: first from the channel that was just published to (down
// to the message just stored), then from the others, emptying them if need
// be.
func (m *Memory) enforceBudget(first string) {
	m.mu.RLock()
	order := make([]*memChannel, 0, len(m.channels))
	if c := m.channels[first]; c != nil {
		order = append(order, c)
	}
	for name, c := range m.channels {
		if name != first {
			order = append(order, c)
		}
	}
	m.mu.RUnlock()
	for i, c := range order {
		keep := 0
		if i == 0 {
			keep = 1
		}
		c.mu.Lock()
		for c.n > keep && m.bytes.Load() > m.cfg.HistoryMemory {
			m.dropOldestLocked(c)
		}
		c.mu.Unlock()
		if m.bytes.Load() <= m.cfg.HistoryMemory {
			return
		}
	}
}

// History returns up to limit messages after the cursor.
func (m *Memory) History(ctx context.Context, channel string, after edge.ID, limit int) (edge.Page, error) {
	c := m.channel(channel, false)
	if c == nil {
		floor := m.newFloor()
		if floor.Less(after) {
			return aheadPage(floor), nil
		}
		return edge.Page{Gap: !after.IsZero() && after.Less(floor)}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m.expireLocked(c, m.now())
	if c.last.Less(after) {
		return aheadPage(c.last), nil
	}
	var page edge.Page
	if after.IsZero() {
		page.Gap = c.trimmed
	} else {
		page.Gap = after.Less(c.floor)
	}
	at := c.search(after)
	for i := at; i < c.n && len(page.Messages) < limit; i++ {
		page.Messages = append(page.Messages, c.ring[(c.head+i)%len(c.ring)])
	}
	return page, nil
}

// aheadPage is the answer to a cursor past the channel's newest id, last:
// a gap, and where to continue.
func aheadPage(last edge.ID) edge.Page {
	return edge.Page{Gap: true, Ahead: true, Last: last}
}

// search returns the index (from the oldest) of the first message after id.
func (c *memChannel) search(id edge.ID) int {
	lo, hi := 0, c.n
	for lo < hi {
		mid := (lo + hi) / 2
		if id.Less(c.ring[(c.head+mid)%len(c.ring)].ID) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Last returns the newest id of the channel, or its floor.
func (m *Memory) Last(ctx context.Context, channel string) (edge.ID, error) {
	c := m.channel(channel, false)
	if c == nil {
		return m.newFloor(), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, nil
}

// Run expires old messages and forgets channels that have been empty for
// HistoryTTL, until ctx is done.
func (m *Memory) Run(ctx context.Context) error {
	every := min(max(m.cfg.HistoryTTL/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep expires messages and drops channels whose newest message is older
// than HistoryTTL and that retain nothing.
func (m *Memory) sweep() {
	now := m.now()
	idle := uint64(now.Add(-m.cfg.HistoryTTL).UnixMilli())
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, c := range m.channels {
		c.mu.Lock()
		m.expireLocked(c, now)
		if c.n == 0 && c.last.Ms < idle {
			c.dead = true
			m.evicted = maxID(m.evicted, c.last)
			delete(m.channels, name)
		}
		c.mu.Unlock()
	}
}
