package edge

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// catchUpPage is how many history messages Join reads at a time.
const catchUpPage = 500

// maxCatchUpRounds bounds how often Join re-reads history because live
// traffic overflowed its buffer; a client that cannot catch up after that
// is a slow consumer.
const maxCatchUpRounds = 50

// Session is one client connection's subscriptions and its bounded queue of
// outgoing frames. The hub pushes frames; the connection's writer takes
// them. A session that gets more than Config.QueueBytes behind is closed
// with DisconnectSlow: it never slows the hub or other sessions.
//
// A channel is first joined in buffering mode: live frames wait in a
// per-channel buffer (bounded the same way) while the caller reads history,
// then the buffer is merged at the exact seam (by id, without gap or
// duplicate) and the channel goes live.
//
// Methods are safe for concurrent use. The creator must call Release.
type Session struct {
	hub      *Hub
	maxBytes int
	notify   chan struct{} // has a value when frames were queued or the session closed

	mu sync.Mutex
	// mu guards the fields below.
	wake     Waker // woken on every signal; see SetWake
	queue    []*Frame
	queued   int                        // bytes in queue
	held     int                        // bytes held back in conflation windows; they count against maxBytes too
	subs     []subscription             // few per connection: a slice beats a map in time and memory
	closed   atomic.Pointer[Disconnect] // set once, holding mu; read without it
	released bool
	kind     uint8 // groups the session in Hub.Stats
	first    bool  // closed at once when Shutdown begins

	hear     bool          // later subscriptions hear joins and leaves (HearPresence)
	delta    bool          // later subscriptions get deltas (SetDelta)
	conflate time.Duration // later subscriptions conflate with this window (SetConflate); 0: they do not
	member   *Member       // its identity in presence once SetMember gave it; Conn is given at its first join
}

// SetMember makes the session a member of the presence channels it
// subscribes from now on (Config.Presence), as the subject sub of its
// token (empty: none) with the info its client gave (validated with
// ValidatePresenceInfo). A session that never calls it is no member but
// may still hear joins and leaves (a long-poll, which is not connected
// between its requests: Hub.PollMember keeps its client a member from
// poll to poll). Its connection id, unique in the fleet, is the
// node's name, "-" and a number.
func (s *Session) SetMember(sub, info string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil {
		s.member = &Member{Node: s.hub.node}
	}
	s.member.Sub, s.member.Info = sub, info
}

// HearPresence sets whether the channels the session subscribes from now
// on hear joins and leaves, when they keep presence: presence frames
// (Frame.IsPresence) are then queued like messages, live or not, and a
// writer must give them no id and move no cursor for them.
func (s *Session) HearPresence(on bool) {
	s.mu.Lock()
	s.hear = on
	s.mu.Unlock()
}

// SetDelta sets whether the channels the session subscribes from now on
// get deltas (delta=fossil): a live message whose client holds the
// previous message of its key is queued as a patch against it (see
// Frame.Delta); every other message, catch-up history's included, in
// full. Its client must apply them. The session knows only what it sent
// (after a resume, the history it sent, then live messages of keys with a
// message in that history as patches, the first of other keys in full)
// unless TrustDelta says what its client holds. A conflating
// subscription gets whole messages.
func (s *Session) SetDelta(on bool) {
	s.mu.Lock()
	s.delta = on
	s.mu.Unlock()
}

// TrustDelta tells a delta subscription of channel that its client holds
// every message of the channel up to upTo, the newest of each key
// included: a message whose base is at or before it may be sent as a
// patch. A long-poll, whose every request is a new session, trusts its
// since= this way; a client that does not hold a base recovers by asking
// again without deltas.
func (s *Session) TrustDelta(channel string, upTo ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(channel); i >= 0 {
		s.subs[i].trust = upTo
	}
}

// Out returns what a delta subscription sends for a message frame of its
// channel that the caller itself takes to its client, from history or
// from Buffered (a long-poll), in the order it sends them: the patch when
// the client holds its base (see SetDelta), else f. Of history's
// messages, only the frames the hub still has (Hub.Frame) carry a base.
func (s *Session) Out(f *Frame) *Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(f.Channel); i >= 0 {
		return s.subs[i].out(f)
	}
	return f
}

