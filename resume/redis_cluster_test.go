package resume_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

func startClusterNode(t *testing.T, c *redistest.Cluster) *redisNode {
	t.Helper()
	cfg := edge.Config{Redis: c.URLs()}.WithDefaults() // several URLs: a cluster
	r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	return runRedisNode(t, r)
}

// On a Redis Cluster, channels spread over the masters' slots; a node
// relays every channel with one pub/sub connection per master, and history
// and resume work on every slot.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := startClusterNode(t, c)
	b := startClusterNode(t, c)
	ctx := context.Background()
	const channels, each = 30, 20
	for i := range channels {
		if err := b.Watch(ctx, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]edge.ID{}
	for j := range each {
		for i := range channels {
			ch := fmt.Sprintf("c%d", i)
			want[ch] = append(want[ch], mustPublish(t, a, ch, fmt.Sprint(j)))
		}
	}
	for ch, ids := range want {
		got := b.waitFor(t, ch, len(ids))
		for k, m := range got {
			if m.ID != ids[k] {
				t.Fatalf("%s: message %d = %v, want %v", ch, k, m.ID, ids[k])
			}
		}
		p, err := b.History(ctx, ch, ids[9], 100)
		if err != nil || p.Gap || len(p.Messages) != each-10 {
			t.Fatalf("%s: history after the 10th: gap %v, %d messages, %v", ch, p.Gap, len(p.Messages), err)
		}
	}
	// One relay connection per master, not per channel.
	for _, n := range c.Nodes {
		clients, err := n.Do(t, "CLIENT", "LIST", "TYPE", "pubsub")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(clients, "id="); got != 1 {
			t.Fatalf("master %s has %d pub/sub connections, want 1:\n%s", n.Addr, got, clients)
		}
	}
	// Channels really spread over the masters.
	for _, n := range c.Nodes {
		keys, _ := n.Do(t, "DBSIZE")
		if keys == "0" {
			t.Fatalf("master %s holds no channel", n.Addr)
		}
	}
}

// When one master's relay connection drops, only that shard fills its
// channels from their streams; the other shards keep relaying, untouched
// (marking them from the dropped shard's loop was a data race with their
// own loops). Every message is relayed once, in order, on every shard.
func TestRedisClusterRelayDropOnOneMaster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := startClusterNode(t, c)
	b := startClusterNode(t, c)
	ctx := context.Background()
	const channels, rounds, each = 12, 5, 10
	for i := range channels {
		if err := b.Watch(ctx, fmt.Sprintf("d%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]edge.ID{}
	for round := range rounds {
		if _, err := c.Nodes[round%len(c.Nodes)].Do(t, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		for j := range each {
			for i := range channels {
				ch := fmt.Sprintf("d%d", i)
				want[ch] = append(want[ch], mustPublish(t, a, ch, fmt.Sprint(round, j)))
			}
		}
	}
	for ch, ids := range want {
		b.waitUntil(t, ch, ids[len(ids)-1])
		got := b.waitFor(t, ch, len(ids))
		if len(got) != len(ids) {
			t.Fatalf("%s: %d relayed, want %d", ch, len(got), len(ids))
		}
		for k, m := range got {
			if m.ID != ids[k] {
				t.Fatalf("%s: message %d = %v, want %v", ch, k, m.ID, ids[k])
			}
		}
	}
}
