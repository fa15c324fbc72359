package edge

import "errors"

// Config is the configuration of a Hub. The zero value is a valid
// configuration: NewHub fills every zero field with its default (see
// WithDefaults).
type Config struct {
	// MaxChannels is how many channels one session may subscribe to.
	// Zero means 64.
	MaxChannels int
	// QueueBytes bounds what may wait in one session's outgoing queue; a
	// session past it is closed as a slow consumer. Zero means 1 MiB.
	QueueBytes int

	// Presence reports whether a channel keeps presence: its
	// subscriptions are members (Presence.Join) while they last, and
	// sessions that ask hear its joins and leaves. The hub asks once per
	// subscription. Nil means no channel keeps presence; a broker that
	// does not implement Presence keeps none either.
	Presence func(channel string) bool
	// Node names this node in presence: Member.Node, and the prefix of
	// its connections' ids. It must be unique in the fleet. Zero means
	// NewHub picks the host name and a random suffix, unique per process
	// even with several nodes on one host.
	Node string
	// MaxPollMembers bounds the long-poll members this node keeps
	// (Hub.PollMember): past it a new one is not joined. Zero means
	// 100,000.
	MaxPollMembers int
}

// MaxNodeLen bounds Config.Node, in bytes.
const MaxNodeLen = 64

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.MaxChannels, 64)
	setDefault(&c.QueueBytes, 1<<20)
	setDefault(&c.MaxPollMembers, 100_000)
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate reports every problem in c at once, each a *FieldError that
// names the field and the fix.
func (c Config) Validate() error {
	var errs []error
	CheckNotNegative(&errs, "MaxChannels", c.MaxChannels)
	CheckNotNegative(&errs, "QueueBytes", c.QueueBytes)
	CheckNotNegative(&errs, "MaxPollMembers", c.MaxPollMembers)
	if err := validateName(c.Node, MaxNodeLen); c.Node != "" && err != nil {
		errs = append(errs, Invalid("Node", "%v; use a name such as the host's", err))
	}
	return errors.Join(errs...)
}