// SetConflate sets the conflation window of the channels the session
// subscribes from now on: 0 for none (the default), else from MinConflate
// to MaxConflate (see ParseConflate). A conflating subscription gets, per
// window, only the newest live message of each conflation key
// (Message.Key; messages without one share the channel's key): the first
// message after a quiet window is queued at once and opens a window; the
// messages arriving within it are held, each replacing the held one of
// its key, and queued together, in id order, when the window ends, which
// opens the next window if any were held. Ids stay the stored ids, so a
// resume from any delivered position is exact: what was skipped is in
// history. Presence frames are never conflated. A window holds at most
// MaxConflateKeys keys (one more ends it at once), and held messages count
// against Config.QueueBytes like queued ones. Catch-up pages are conflated
// by the transport (ConflatePage, when Joining.Conflate says so).
//
// A conflating subscription gets whole messages: a delta encoding, where
// a transport offers one, must not apply to it (see Conflating).
func (s *Session) SetConflate(d time.Duration) {
	s.mu.Lock()
	s.conflate = d
	s.mu.Unlock()
}

// Conflating returns the conflation window of the session's subscription
// to channel: 0 when it does not conflate (or is not subscribed).
func (s *Session) Conflating(channel string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(channel); i >= 0 && s.subs[i].cf != nil {
		return s.subs[i].cf.every
	}
	return 0
}

// Conn returns the session's connection id in presence: empty until it
// first joined a channel as a member.
func (s *Session) Conn() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil {
		return ""
	}
	return s.member.Conn
}

// Queued returns how many frames wait in the session's queue.
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// joinPresenceLocked makes the session a member of the subscription's
// channel, if it is one that keeps presence. The caller holds mu.
func (s *Session) joinPresenceLocked(sub *subscription) {
	if !sub.presence || s.member == nil || s.closed.Load() != nil {
		return
	}
	if s.member.Conn == "" {
		s.member.Conn = s.hub.node + "-" + strconv.FormatUint(s.hub.conns.Add(1), 10)
	}
	sub.member = true
	s.hub.presence.join(sub.channel, *s.member, false)
}

// leavePresenceLocked undoes joinPresenceLocked. The caller holds mu.
func (s *Session) leavePresenceLocked(sub *subscription) {
	if sub.member {
		sub.member = false
		s.hub.presence.leave(sub.channel, s.member.Conn)
	}
}

// SetKind sets the group Hub.Stats counts the session in (the transport,
// for the server); kinds start at 0.
func (s *Session) SetKind(kind uint8) {
	s.mu.Lock()
	s.kind = kind
	s.mu.Unlock()
}

// CloseFirst marks the session to be closed as soon as the hub's Shutdown
// begins, before the sessions it spreads over its window: for a request
// that answers and ends (a long-poll), whose client waits its own
// jittered retry hint anyway.
func (s *Session) CloseFirst() {
	s.mu.Lock()
	s.first = true
	s.mu.Unlock()
}

// subscription is one subscribed channel of a session.
type subscription struct {
	channel string
	join    *joinBuffer // live frames kept aside while the channel catches up; nil once live
	// last is the id of the newest frame queued once live (at first the
	// position GoLive was given). A relay may hand over a message that
	// catch-up already read from history after the channel went live
	// (Redis relays on another connection than the one history is read
	// on): push drops frames at or below it.
	last ID

	presence bool // the channel keeps presence
	hear     bool // its joins and leaves are queued
	member   bool // the session is a member of it, until leavePresenceLocked

	delta bool         // its client applies deltas (SetDelta); see out
	bases []clientBase // per key, the last message queued, which the client holds
	trust ID           // the client holds every message up to it (TrustDelta); zero: none

	cf *conflater // its conflation window once live; nil: it does not conflate
}

// find returns the index of channel in s.subs, or -1. The caller holds mu.
func (s *Session) find(channel string) int {
	for i := range s.subs {
		if s.subs[i].channel == channel {
			return i
		}
	}
	return -1
}

