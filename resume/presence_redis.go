package resume

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

var _ edge.Presence = (*Redis)(nil)

// Presence on Redis, fleet-wide.
//
// A channel's members are two keys in its slot: edge:{CHANNEL}:members, a
// sorted set of connection ids scored by when each expires (ms, Redis's
// clock), and edge:{CHANNEL}:member-info, a hash of connection id to the
// member's JSON. Both expire twice PresenceTTL after their last write, so
// that a channel nobody is in leaves nothing behind, but only once its
// expired members were swept and their leaves announced. The edge's Redis
// Function writes them (edge_presence_join, _leave, _members and _refresh
// in edge.lua) and announces each join and leave on the channel's own
// shard channel, edge:{CHANNEL}:presence, as "1 join MEMBER" or "1 leave
// MEMBER" (the format's version, the event, the member's JSON; a later
// version is ignored). Announcements never go to edge:{CHANNEL}:live: a
// node of an earlier release reads every payload there as a message.
//
// A node's leave names the node (edge_presence_leave's NODE): a long-poll
// member that polled another node since, whose join replaced the entry
// with that node's, is not removed by the node it left.
//
// Each node remembers the members it joined and, every PresenceTTL/3,
// refreshes them (one FCALL per channel, pipelined), which also sweeps the
// channel: members whose node stopped refreshing them (it died) are removed
// and their leaves announced, within PresenceTTL and one sweep. A node
// also sweeps the presence channels it watches without members of its own.
// A refresh adds again, without announcing them, members Redis lost (a
// restart without persistence, a failover to a replica that lagged), so
// that the listing recovers within PresenceTTL/3.
//
// The relay connection subscribes the announcements of the watched
// channels that RedisConfig.Presence names, beside their messages, and
// hands them to OnPresence's function. They are best effort: one sent
// while the relay reconnects is missed, a member that Redis lost and a
// refresh added again is not announced, and one that a node refreshes too
// late (after a sweep announced its leave) is back without a join. The
// listing (Members, GET /v1/presence) is the truth.

// Presence's bounds, repeated in edge.lua (TestFunctionFacts pins them).
const (
	maxConnLen        = 128   // bytes of a connection id
	maxMemberLen      = 2048  // bytes of a member's JSON
	maxMembersLimit   = 10000 // members one listing returns, at most
	maxRefreshEntries = 1000  // members one refresh call takes, at most
	refreshChunk      = 256   // members a node sends per refresh call
	minPresenceTTL    = time.Second
	maxPresenceTTL    = 24 * time.Hour
	// maxRefreshCalls bounds one pipeline of refreshes.
	maxRefreshCalls = 256
)

// presenceFormat is the version of the announcements' format.
const presenceFormat = "1"

// redisPresence is what a Redis store keeps of presence on its node. It is
// safe for concurrent use.
type redisPresence struct {
	announce atomic.Pointer[func(context.Context, edge.PresenceChange)]

	mu sync.Mutex
	// mu guards joined, leaving and others. No other lock is taken while it is
	// held (nor is it taken under one), and it is held for no I/O.
	joined  map[string]map[string]string // channel → conn → the member's JSON, of this node's members
	leaving map[presenceEntry]int        // members whose Leave is on its way to Redis, with how many
	// others are members whose Leave with a node found another node's
	// entry (a long-poll member that moved), since the refresh calls were
	// built: forgetLeft must not remove them.
	others map[presenceEntry]struct{}
}

// presenceEntry names one member of one channel.
type presenceEntry struct{ channel, conn string }

// OnPresence sets the function that receives the joins and leaves of the
// watched channels that RedisConfig.Presence names, from every node.
func (r *Redis) OnPresence(announce func(context.Context, edge.PresenceChange)) {
	r.presence.announce.Store(&announce)
}

