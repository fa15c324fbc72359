package resume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

// Ingest: publishers that only PUBLISH to plain Redis channels (as most
// Redis + WebSocket tutorials do) are relayed when RedisConfig.Ingest is set.
// Every node pattern-subscribes; the one node that holds the ingest lease
// appends each message to its channel's stream through the publish
// function, so it gets an id, history and resume like any other. Plain
// PUBLISH is fire-and-forget: what is published while no node holds the
// lease (for up to ingestLease after the leader dies) or while the
// leader's connection is down is lost, and such a message has no id until
// the leader stores it.

// ingestLeaseKey names the lease; its value is the holder's node id.
const ingestLeaseKey = "edge:ingest:lease"

// ingestLease is how long a lease lasts without renewal.
const ingestLease = 6 * time.Second

// renewLease extends the lease when this node holds it, or takes it when
// it is free; it answers 1 when this node holds the lease afterwards.
var renewLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
`)

// runIngest relays plain PUBLISH traffic on channels matching pattern
// until ctx is done. The lease is held by a goroutine of its own, so that
// a burst of messages to store never delays its renewal; runIngest stops
// it and waits for it before it returns.
func (r *Redis) runIngest(ctx context.Context, pattern string) {
	var idBytes [8]byte
	rand.Read(idBytes[:])
	nodeID := hex.EncodeToString(idBytes[:])
	leader := make(chan bool, 1)
	leaseCtx, stopLease := context.WithCancel(ctx)
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		r.holdLease(leaseCtx, nodeID, leader)
	}()
	defer func() {
		stopLease()
		<-leaseDone
	}()

	ps := r.rdb.PSubscribe(ctx, pattern)
	defer ps.Close()
	isLeader := false
	msgs := ps.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader = <-leader:
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if !isLeader {
				continue
			}
			if err := edge.ValidateChannel(m.Channel); err != nil {
				r.log.Warn("ingest: message on a channel edge cannot serve dropped", "err", err)
				continue
			}
			if _, err := r.Publish(ctx, m.Channel, "", []byte(m.Payload)); err != nil {
				r.log.Warn("ingest: storing a plain PUBLISH failed; it is lost", "err", err)
			}
		}
	}
}

// holdLease takes and renews the ingest lease, reporting on leader whether
// this node holds it.
func (r *Redis) holdLease(ctx context.Context, nodeID string, leader chan<- bool) {
	t := time.NewTicker(ingestLease / 3)
	defer t.Stop()
	held := false
	for {
		got, err := renewLease.Run(ctx, r.rdb, []string{ingestLeaseKey}, nodeID, ingestLease.Milliseconds()).Int()
		now := err == nil && got == 1
		if now != held {
			held = now
			r.log.Info("ingest lease", "held", held)
			select {
			case leader <- held:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