// joinBuffer holds a channel's live frames while it catches up.
type joinBuffer struct {
	frames     []*Frame
	bytes      int
	overflowed bool // frames were dropped; read history again
}

// Notify returns a channel that has a value when frames were queued,
// buffered or the session closed, unless SetWake set a Waker. One
// value may stand for many events.
func (s *Session) Notify() <-chan struct{} { return s.notify }

// Closed returns why the session closed, or false while it is open.
func (s *Session) Closed() (Disconnect, bool) {
	if d := s.closed.Load(); d != nil {
		return *d, true
	}
	return Disconnect{}, false
}

// Close closes the session with d; the first reason wins. Queued frames are
// dropped and the writer should end the connection, telling the client d.
func (s *Session) Close(d Disconnect) {
	s.mu.Lock()
	s.closeLocked(d)
	s.mu.Unlock()
}

func (s *Session) closeLocked(d Disconnect) {
	if s.closed.Load() != nil {
		return
	}
	s.closed.Store(&d)
	if d == DisconnectSlow {
		s.hub.slow.Add(1)
	}
	s.queue, s.queued = nil, 0
	for i := range s.subs {
		if s.subs[i].join != nil {
			s.subs[i].join = &joinBuffer{}
		}
		s.stopConflateLocked(s.subs[i].cf)
	}
	s.signal()
}

func (s *Session) signal() {
	if s.wake != nil {
		s.wake.Wake()
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Waker is what a session wakes, instead of giving Notify a value, when it
// has something for its connection (see SetWake).
type Waker interface {
	// Wake must return at once and must not call the session: it may
	// run with the session's lock held.
	Wake()
}

// SetWake makes the session wake w instead of giving Notify a value, so
// that a connection needs no goroutine waiting on Notify while it is idle.
// The hub wakes the sessions a live message reached together, after
// queueing it on each (see Hub.SetWakeAll). Nil goes back to Notify.
func (s *Session) SetWake(wake Waker) {
	s.mu.Lock()
	s.wake = wake
	s.mu.Unlock()
}

// Release unsubscribes every channel and forgets the session. It is safe
// to call more than once.
func (s *Session) Release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	subs := s.subs
	s.subs = nil
	for i := range subs {
		s.leavePresenceLocked(&subs[i])
		s.stopConflateLocked(subs[i].cf)
	}
	s.closeLocked(DisconnectShutdown)
	s.mu.Unlock()
	for _, sub := range subs {
		s.hub.remove(sub.channel, s, sub.delta)
	}
	s.hub.release(s)
}

// push is called by the hub for every live frame of a subscribed channel.
// It returns the session's Waker when there is one to wake for f (the hub
// wakes it after the lock); without one it signals Notify itself.
func (s *Session) push(f *Frame) Waker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() != nil {
		return nil
	}
	i := s.find(f.Channel)
	if i < 0 {
		return nil
	}
	switch jb := s.subs[i].join; {
	case f.Member != nil:
		// Presence is not history: it is queued as it comes, live or
		// not, and never deduplicated by id.
		if !s.subs[i].hear || !s.enqueueLocked(f) {
			return nil
		}
	case jb != nil:
		if jb.overflowed {
			return nil
		}
		if jb.bytes+f.Size() > s.maxBytes {
			jb.frames, jb.bytes, jb.overflowed = nil, 0, true
			return nil
		}
		jb.frames = append(jb.frames, f)
		jb.bytes += f.Size()
	default:
		if !s.subs[i].last.Less(f.ID) || !s.liveLocked(&s.subs[i], f) {
			return nil
		}
	}
	if s.wake != nil {
		return s.wake
	}
	s.signal()
	return nil
}

// liveLocked takes f, a live message of sub newer than its last: it
// queues it or, when sub conflates, may hold it in its window. It reports
// whether frames were queued (false too when the session closed over its
// budget). The caller holds mu.
func (s *Session) liveLocked(sub *subscription, f *Frame) bool {
	sub.last = f.ID
	if sub.cf != nil {
		return s.conflateLocked(sub.cf, f)
	}
	return s.enqueueLocked(sub.out(f))
}

