package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// presenceCallTimeout bounds one Join or Leave of the store.
const presenceCallTimeout = 5 * time.Second

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
	member Member // when join
}

// presenceOps applies this node's joins and leaves to the store, in the
// order they happened for each member, on a goroutine of its own that
// runs while there is work: store calls are network I/O (Redis), which
// must neither block fan-out nor hold a hub or session lock. A join and
// leave of one member that meet in the queue cancel out, so a connection
// that comes and goes before the store heard of it costs no call.
//
// Lock order: a Session's mu, then mu (sessions queue their joins and
// leaves holding theirs, so that they reach the queue in order). The
// worker holds mu only between store calls.
type presenceOps struct {
	store  Presence
	log    *slog.Logger
	ctx    context.Context // the store calls'; cancelled by stop
	cancel context.CancelFunc
	failed atomic.Int64 // joins and leaves that failed or were dropped
	logged atomic.Int64 // unix nanoseconds before which no failure is logged

	mu sync.Mutex
	// mu guards the fields below.
	want    map[memberKey]presenceWant // what each key of queue should become
	queue   []memberKey                // keys of want, oldest first
	joined  map[memberKey]struct{}     // members whose Join was sent and whose Leave was not
	done    chan struct{}              // closed when the running worker ends; nil: none runs
	stopped bool                       // stop began: nothing more is queued
}

func newPresenceOps(store Presence, log *slog.Logger) *presenceOps {
	ctx, cancel := context.WithCancel(context.Background())
	return &presenceOps{
		store: store, log: log, ctx: ctx, cancel: cancel,
		want:   make(map[memberKey]presenceWant),
		joined: make(map[memberKey]struct{}),
	}
}

// join queues the join of m to channel. The caller holds the
// session's mu.
func (p *presenceOps) join(channel string, m Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := memberKey{channel, m.Conn}
	if _, queued := p.want[k]; !queued && len(p.want) >= maxPendingPresence {
		p.fail("presence join dropped: too many joins and leaves wait for the store", fmt.Errorf("%d waiting", len(p.want)))
		return
	}
	p.queueLocked(k, presenceWant{join: true, member: m})
}

// leave queues the leave of conn from channel. The caller holds the
// session's mu.
func (p *presenceOps) leave(channel, conn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queueLocked(memberKey{channel, conn}, presenceWant{})
}

func (p *presenceOps) queueLocked(k memberKey, w presenceWant) {
	if p.stopped {
		return
	}
	if _, queued := p.want[k]; !queued {
		p.queue = append(p.queue, k)
	}
	p.want[k] = w
	if p.done == nil {
		p.done = make(chan struct{})
		go p.run(p.done)
	}
}

// run applies the queue until it is empty, then ends, closing done.
func (p *presenceOps) run(done chan struct{}) {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || p.stopped {
			p.done = nil
			p.mu.Unlock()
			close(done)
			return
		}
		k := p.queue[0]
		p.queue[0] = memberKey{}
		p.queue = p.queue[1:]
		w := p.want[k]
		delete(p.want, k)
		_, was := p.joined[k]
		switch {
		case w.join && !was:
			p.joined[k] = struct{}{}
		case !w.join && was:
			delete(p.joined, k)
		default: // a join and a leave cancelled out
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, presenceCallTimeout)
		var err error
		if w.join {
			err = p.store.Join(ctx, k.channel, w.member)
		} else {
			err = p.store.Leave(ctx, k.channel, k.conn)
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

// stop waits until the queue is applied or ctx is done, then cancels the
// store call in flight, drops what is left and waits for the worker.
// Nothing is queued afterwards.
func (p *presenceOps) stop(ctx context.Context) {
	for {
		p.mu.Lock()
		done := p.done
		if done == nil || ctx.Err() != nil {
			p.stopped = true
			p.mu.Unlock()
			break
		}
		p.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	p.cancel()
	p.mu.Lock()
	done := p.done
	clear(p.want)
	p.queue = nil
	p.mu.Unlock()
	if done != nil {
		<-done
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

// StopPresence waits until the joins and leaves of this node reached the
// store, or ctx is done, then stops sending them: call it once sessions
// are released on shutdown, before the broker stops, so other nodes hear
// the leaves at once rather than when the entries expire.
func (h *Hub) StopPresence(ctx context.Context) {
	if h.presence != nil {
		h.presence.stop(ctx)
	}
}

// announce fans a join or leave out to the channel's local sessions that
// hear presence.
func (h *Hub) announce(_ context.Context, c PresenceChange) {
	subs, name := h.shard(c.Channel).subscribers(c.Channel)
	if len(subs) == 0 {
		return
	}
	c.Channel = name
	h.fanout(subs, NewPresenceFrame(c))
}
