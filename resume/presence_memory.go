package resume

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/edgeworks/edge/edge"
)

var _ edge.Presence = (*Memory)(nil)

// memPresence is the embedded store's presence: the members of each
// channel, all on this node, so that nothing expires. It is safe for
// concurrent use.
type memPresence struct {
	announce atomic.Pointer[func(context.Context, edge.PresenceChange)]

	mu      sync.Mutex
	members map[string]map[string]edge.Member // mu guards members: channel → conn → member
}

// OnPresence sets the function that receives every join and leave.
func (m *Memory) OnPresence(announce func(context.Context, edge.PresenceChange)) {
	m.presence.announce.Store(&announce)
}

// Join records mem as a member of channel and announces it, unless it was
// a member already.
func (m *Memory) Join(ctx context.Context, channel string, mem edge.Member) error {
	p := &m.presence
	p.mu.Lock()
	if p.members == nil {
		p.members = make(map[string]map[string]edge.Member)
	}
	members := p.members[channel]
	if members == nil {
		members = make(map[string]edge.Member)
		p.members[channel] = members
	}
	_, was := members[mem.Conn]
	members[mem.Conn] = mem
	p.mu.Unlock()
	if !was {
		p.tell(ctx, edge.PresenceChange{Channel: channel, Event: edge.EventJoin, Member: mem})
	}
	return nil
}

// Leave removes the member conn of channel and announces it, if it was
// there and node is its Node (or empty).
func (m *Memory) Leave(ctx context.Context, channel, conn, node string) error {
	p := &m.presence
	p.mu.Lock()
	mem, was := p.members[channel][conn]
	was = was && (node == "" || mem.Node == node)
	if was {
		delete(p.members[channel], conn)
		if len(p.members[channel]) == 0 {
			delete(p.members, channel)
		}
	}
	p.mu.Unlock()
	if was {
		p.tell(ctx, edge.PresenceChange{Channel: channel, Event: edge.EventLeave, Member: mem})
	}
	return nil
}

// Members returns up to limit members of channel and their count.
func (m *Memory) Members(_ context.Context, channel string, limit int) ([]edge.Member, int, error) {
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	members := p.members[channel]
	list := make([]edge.Member, 0, min(limit, len(members)))
	for _, mem := range members {
		if len(list) == limit {
			break
		}
		list = append(list, mem)
	}
	return list, len(members), nil
}

// tell hands c to the announce function, if one is set.
func (p *memPresence) tell(ctx context.Context, c edge.PresenceChange) {
	if f := p.announce.Load(); f != nil {
		(*f)(ctx, c)
	}
}