// enqueueLocked queues f or, over budget, closes the session as a slow
// consumer. It reports whether f was queued.
func (s *Session) enqueueLocked(f *Frame) bool {
	if s.queued+s.held+f.Size() > s.maxBytes {
		s.closeLocked(DisconnectSlow)
		return false
	}
	s.queue = append(s.queue, f)
	s.queued += f.Size()
	return true
}

// Take moves every queued frame out of the session, appending them to buf
// (pass the previous result's buf[:0] to reuse it).
func (s *Session) Take(buf []*Frame) []*Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf, s.queue...)
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
	return buf
}

// Subscribe adds channel to the session in buffering mode: its live frames
// are kept aside until GoLive. It returns once the broker relays the
// channel, and fails when the channel is already subscribed, the session
// has Config.MaxChannels channels, or the broker cannot relay it.
func (s *Session) Subscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	if s.closed.Load() != nil {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if s.find(channel) >= 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: already subscribed to %q", ErrBadRequest, channel)
	}
	if len(s.subs) >= s.hub.cfg.MaxChannels {
		s.mu.Unlock()
		return fmt.Errorf("%w: a connection may subscribe to at most %d channels", ErrTooManyChannels, s.hub.cfg.MaxChannels)
	}
	keeps := s.hub.KeepsPresence(channel)
	delta := s.delta && s.conflate == 0 // a conflating subscription gets whole messages
	sub := subscription{channel: channel, join: &joinBuffer{}, presence: keeps, hear: keeps && s.hear, delta: delta}
	if s.conflate > 0 {
		sub.cf = &conflater{every: s.conflate}
	}
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	name, err := s.hub.add(ctx, channel, s, delta)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.dropLocked(channel)
		return err
	}
	if i := s.find(channel); i >= 0 {
		s.subs[i].channel = name
		s.joinPresenceLocked(&s.subs[i])
	}
	return nil
}

