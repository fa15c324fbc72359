package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// presenceCallTimeout bounds one Join or Leave of the store.
const presenceCallTimeout = 5 * time.Second

// presenceWorkers is how many store calls of presence may be in flight
// at once, each member's in order on one of them: a Redis round trip
// each, so that a reconnect storm of thousands of members is listed
// within a second or two rather than one round trip after the other.
const presenceWorkers = 8

// maxPendingPresence bounds the joins and leaves waiting for the store:
// past it a join is dropped (and counted as failed). A leave is always
// kept, as it undoes a join that was kept, so what waits stays within this
// bound plus the node's subscriptions.
const maxPendingPresence = 1 << 16

// memberKey names one member of one channel.
type memberKey struct{ channel, conn string }

// presenceWant is the state a member should reach in the store.
type presenceWant struct {
	join   bool
	force  bool   // join even if joined: the member may have moved to another node since (a long-poll)
	member Member // when join
}

// presenceOps applies this node's joins and leaves to the store, in the
// order they happened for each member, on presenceWorkers goroutines that
// run while there is work (each member always on the same one): store
// calls are network I/O (Redis), which must neither block fan-out nor
// hold a hub or session lock. A join and leave of one member that meet in
// the queue cancel out, so a connection that comes and goes before the
// store heard of it costs no call.
//
// Lock order: a Session's mu, then a queue's mu (sessions queue their
// joins and leaves holding theirs, so that they reach the queue in
// order). A worker holds its queue's mu only between store calls.
type presenceOps struct {
	store  Presence
	node   string // this node: a leave removes only its own entry (Presence.Leave)
	log    *slog.Logger
	ctx    context.Context // the store calls'; cancelled by stop
	cancel context.CancelFunc
	seed   maphash.Seed
	failed atomic.Int64 // joins and leaves that failed or were dropped
	logged atomic.Int64 // unix nanoseconds before which no failure is logged
	queues [presenceWorkers]presenceQueue
}

// presenceQueue is the work of one worker.
type presenceQueue struct {
	mu sync.Mutex
	// mu guards the fields below.
	want    map[memberKey]presenceWant // what each key of keys should become
	keys    []memberKey                // keys of want, oldest first
	joined  map[memberKey]struct{}     // members whose Join was sent and whose Leave was not
	done    chan struct{}              // closed when the running worker ends; nil: none runs
	stopped bool                       // stop began: nothing more is queued
}

func newPresenceOps(store Presence, node string, log *slog.Logger) *presenceOps {
	ctx, cancel := context.WithCancel(context.Background())
	p := &presenceOps{store: store, node: node, log: log, ctx: ctx, cancel: cancel, seed: maphash.MakeSeed()}
	for i := range p.queues {
		p.queues[i].want = make(map[memberKey]presenceWant)
		p.queues[i].joined = make(map[memberKey]struct{})
	}
	return p
}

// queue returns the queue of the member conn of channel.
func (p *presenceOps) queue(channel, conn string) *presenceQueue {
	var h maphash.Hash
	h.SetSeed(p.seed)
	h.WriteString(channel)
	h.WriteByte(0)
	h.WriteString(conn)
	return &p.queues[h.Sum64()%presenceWorkers]
}

// join queues the join of m to channel; with force it is sent even if
// this node joined m already, to claim back an entry that another node's
// join replaced (a long-poll member moving between nodes). The caller
// holds the session's mu, or pollMembers' mu.
func (p *presenceOps) join(channel string, m Member, force bool) {
	q := p.queue(channel, m.Conn)
	q.mu.Lock()
	defer q.mu.Unlock()
	k := memberKey{channel, m.Conn}
	if _, queued := q.want[k]; !queued && len(q.want) >= maxPendingPresence/presenceWorkers {
		p.fail("presence join dropped: too many joins and leaves wait for the store", fmt.Errorf("%d waiting", len(q.want)))
		return
	}
	if w, queued := q.want[k]; queued && w.join {
		force = force || w.force
	}
	p.queueLocked(q, k, presenceWant{join: true, force: force, member: m})
}

// leave queues the leave of conn from channel. The caller holds the
// session's mu, or pollMembers' mu.
func (p *presenceOps) leave(channel, conn string) {
	q := p.queue(channel, conn)
	q.mu.Lock()
	defer q.mu.Unlock()
	p.queueLocked(q, memberKey{channel, conn}, presenceWant{})
}

// queueLocked queues w for k on q, starting q's worker if none runs. The
// caller holds q.mu.
func (p *presenceOps) queueLocked(q *presenceQueue, k memberKey, w presenceWant) {
	if q.stopped {
		return
	}
	if _, queued := q.want[k]; !queued {
		q.keys = append(q.keys, k)
	}
	q.want[k] = w
	if q.done == nil {
		q.done = make(chan struct{})
		go p.run(q, q.done)
	}
}