// Join records m as a member of channel, announced to every node that
// watches the channel unless it was a member already, and keeps it alive
// while the node runs. An m that the function would refuse (a conn that is
// not 1-128 bytes of visible ASCII, info that edge.ValidatePresenceInfo
// refuses, a member whose JSON is over 2 KiB) is an error wrapping
// edge.ErrBadRequest. When Join fails the node does not keep the member; if
// Redis recorded it all the same, it lapses within PresenceTTL.
func (r *Redis) Join(ctx context.Context, channel string, m edge.Member) error {
	if err := checkConn(m.Conn); err != nil {
		return err
	}
	if err := edge.ValidatePresenceInfo(m.Info); err != nil {
		return err
	}
	member, err := memberJSON(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	cmd := r.fcall(ctx, presenceJoinFunction, channel, r.cfg.PresenceTTL.Milliseconds(), m.Conn, member)
	if err := cmd.Err(); err != nil {
		return r.presenceFailed("presence join", err)
	}
	p := &r.presence
	p.mu.Lock()
	if p.joined == nil {
		p.joined = make(map[string]map[string]string)
	}
	members := p.joined[channel]
	if members == nil {
		members = make(map[string]string)
		p.joined[channel] = members
	}
	members[m.Conn] = member
	p.mu.Unlock()
	return nil
}

// Leave removes the member conn of channel, announced to every node that
// watches the channel if it was there and node (unless empty) is the
// node of its entry, and stops keeping it alive on this node.
func (r *Redis) Leave(ctx context.Context, channel, conn, node string) error {
	if checkConn(conn) != nil {
		return nil // never a member
	}
	// The member is forgotten before Redis is told, and is leaving until
	// Redis answered: a refresh that was on its way meanwhile, and added
	// it again, removes it once it sees that (see refreshPresence).
	p := &r.presence
	e := presenceEntry{channel, conn}
	p.mu.Lock()
	if members := p.joined[channel]; members != nil {
		delete(members, conn)
		if len(members) == 0 {
			delete(p.joined, channel)
		}
	}
	if p.leaving == nil {
		p.leaving = make(map[presenceEntry]int)
	}
	p.leaving[e]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.leaving[e]--; p.leaving[e] == 0 {
			delete(p.leaving, e)
		}
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	args := []any{conn}
	if node != "" {
		args = append(args, node)
	}
	removed, err := r.fcall(ctx, presenceLeaveFunction, channel, args...).Int64()
	if err != nil {
		// Not refreshed any more, the member lapses within PresenceTTL.
		return r.presenceFailed("presence leave", err)
	}
	if removed == 0 && node != "" {
		p.mu.Lock()
		if p.others == nil {
			p.others = make(map[presenceEntry]struct{})
		}
		p.others[e] = struct{}{}
		p.mu.Unlock()
	}
	return nil
}

// Members returns up to limit members of channel (at most 10,000) and how
// many it has, fleet-wide, among those whose node refreshed them within
// PresenceTTL.
func (r *Redis) Members(ctx context.Context, channel string, limit int) ([]edge.Member, int, error) {
	limit = min(max(limit, 0), maxMembersLimit)
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	reply, err := r.fcall(ctx, presenceMembersFunction, channel, limit).Slice()
	if err != nil {
		return nil, 0, r.presenceFailed("presence members", err)
	}
	count, ok := int64(0), len(reply) > 0
	if ok {
		count, ok = reply[0].(int64)
	}
	if !ok {
		return nil, 0, unavailable("presence members", fmt.Errorf("the members function answered %v, not {count, member...}", reply))
	}
	members := make([]edge.Member, 0, len(reply)-1)
	for _, v := range reply[1:] {
		text, _ := v.(string)
		var m edge.Member
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			return nil, 0, unavailable("presence members", fmt.Errorf("member %q: %w", text, err))
		}
		members = append(members, m)
	}
	return members, int(count), nil
}

// fcall calls a presence function on channel's keys, loading the library
// and calling again if Redis lacks the function or holds an older one (see
// stale).
func (r *Redis) fcall(ctx context.Context, function, channel string, args ...any) *redis.Cmd {
	keys := []string{streamKey(channel)}
	cmd := r.rdb.FCall(ctx, function, keys, args...)
	if !functionOutdated(cmd.Err()) {
		return cmd
	}
	if err := r.loadFunction(ctx); err != nil {
		cmd.SetErr(err)
		return cmd
	}
	return r.rdb.FCall(ctx, function, keys, args...)
}