// Unsubscribe removes channel from the session and drops its queued frames.
func (s *Session) Unsubscribe(channel string) error {
	s.mu.Lock()
	i := s.find(channel)
	if i < 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: not subscribed to %q", ErrBadRequest, channel)
	}
	delta := s.subs[i].delta
	s.dropLocked(channel)
	kept := s.queue[:0]
	s.queued = 0
	for _, f := range s.queue {
		if f.Channel != channel {
			kept = append(kept, f)
			s.queued += f.Size()
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.mu.Unlock()
	s.hub.remove(channel, s, delta)
	return nil
}

// dropLocked removes channel from s.subs and reports whether it was
// there. The caller holds mu.
func (s *Session) dropLocked(channel string) bool {
	i := s.find(channel)
	if i < 0 {
		return false
	}
	s.leavePresenceLocked(&s.subs[i])
	s.stopConflateLocked(s.subs[i].cf)
	s.subs = slices.Delete(s.subs, i, i+1)
	return true
}

// Buffered returns the frames of a buffering channel with ids after pos and
// whether frames were dropped for lack of room (then history has them).
func (s *Session) Buffered(channel string, after ID) (frames []*Frame, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(channel)
	if i < 0 || s.subs[i].join == nil {
		return nil, false
	}
	jb := s.subs[i].join
	for _, f := range jb.frames {
		if after.Less(f.ID) {
			frames = append(frames, f)
		}
	}
	return frames, jb.overflowed
}

// GoLive ends buffering of channel: the buffered frames with ids after pos
// are queued, and later frames go straight to the queue. When the buffer
// overflowed it is emptied instead, the channel keeps buffering, and GoLive
// returns false: the caller reads history after pos again and retries.
func (s *Session) GoLive(channel string, pos ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(channel)
	if i < 0 || s.subs[i].join == nil {
		return true
	}
	jb := s.subs[i].join
	if jb.overflowed {
		s.subs[i].join = &joinBuffer{}
		return false
	}
	s.subs[i].join = nil
	s.subs[i].last = pos
	for _, f := range jb.frames {
		if !pos.Less(f.ID) {
			continue
		}
		if !s.liveLocked(&s.subs[i], f) && s.closed.Load() != nil {
			break
		}
	}
	s.signal()
	return true
}

// Join subscribes the session to channel and brings it up to date: Start
// then Finish, for a caller that has nothing to do between the two.
func (s *Session) Join(ctx context.Context, channel string, since *ID, emit func(Page) error) (ID, error) {
	j, err := s.Start(ctx, channel, since)
	if err != nil {
		return ID{}, err
	}
	return s.Finish(ctx, j, emit)
}

// Joining is a channel that Start subscribed and whose starting position
// is fixed; Finish completes the join.
type Joining struct {
	channel  string
	pos      ID
	resume   bool          // pos is the client's cursor, not yet checked against history
	conflate time.Duration // the subscription's conflation window; 0: none
}

// Channel returns the channel being joined.
func (j Joining) Channel() string { return j.channel }

// Conflate returns the subscription's conflation window (SetConflate), 0
// when it does not conflate: a transport then passes each catch-up page
// through ConflatePage before writing it.
func (j Joining) Conflate() time.Duration { return j.conflate }

// Position returns where the channel starts: the client's cursor, or the
// channel's position when Start was called without one. Finish may move
// it (a cursor ahead of the channel continues from the channel's
// position).
func (j Joining) Position() ID { return j.pos }

// Start subscribes the session to channel in buffering mode and fixes
// where the subscriber starts: after the cursor since, or without one at
// the channel's current position. Every message published once Start
// returns is delivered by Finish, however long the caller takes in
// between — so a transport calls Start before the client can observe the
// subscription (a WebSocket's 101, SSE response headers), and Finish after.
// On error the channel is not subscribed.
func (s *Session) Start(ctx context.Context, channel string, since *ID) (Joining, error) {
	if err := s.Subscribe(ctx, channel); err != nil {
		return Joining{}, err
	}
	conflate := s.Conflating(channel)
	if since != nil {
		return Joining{channel: channel, pos: *since, resume: true, conflate: conflate}, nil
	}
	last, err := s.hub.broker.Last(ctx, channel)
	if err != nil {
		s.Unsubscribe(channel)
		return Joining{}, err
	}
	return Joining{channel: channel, pos: last, conflate: conflate}, nil
}

// Finish brings a started channel up to date. With a cursor it passes
// every retained message after it to emit, in pages, oldest first (a page
// with Gap set first when some are no longer retained, or when the cursor
// is ahead of the channel: then the channel continues from its current
// position). When Finish returns, the channel is live: its next message
// is queued right after the returned position, with no gap and no
// duplicate. emit runs on the caller's goroutine, typically the
// connection's writer. On error the channel is unsubscribed.
func (s *Session) Finish(ctx context.Context, j Joining, emit func(Page) error) (ID, error) {
	pos, err := s.catchUp(ctx, j, emit)
	if _, closed := s.Closed(); closed && err == nil {
		err = ErrSessionClosed
	}
	if err != nil {
		s.Unsubscribe(j.channel)
		return ID{}, err
	}
	return pos, nil
}

func (s *Session) catchUp(ctx context.Context, j Joining, emit func(Page) error) (ID, error) {
	channel, pos := j.channel, j.pos
	if !j.resume && s.GoLive(channel, pos) {
		return pos, nil
	}
	for round := 0; round < maxCatchUpRounds; {
		page, err := s.hub.broker.History(ctx, channel, pos, catchUpPage)
		if err != nil {
			return ID{}, err
		}
		if page.Ahead {
			pos = page.Last
		}
		if len(page.Messages) > 0 || page.Gap {
			if err := emit(page); err != nil {
				return ID{}, err
			}
			s.caughtUp(channel, page.Messages)
		}
		if n := len(page.Messages); n > 0 {
			pos = page.Messages[n-1].ID
		}
		if len(page.Messages) == catchUpPage {
			continue
		}
		if s.GoLive(channel, pos) {
			return pos, nil
		}
		round++
	}
	s.Close(DisconnectSlow)
	return ID{}, ErrSessionClosed
}
