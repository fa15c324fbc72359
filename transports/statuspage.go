package transports

import (
	"context"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/status"
)

// statusReading reads what the status page at /status shows: the totals
// the metrics keep, the open sessions, and the store with, when it does
// not answer within a second, what /readyz would say about it.
func (s *Server) statusReading(ctx context.Context) status.Reading {
	r := status.Reading{Snapshot: s.metrics.Snapshot(), Sessions: int64(s.hub.Sessions()), Store: "memory"}
	if s.store != nil {
		r.Store = s.store.Name()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.broker.Ready(ctx); err != nil {
		_, _, r.StoreErr = edge.Classify(err)
	}
	return r
}