// run applies q until it is empty, then ends, closing done.
func (p *presenceOps) run(q *presenceQueue, done chan struct{}) {
	for {
		q.mu.Lock()
		if len(q.keys) == 0 || q.stopped {
			q.done = nil
			q.mu.Unlock()
			close(done)
			return
		}
		k := q.keys[0]
		q.keys[0] = memberKey{}
		q.keys = q.keys[1:]
		w := q.want[k]
		delete(q.want, k)
		_, was := q.joined[k]
		switch {
		case w.join && (!was || w.force):
			q.joined[k] = struct{}{}
		case !w.join && was:
			delete(q.joined, k)
		default: // a join and a leave cancelled out
			q.mu.Unlock()
			continue
		}
		q.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, presenceCallTimeout)
		var err error
		if w.join {
			err = p.store.Join(ctx, k.channel, w.member)
		} else {
			err = p.store.Leave(ctx, k.channel, k.conn, p.node)
		}
		cancel()
		if err != nil {
			what := "presence leave failed"
			if w.join {
				what = "presence join failed; the subscription works, unlisted"
			}
			p.fail(what, err)
		}
	}
}

// fail counts a join or leave that did not reach the store and logs it,
// at most once a second.
func (p *presenceOps) fail(what string, err error) {
	n := p.failed.Add(1)
	now := time.Now().UnixNano()
	next := p.logged.Load()
	if now < next || !p.logged.CompareAndSwap(next, now+int64(time.Second)) {
		return
	}
	p.log.Warn(what, "err", err, "presence_failures", n)
}

// stop waits until the queues are applied or ctx is done, then cancels
// the store calls in flight, drops what is left and waits for the
// workers. Nothing is queued afterwards.
func (p *presenceOps) stop(ctx context.Context) {
	for i := range p.queues {
		q := &p.queues[i]
		for {
			q.mu.Lock()
			done := q.done
			if done == nil || ctx.Err() != nil {
				q.stopped = true
				q.mu.Unlock()
				break
			}
			q.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}
	}
	p.cancel()
	for i := range p.queues {
		q := &p.queues[i]
		q.mu.Lock()
		done := q.done
		clear(q.want)
		q.keys = nil
		q.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// defaultNode names a node whose configuration names none: the host name
// and a random suffix, so that several processes on one host differ.
func defaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edge"
	}
	var b strings.Builder
	for i := 0; i < len(host) && b.Len() < MaxNodeLen-7; i++ {
		if c := host[i]; IsNameByte(c) {
			b.WriteByte(c)
		}
	}
	var r [3]byte
	rand.Read(r[:])
	return b.String() + "-" + hex.EncodeToString(r[:])
}

// Node returns the name of this node in presence (Config.Node).
func (h *Hub) Node() string { return h.node }

// KeepsPresence reports whether channel keeps presence on this hub
// (Config.Presence, with a broker that implements Presence).
func (h *Hub) KeepsPresence(channel string) bool {
	return h.presence != nil && h.cfg.Presence(channel)
}

// PresenceEnabled reports whether any channel may keep presence.
func (h *Hub) PresenceEnabled() bool { return h.presence != nil }

// Members returns up to limit members of channel, fleet-wide, and their
// exact count. It fails with an error wrapping ErrPresenceOff when the
// channel keeps no presence, and one wrapping ErrUnavailable when the
// store failed.
func (h *Hub) Members(ctx context.Context, channel string, limit int) ([]Member, int, error) {
	if !h.KeepsPresence(channel) {
		return nil, 0, fmt.Errorf("%w: channel %q keeps no presence", ErrPresenceOff, channel)
	}
	members, n, err := h.presence.store.Members(ctx, channel, limit)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = WithCause(ErrUnavailable, err)
		}
		return nil, 0, err
	}
	return members, n, nil
}

// PresenceFailures returns how many presence joins and leaves failed to
// reach the store (or were dropped) since start.
func (h *Hub) PresenceFailures() int64 {
	if h.presence == nil {
		return 0
	}
	return h.presence.failed.Load()
}

// StopPresence leaves the long-poll members (PollMember), waits until
// the joins and leaves of this node reached the store, or ctx is done,
// then stops sending them: call it once sessions
// are released on shutdown, before the broker stops, so other nodes hear
// the leaves at once rather than when the entries expire.
func (h *Hub) StopPresence(ctx context.Context) {
	if h.presence != nil {
		h.stopPollMembers()
		h.presence.stop(ctx)
	}
}

// announce fans a join or leave out to the channel's local sessions that
// hear presence.
func (h *Hub) announce(_ context.Context, c PresenceChange) {
	subs, name, _ := h.shard(c.Channel).subscribers(c.Channel)
	if len(subs) == 0 {
		return
	}
	c.Channel = name
	h.fanout(subs, NewPresenceFrame(c))
}