// presenceFailed returns the error of a presence call that the function
// refused (a bad request: Join checks what it sends, so this is rare) or
// that Redis did not answer.
func (r *Redis) presenceFailed(op string, err error) error {
	if text := err.Error(); strings.HasPrefix(text, "ERR edge: ") {
		return fmt.Errorf("%w: %s", edge.ErrBadRequest, strings.TrimPrefix(text, "ERR "))
	}
	r.relearn()
	return unavailable(op, err)
}

// checkConn returns nil if conn is a connection id the function takes:
// 1-128 bytes of visible ASCII.
func checkConn(conn string) error {
	if len(conn) < 1 || len(conn) > maxConnLen {
		return fmt.Errorf("%w: a connection id is 1-%d bytes", edge.ErrBadRequest, maxConnLen)
	}
	for i := range len(conn) {
		if conn[i] < '!' || conn[i] > '~' {
			return fmt.Errorf("%w: a connection id is visible ASCII", edge.ErrBadRequest)
		}
	}
	return nil
}

// memberJSON returns m as the function keeps it, or an error wrapping
// edge.ErrBadRequest when it is over maxMemberLen.
func memberJSON(m edge.Member) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "<" stays one byte, not six
	if err := enc.Encode(m); err != nil {
		return "", fmt.Errorf("%w: member: %w", edge.ErrBadRequest, err)
	}
	text := strings.TrimSuffix(b.String(), "\n")
	if len(text) > maxMemberLen {
		return "", fmt.Errorf("%w: a presence member (its conn, sub, info and node as JSON) is at most %d bytes", edge.ErrBadRequest, maxMemberLen)
	}
	return text, nil
}

// heardPresence hands an announcement of channel to the OnPresence
// function. An announcement of a later format version is ignored, one
// that does not parse is logged and dropped.
func (r *Redis) heardPresence(ctx context.Context, channel, payload string) {
	c, ok, err := presenceChange(channel, payload)
	if err != nil {
		r.log.Warn("redis: malformed presence announcement dropped", "err", err)
		return
	}
	if !ok {
		return
	}
	if f := r.presence.announce.Load(); f != nil {
		(*f)(ctx, c)
	}
}

// presenceChange parses an announcement, "1 join MEMBER" or "1 leave
// MEMBER". It reports false, without an error, for a later version.
func presenceChange(channel, payload string) (edge.PresenceChange, bool, error) {
	version, rest, ok := strings.Cut(payload, " ")
	if ok && version != presenceFormat {
		return edge.PresenceChange{}, false, nil
	}
	event, member, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 || (event != edge.EventJoin && event != edge.EventLeave) {
		return edge.PresenceChange{}, false, fmt.Errorf("presence announcement of %q is not \"1 join|leave MEMBER\"", channel)
	}
	c := edge.PresenceChange{Channel: channel, Event: event}
	if err := json.Unmarshal([]byte(member), &c.Member); err != nil {
		return edge.PresenceChange{}, false, fmt.Errorf("presence announcement of %q: %w", channel, err)
	}
	if c.Member.Conn == "" {
		return edge.PresenceChange{}, false, fmt.Errorf("presence announcement of %q names no conn", channel)
	}
	return c, true, nil
}

// keepPresence refreshes this node's members, and sweeps the presence
// channels it watches, every PresenceTTL/3 until ctx is done.
func (r *Redis) keepPresence(ctx context.Context) {
	t := time.NewTicker(r.cfg.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.refreshPresence(ctx)
		}
	}
}

// refreshCall is one refresh FCALL: a channel and some of this node's
// members of it (none to sweep only).
type refreshCall struct {
	channel string
	conns   []string
	cmd     *redis.Cmd
}

