package edge

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Reserved event types of presence: the edge sends them to subscribers that
// ask for presence, and publishers may not use them.
const (
	EventJoin  = "join"
	EventLeave = "leave"
)

// Member is one subscription of a channel, as presence lists it: one
// connection subscribed to the channel on one node. A connection that
// subscribes to several presence channels is a member of each.
type Member struct {
	// Conn is the connection's id, unique in the fleet.
	Conn string `json:"conn"`
	// Sub is the subject ("sub" claim) of the connection's token; empty
	// for an anonymous connection or a token without one.
	Sub string `json:"sub,omitempty"`
	// Info is what the client said about itself when it subscribed
	// (ValidatePresenceInfo); empty when it said nothing.
	Info string `json:"info,omitempty"`
	// Node names the edge node the connection is on.
	Node string `json:"node"`
}

// PresenceChange is a member joining or leaving a channel.
type PresenceChange struct {
	Channel string
	Event   string // EventJoin or EventLeave
	Member  Member
}

// Presence is implemented by a Broker that keeps, fleet-wide, who
// subscribes to channels: the embedded memory store and the Redis store in
// package resume. The hub calls it only for channels with presence enabled
// (Config.Presence).
type Presence interface {
	// Join records m as a member of channel and announces the join, until
	// Leave. Joining an existing member again replaces its entry and
	// announces nothing. A store shared by several nodes keeps the entry
	// alive while its node runs; when the node dies, its entries lapse
	// within PresenceTTL and their leaves are announced by another node.
	Join(ctx context.Context, channel string, m Member) error

	// Leave removes the member conn of channel and announces the leave,
	// if node is the Node of its entry (any node when node is empty): a
	// long-poll member that moved to another node, which replaced its
	// entry, is not removed by the node it left. A member that is not
	// there (or another node's) is no error, and nothing is announced.
	Leave(ctx context.Context, channel, conn, node string) error

	// Members returns up to limit members of channel, in no particular
	// order, and how many members it has: the count is exact whatever
	// the limit.
	Members(ctx context.Context, channel string, limit int) (members []Member, count int, err error)

	// OnPresence sets the function that receives the joins and leaves of
	// the channels this node watches (Broker.Watch), from every node. It
	// is called once, before Run. announce must not block.
	OnPresence(announce func(context.Context, PresenceChange))
}

// PresenceTTL is how long a shared store keeps a member of a node that
// stopped refreshing it (it died): its subscribers vanish from presence
// within PresenceTTL plus one sweep.
const PresenceTTL = 15 * time.Second

// MaxPresenceInfoLen bounds the info a client gives about itself, in bytes.
const MaxPresenceInfoLen = 256

// ValidatePresenceInfo returns nil if info is at most MaxPresenceInfoLen
// bytes of UTF-8 without control characters, else an error wrapping
// ErrBadRequest.
func ValidatePresenceInfo(info string) error {
	if len(info) > MaxPresenceInfoLen {
		return fmt.Errorf("%w: presence info is at most %d bytes", ErrBadRequest, MaxPresenceInfoLen)
	}
	if !utf8.ValidString(info) {
		return fmt.Errorf("%w: presence info is not UTF-8", ErrBadRequest)
	}
	for _, r := range info {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("%w: presence info holds a control character", ErrBadRequest)
		}
	}
	return nil
}
