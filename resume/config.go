package resume

import (
	"errors"
	"time"

	"github.com/edgeworks/edge/edge"
)

// The retention of both stores when their configuration leaves it zero.
const (
	defaultHistorySize = 1000
	defaultHistoryTTL  = time.Hour
)

// MemoryConfig is the configuration of the embedded store (NewMemory).
// The zero value is a valid configuration: NewMemory fills every zero
// field with its default (see WithDefaults).
type MemoryConfig struct {
	// HistorySize is how many messages each channel retains. Zero means
	// 1000.
	HistorySize int
	// HistoryTTL is how long a message is retained. Zero means 1h.
	HistoryTTL time.Duration
	// HistoryMemory bounds the bytes of payload the store holds over all
	// channels; past it the oldest messages are trimmed (and a resume
	// into them gets a gap). Zero means 256 MiB.
	HistoryMemory int64
	// IdempotencyWindow is how long a publish's idempotency key is
	// remembered (edge.OncePublisher). Zero means
	// edge.DefaultIdempotencyWindow (10 minutes). The store remembers at
	// most 100,000 keys over all channels; past that the oldest are
	// forgotten early.
	IdempotencyWindow time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c MemoryConfig) WithDefaults() MemoryConfig {
	setDefault(&c.HistorySize, defaultHistorySize)
	setDefault(&c.HistoryTTL, defaultHistoryTTL)
	setDefault(&c.HistoryMemory, 256<<20)
	setDefault(&c.IdempotencyWindow, edge.DefaultIdempotencyWindow)
	return c
}

// Validate reports every problem in c at once, each an *edge.FieldError
// that names the field and the fix.
func (c MemoryConfig) Validate() error {
	var errs []error
	edge.CheckNotNegative(&errs, "HistorySize", c.HistorySize)
	edge.CheckNotNegative(&errs, "HistoryTTL", c.HistoryTTL)
	edge.CheckNotNegative(&errs, "HistoryMemory", c.HistoryMemory)
	edge.CheckNotNegative(&errs, "IdempotencyWindow", c.IdempotencyWindow)
	return errors.Join(errs...)
}

// RedisConfig is the configuration of the Redis store (NewRedis). The zero
// value is a valid configuration, of a single Redis on localhost:6379:
// NewRedis fills every zero field with its default (see WithDefaults).
type RedisConfig struct {
	// URLs name the Redis to use: one redis:// (or rediss://) URL of a
	// single Redis; with Cluster the URLs of Redis Cluster nodes; with
	// SentinelMaster the URLs of Sentinels. Several URLs without
	// SentinelMaster mean a cluster too. Zero means redis://localhost:6379.
	URLs []string
	// Cluster says that URLs name Redis Cluster nodes.
	Cluster bool
	// SentinelMaster, when set, says that URLs name Redis Sentinels that
	// monitor the master of this name. Zero means no Sentinel.
	SentinelMaster string

	// Ingest is a Redis channel pattern (PSUBSCRIBE syntax, e.g. "news.*")
	// whose plain PUBLISH messages the store stores and relays as messages
	// of the channel of the same name. Zero means none.
	Ingest string

	// HistorySize is how many messages each channel's stream retains
	// (trimmed with MAXLEN ~). Zero means 1000.
	HistorySize int
	// HistoryTTL is how long a message is retained, and how long an idle
	// channel's stream lives. Zero means 1h.
	HistoryTTL time.Duration
	// MaxPayload is the largest payload in bytes that the store's Redis
	// Function accepts from a backend publishing straight into Redis.
	// Zero means edge.DefaultMaxPayload (64 KiB).
	MaxPayload int
	// IdempotencyWindow is how long a publish's idempotency key is
	// remembered (PublishOnce): a publish repeated with the same key on
	// the same channel within it stores nothing and answers the first
	// one's id. Each keyed publish costs one Redis key in its channel's
	// slot (edge:{CHANNEL}:once:KEY, the id and a SHA-1 of the message),
	// which expires after the window, so Redis holds at most the keys of
	// one window's keyed publishes. It is per publish, not a fleet
	// setting: nodes may differ. Zero means edge.DefaultIdempotencyWindow
	// (10 minutes); it is at least a millisecond.
	IdempotencyWindow time.Duration

	// Presence says which channels have presence (edge.Presence): the
	// relay also subscribes their announcements of joins and leaves
	// (edge:{CHANNEL}:presence) while the channel is watched, and the
	// store sweeps their expired members. It must agree with the hub's
	// edge.Config.Presence. Nil means none: no extra subscriptions, and
	// OnPresence hears nothing (Join, Leave and Members still work).
	Presence func(channel string) bool
	// PresenceTTL is how long a member of a node that stopped refreshing
	// it (the node died) stays listed: a node refreshes its members every
	// PresenceTTL/3, and sweeps the presence channels it watches as
	// often. Zero means edge.PresenceTTL (15s); it is at least a second.
	PresenceTTL time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c RedisConfig) WithDefaults() RedisConfig {
	if len(c.URLs) == 0 {
		c.URLs = []string{"redis://localhost:6379"}
	}
	setDefault(&c.HistorySize, defaultHistorySize)
	setDefault(&c.HistoryTTL, defaultHistoryTTL)
	setDefault(&c.MaxPayload, edge.DefaultMaxPayload)
	setDefault(&c.IdempotencyWindow, edge.DefaultIdempotencyWindow)
	setDefault(&c.PresenceTTL, edge.PresenceTTL)
	return c
}

// Validate reports every problem in c at once, each an *edge.FieldError
// that names the field and the fix. NewRedis reports URLs that do not
// parse.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.Cluster && c.SentinelMaster != "" {
		errs = append(errs, edge.Invalid("SentinelMaster", "Sentinels and a Redis Cluster (%s) exclude each other; set one", edge.FieldRef("Cluster")))
	}
	edge.CheckNotNegative(&errs, "HistorySize", c.HistorySize)
	edge.CheckNotNegative(&errs, "HistoryTTL", c.HistoryTTL)
	edge.CheckNotNegative(&errs, "MaxPayload", c.MaxPayload)
	edge.CheckMaxPayload(&errs, "MaxPayload", c.MaxPayload)
	edge.CheckNotNegative(&errs, "IdempotencyWindow", c.IdempotencyWindow)
	if c.IdempotencyWindow > 0 && c.IdempotencyWindow < time.Millisecond {
		errs = append(errs, edge.Invalid("IdempotencyWindow", "%v is under a millisecond, the unit Redis expires keys in; raise it", c.IdempotencyWindow))
	}
	edge.CheckNotNegative(&errs, "PresenceTTL", c.PresenceTTL)
	if c.PresenceTTL > 0 && c.PresenceTTL < minPresenceTTL {
		errs = append(errs, edge.Invalid("PresenceTTL", "%v is under %v: nodes would refresh their members several times a second; raise it", c.PresenceTTL, minPresenceTTL))
	}
	if c.PresenceTTL > maxPresenceTTL {
		errs = append(errs, edge.Invalid("PresenceTTL", "%v is over %v: a dead node's members would stay listed that long; lower it", c.PresenceTTL, maxPresenceTTL))
	}
	return errors.Join(errs...)
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