// refreshPresence sends one refresh per channel (several for a channel
// with more than refreshChunk members of this node), pipelined, then
// removes the members that left while their refresh was on its way.
func (r *Redis) refreshPresence(ctx context.Context) {
	calls := r.refreshCalls(ctx)
	for len(calls) > 0 {
		n := min(len(calls), maxRefreshCalls)
		r.runRefreshes(ctx, calls[:n])
		calls = calls[n:]
	}
}

// refreshCalls returns the refreshes of this node's members and the
// sweeps of the presence channels it watches without members.
func (r *Redis) refreshCalls(ctx context.Context) []*refreshCall {
	var channels []string
	if r.cfg.Presence != nil {
		r.mu.Lock()
		for ch := range r.watches {
			if r.cfg.Presence(ch) {
				channels = append(channels, ch)
			}
		}
		r.mu.Unlock()
	}
	ttl := r.cfg.PresenceTTL.Milliseconds()
	var calls []*refreshCall
	add := func(channel string, conns []string, args []any) {
		c := &refreshCall{channel: channel, conns: conns}
		c.cmd = redis.NewCmd(ctx, append([]any{"fcall", presenceRefreshFunction, 1, streamKey(channel), ttl}, args...)...)
		c.cmd.SetFirstKeyPos(3)
		calls = append(calls, c)
	}
	p := &r.presence
	p.mu.Lock()
	clear(p.others) // of members left before these calls: none of them is in one
	for ch, members := range p.joined {
		var conns []string
		var args []any
		for conn, member := range members {
			if len(conns) == refreshChunk {
				add(ch, conns, args)
				conns, args = nil, nil
			}
			conns = append(conns, conn)
			args = append(args, conn, member)
		}
		add(ch, conns, args)
	}
	for _, ch := range channels {
		if p.joined[ch] == nil {
			add(ch, nil, nil) // a sweep
		}
	}
	p.mu.Unlock()
	return calls
}

// runRefreshes runs one pipeline of refreshes, loading the library and
// running them again if Redis lacks it (execBatches), then removes the
// members that left meanwhile.
func (r *Redis) runRefreshes(ctx context.Context, calls []*refreshCall) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	cmds := make([]redis.Cmder, len(calls))
	for i, c := range calls {
		cmds[i] = c.cmd
	}
	r.execBatches(ctx, cmds)
	added, failed := int64(0), 0
	var lastErr error
	for _, c := range calls {
		n, err := c.cmd.Int64()
		if err != nil {
			failed++
			lastErr = err
			continue
		}
		added += n
	}
	if failed > 0 {
		r.relearn()
		r.log.Warn("redis: refreshing presence failed; will retry (members lapse after the presence TTL)", "calls", failed, "err", lastErr)
	}
	if added > 0 {
		r.log.Info("redis: presence members that Redis had lost were added again", "members", added)
	}
	r.forgetLeft(ctx, calls)
}

// forgetLeft removes, quietly, the members of calls that left (their Leave
// was answered) since the calls were built: a refresh that Redis ran after
// the Leave added them again, and its leave was announced already. A
// member whose Leave found another node's entry is not one of them: that
// node keeps it.
func (r *Redis) forgetLeft(ctx context.Context, calls []*refreshCall) {
	gone := make(map[string][]string)
	p := &r.presence
	p.mu.Lock()
	for _, c := range calls {
		for _, conn := range c.conns {
			_, here := p.joined[c.channel][conn]
			e := presenceEntry{c.channel, conn}
			if _, other := p.others[e]; !here && !other && p.leaving[e] == 0 {
				gone[c.channel] = append(gone[c.channel], conn)
			}
		}
	}
	p.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	pipe := r.rdb.Pipeline()
	for ch, conns := range gone {
		pipe.ZRem(ctx, membersKey(ch), toAny(conns)...)
		pipe.HDel(ctx, memberInfoKey(ch), conns...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.log.Warn("redis: removing presence members that left during a refresh failed; they lapse after the presence TTL", "err", err)
	}
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
