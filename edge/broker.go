package edge

import (
	"context"
	"fmt"
	"time"
)

// Page is a slice of a channel's history, oldest first.
type Page struct {
	Messages []Message
	// Gap reports that messages after the requested cursor are no longer
	// retained (trimmed, expired or lost), so Messages does not continue
	// right after the cursor.
	Gap bool
	// Ahead reports that the cursor is ahead of the newest id the channel
	// has: the history it came from was lost (a restart without
	// persistence, a failover to a lagging replica). Gap is set too,
	// Messages is empty, and a reader continues from Last.
	Ahead bool
	// Last is the channel's newest id (or its floor) when Ahead is set.
	Last ID
}

// Broker stores messages and relays them live to every node. The embedded
// memory store and the Redis store in package resume implement it.
//
// Ordering: within a channel, a Broker assigns strictly increasing ids and
// hands messages to the deliver function in id order, each exactly once per
// node.
type Broker interface {
	// Publish stores a message and relays it; it returns the id once the
	// message is stored. It fails with an error wrapping ErrUnavailable
	// when the message could not be stored.
	Publish(ctx context.Context, channel, event string, data []byte) (ID, error)

	// History returns up to limit retained messages of channel with ids
	// after the cursor, oldest first, with Gap set when messages after it
	// are no longer retained, and Ahead when the cursor is past the
	// channel's newest id.
	History(ctx context.Context, channel string, after ID, limit int) (Page, error)

	// Last returns the position of a subscriber that starts now: the id
	// of the newest message the channel ever had, or a floor below which
	// nothing is known when it has none.
	Last(ctx context.Context, channel string) (ID, error)

	// Relay sets the function that receives every live message of watched
	// channels. It is called once, before Run and before any Publish.
	// deliver must not block. A broker that relays inside Publish passes
	// Publish's context (and so its trace); others pass their own, with
	// the publish's span context as a remote one when the message brought
	// it along (Redis does).
	Relay(deliver func(context.Context, Message))

	// Watch tells the broker that one more local subscriber wants
	// channel's live messages; it returns once they flow to the deliver
	// function (so history read afterwards meets live at the seam).
	// Unwatch undoes one Watch. The broker counts them: it may stop
	// relaying a channel when every Watch was undone.
	Watch(ctx context.Context, channel string) error
	Unwatch(channel string)

	// Run does the broker's background work until ctx is done.
	Run(ctx context.Context) error

	// Ready returns nil when the broker can store and relay messages.
	Ready(ctx context.Context) error
}

// LossReporter is implemented by a Broker that can find out that its live
// relay of a channel missed messages it cannot recover (they were trimmed
// or lost before it could fill them in). NewHub registers a function that
// closes the channel's local sessions with DisconnectResync, so that their
// clients resume from their cursors and get the gap signal rather than a
// silent skip.
type LossReporter interface {
	OnLost(lost func(channel string))
}

// Publication is one message of a batch publish.
type Publication struct {
	Channel string
	Event   string // "" for the default type
	Data    []byte
	Key     string // the conflation key (Message.Key); "" for none
}

// Published is the outcome of one Publication: its id, or the error that
// kept it from being stored (Err wraps ErrUnavailable when the store
// failed, as Publish's does).
type Published struct {
	ID  ID
	Err error
}

// BatchPublisher is implemented by a Broker that stores many messages in
// one step: the embedded memory store and the Redis store in package
// resume. A Broker without it publishes a batch one message at a time.
type BatchPublisher interface {
	// PublishBatch stores and relays pubs, whose channels and events the
	// caller has validated, and returns one Published per publication,
	// in the same order. It is atomic per channel: the messages of one
	// channel are stored together, with consecutive ids in the order of
	// pubs, and relayed in that order, or none of them is stored and
	// each has the channel's error. Channels succeed or fail on their
	// own. The data of pubs must not be changed until it returns.
	PublishBatch(ctx context.Context, pubs []Publication) []Published
}

// OncePublisher is implemented by a Broker that publishes with an
// idempotency key, so that a publisher that retries after an error gets
// exactly once: the embedded memory store and the Redis store in package
// resume.
type OncePublisher interface {
	// PublishOnce is Publish with an idempotency key, which the caller has
	// validated (ValidateIdempotencyKey). Within the broker's window after
	// a publish to channel with key, a publish with the same key stores
	// nothing and returns the first one's id with replayed true; one with
	// the same key and another event or data fails with an error wrapping
	// ErrBadRequest, as a key names one message. Keys of different
	// channels are unrelated.
	PublishOnce(ctx context.Context, channel, event string, data []byte, key string) (id ID, replayed bool, err error)
}

// KeyPublisher is implemented by a Broker that keeps a message's
// conflation key (Message.Key) in its history and on its live relay: the
// embedded memory store and the Redis store in package resume. Their
// PublishBatch keeps Publication.Key too.
type KeyPublisher interface {
	// PublishKeyed is Publish of p, keeping p.Key, whose fields the
	// caller has validated; with an idempotency key once (not "") it is
	// PublishOnce.
	PublishKeyed(ctx context.Context, p Publication, once string) (id ID, replayed bool, err error)
}

// DefaultIdempotencyWindow is how long a store remembers an idempotency
// key unless configured otherwise.
const DefaultIdempotencyWindow = 10 * time.Minute

// MaxIdempotencyKeyLen bounds an idempotency key, in bytes.
const MaxIdempotencyKeyLen = 128

// MaxKeyLen bounds a message's conflation key (Message.Key), in bytes.
const MaxKeyLen = 128

// ValidateKey returns nil if key, a message's conflation key, is 1 to
// MaxKeyLen bytes of visible ASCII without spaces, else an error wrapping
// ErrBadRequest.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: a message key is 1 to %d bytes", ErrBadRequest, MaxKeyLen)
	}
	if !visibleASCII(key) {
		return fmt.Errorf("%w: a message key is visible ASCII (letters, digits, punctuation), without spaces", ErrBadRequest)
	}
	return nil
}

// visibleASCII reports whether s is printable ASCII without spaces.
func visibleASCII(s string) bool {
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// ValidateIdempotencyKey returns nil if key is 1 to MaxIdempotencyKeyLen
// bytes of visible ASCII (a UUID, a hash, a database row's id), else an
// error wrapping ErrBadRequest.
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("%w: an idempotency key is 1 to %d bytes", ErrBadRequest, MaxIdempotencyKeyLen)
	}
	if !visibleASCII(key) {
		return fmt.Errorf("%w: an idempotency key is visible ASCII (letters, digits, punctuation), without spaces", ErrBadRequest)
	}
	return nil
}
