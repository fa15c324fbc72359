package edge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
)

// A long-poll subscriber is not connected between its polls, so it cannot
// be a member for as long as a connection lasts, and a member per poll
// would join and leave at every answer. Instead the client keeps a member
// token (NewMemberToken; the transport gives it in an answer) and sends it
// with every later poll, and the node serving a poll of the token keeps
// the member from the poll's start until PollMember's grace has passed
// after its answer without another poll: a next poll within the grace
// (on this node) keeps it on, with no event. Polls need no sticky
// sessions: the member's conn is derived from the token (PollConn), so
// every node names it alike, and a node serving a poll claims the entry
// (a join that replaces it, unannounced, with Node = itself), so that the
// node the member left, whose leave checks the owner (Presence.Leave),
// removes nothing once its grace ends.

// MemberTokenLen is the length of a member token: 32 lowercase hex
// digits, 128 random bits.
const MemberTokenLen = 32

// NewMemberToken returns a fresh random member token.
func NewMemberToken() string {
	var b [MemberTokenLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidMemberToken reports whether token is MemberTokenLen lowercase hex
// digits.
func ValidMemberToken(token string) bool {
	if len(token) != MemberTokenLen {
		return false
	}
	for i := range len(token) {
		if c := token[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PollConn returns the public connection id of the long-poll member with
// token, for a client whose token names the subject sub: "poll-" and 20
// hex digits of a SHA-256 of both. Every node derives the same; GET
// /v1/presence lists it, and it gives away neither the token (so no one
// who reads the list can poll as the member, or have it leave), nor does
// another subject's poll with a stolen token become the same member.
func PollConn(token, sub string) string {
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write([]byte(sub))
	return "poll-" + hex.EncodeToString(h.Sum(nil))[:20]
}

// pollMembers are this node's long-poll members, at most
// Config.MaxPollMembers of them.
type pollMembers struct {
	mu sync.Mutex
	// mu guards m and stopped. Lock order: mu, then a presence queue's.
	m       map[string]*pollMember // by conn
	stopped bool                   // StopPresence began: no member is kept any more
}

// pollMember is one long-poll member on this node.
type pollMember struct {
	member   Member
	channels []string    // the channels it joined here
	polls    int         // polls in flight
	timer    *time.Timer // ends the grace once no poll is in flight
	gen      uint64      // counts graces; a timer of an earlier one does nothing
}

// PollMember makes the long-poll subscriber m (m.Conn from PollConn; Node
// is set to this node's) a member of those of channels that keep
// presence, from now until grace has passed after the returned function
// is called (when the poll is answered) without another PollMember of
// m.Conn on this node. Channels it was a member of here and that channels
// lacks, it leaves at once. Each call joins again (Join replaces the entry
// silently), as the member may have polled another node since.
//
// It reports false, and joins nothing, when no channel keeps presence, or
// when this node keeps Config.MaxPollMembers long-poll members already (a
// refused join, counted in PresenceFailures). The function it returns must
// be called once; it is safe for concurrent use.
func (h *Hub) PollMember(m Member, channels []string, grace time.Duration) (done func(), ok bool) {
	noop := func() {}
	if h.presence == nil {
		return noop, false
	}
	var keep []string
	for _, ch := range channels {
		if h.cfg.Presence(ch) {
			keep = append(keep, ch)
		}
	}
	if len(keep) == 0 {
		return noop, false
	}
	m.Node = h.node
	pm := &h.polls
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.stopped {
		return noop, false
	}
	e := pm.m[m.Conn]
	if e == nil {
		if len(pm.m) >= h.cfg.MaxPollMembers {
			h.presence.fail("long-poll member refused: this node keeps the most it may (MaxPollMembers)", fmt.Errorf("%d members", len(pm.m)))
			return noop, false
		}
		if pm.m == nil {
			pm.m = make(map[string]*pollMember)
		}
		e = &pollMember{}
		pm.m[m.Conn] = e
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
	e.polls++
	for _, ch := range e.channels {
		if !slices.Contains(keep, ch) {
			h.presence.leave(ch, m.Conn)
		}
	}
	for _, ch := range keep {
		h.presence.join(ch, m, true)
	}
	e.member, e.channels = m, keep
	var once sync.Once
	return func() { once.Do(func() { h.pollAnswered(m.Conn, e, grace) }) }, true
}

// pollAnswered ends a poll of e: when none is left in flight, the grace
// begins.
func (h *Hub) pollAnswered(conn string, e *pollMember, grace time.Duration) {
	pm := &h.polls
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if e.polls--; e.polls > 0 || pm.m[conn] != e {
		return
	}
	e.gen++
	gen := e.gen
	e.timer = time.AfterFunc(grace, func() { h.pollGraceOver(conn, e, gen) })
}

// pollGraceOver leaves e's channels, unless a poll came since.
func (h *Hub) pollGraceOver(conn string, e *pollMember, gen uint64) {
	pm := &h.polls
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if e.gen != gen || e.polls > 0 || pm.m[conn] != e {
		return
	}
	h.leavePollLocked(conn, e)
}

// leavePollLocked leaves e's channels and forgets it. The caller holds
// polls.mu.
func (h *Hub) leavePollLocked(conn string, e *pollMember) {
	for _, ch := range e.channels {
		h.presence.leave(ch, conn)
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	delete(h.polls.m, conn)
}

// PollMembers returns how many long-poll members this node keeps.
func (h *Hub) PollMembers() int {
	h.polls.mu.Lock()
	defer h.polls.mu.Unlock()
	return len(h.polls.m)
}

// stopPollMembers leaves every long-poll member at once (the node stops;
// a member that polls another node is claimed there) and keeps none
// from now on.
func (h *Hub) stopPollMembers() {
	pm := &h.polls
	pm.mu.Lock()
	defer pm.mu.Unlock()
	pm.stopped = true
	for conn, e := range pm.m {
		h.leavePollLocked(conn, e)
	}
}
