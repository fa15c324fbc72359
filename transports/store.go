package transports

import (
	"context"
	"time"
)

// Store is what the status page and the metrics show of a broker's
// backing store beyond edge.Broker: its name, and its round trips to a
// server of its own. resume.Redis implements it; pass it with WithStore.
type Store interface {
	// Name is the store's name on the status page, such as "redis".
	Name() string
	// OnRoundTrip registers observe, which the store calls after each
	// round trip to its server with how long it took and how it ended: a
	// nil error when the server answered, an error wrapping
	// edge.ErrUnavailable when no answer came (connection lost, timeout),
	// or another error when the server answered with an error.
	OnRoundTrip(observe func(ctx context.Context, took time.Duration, err error))
}

// WithStore makes the status page name store and the metrics count and
// time its round trips (edge.redis.commands, edge.redis.duration).
// Without it the status page shows the embedded store, "memory".
func WithStore(store Store) Option {
	return func(s *Server) { s.store = store }
}
