package resume_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

func startClusterNode(t *testing.T, c *redistest.Cluster) *redisNode {
	t.Helper()
	cfg := resume.RedisConfig{URLs: strings.Split(c.URLs(), ",")} // several URLs: a cluster
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

// A failover moves a channel's slot to another master: by CLUSTER
// FAILOVER (the old master sends its subscribers sunsubscribe and keeps
// their connection) or by a master's death (every reconnect to it fails).
// Either way a node that relays the channel finds its new master and
// relays it from there, every message once and in order. A node that
// still believes the old master serves the slot does not relay from it:
// a demoted master misses what the new one publishes until it counts as
// its replica.
func TestRedisClusterFailover(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	a := startClusterNode(t, c)    // publishes
	b := startClusterNode(t, c)    // relays
	late := startClusterNode(t, c) // learns the layout now, watches after the failover
	const ch = "moving"
	if err := b.Watch(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	b.waitUntil(t, ch, mustPublish(t, a, ch, "before"))
	first := c.MasterOf(t, "edge:{"+ch+"}")
	second := c.ReplicasOf(t, first)[0]

	c.Failover(t, second)
	b.waitUntil(t, ch, publishUntilStored(t, a, ch, "after the failover"))
	if err := late.Watch(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if clients, err := first.Do(t, "CLIENT", "LIST", "TYPE", "pubsub"); err != nil || clients != "" {
		t.Fatalf("the demoted master %s relays to: %q (%v)", first.Addr, clients, err)
	}
	late.waitUntil(t, ch, mustPublish(t, a, ch, "to the late watcher"))

	second.Kill(t) // first, its replica now, takes over again
	c.WaitMaster(t, first)
	b.waitUntil(t, ch, publishUntilStored(t, a, ch, "after the kill"))

	got := b.waitFor(t, ch, 0)
	for i := 1; i < len(got); i++ {
		if !got[i-1].ID.Less(got[i].ID) {
			t.Fatalf("relayed %v after %v", got[i].ID, got[i-1].ID)
		}
	}
}

// publishUntilStored publishes data until a publish succeeds (within 15s)
// and returns its id: during a failover publishes fail until the client
// learns the new master.
func publishUntilStored(t *testing.T, b edge.Broker, channel, data string) edge.ID {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		id, err := b.Publish(context.Background(), channel, "", []byte(data))
		if err == nil {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %q: %v", data, err)
		}
		<-tick.C
	}
}

// A resharding moves a channel's slot to another master, as redis-cli
// --cluster reshard does, and back. While the slot is half migrated (the
// stream on the target, the rest on the source) publishes are redirected
// to the target (-ASK) and relayed there, where the relay does not listen
// yet: the node gets them from the fill that follows the source's
// sunsubscribe, when it relays the channel from the target. Every message
// is relayed once and in order, by a node that watched the channel all
// along and by one that watches it after the move with a layout learnt
// before it.
func TestRedisClusterReshard(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := startClusterNode(t, c)    // publishes
	b := startClusterNode(t, c)    // relays
	late := startClusterNode(t, c) // learns the layout now, watches after the move
	ctx := context.Background()
	const ch = "resharded"
	key := "edge:{" + ch + "}"
	if err := b.Watch(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Last(ctx, ch); err != nil {
		t.Fatal(err)
	}
	var want []edge.ID
	publish := func(data string) edge.ID {
		t.Helper()
		id := mustPublish(t, a, ch, data)
		want = append(want, id)
		return id
	}
	b.waitUntil(t, ch, publish("before"))
	first := c.MasterOf(t, key)
	second := c.Nodes[0]
	if second == first {
		second = c.Nodes[1]
	}

	var lateFirst edge.ID
	for i, to := range []*redistest.Server{second, first} {
		m := c.BeginMove(t, key, to)
		b.waitUntil(t, ch, publish(fmt.Sprint(i, " migrating")))
		m.Migrate(t, key)
		for j := range 5 {
			publish(fmt.Sprint(i, " half migrated ", j))
		}
		if n, err := to.Do(t, "CLUSTER", "COUNTKEYSINSLOT", fmt.Sprint(m.Slot)); err != nil || n != "1" {
			t.Fatalf("the target holds %s keys of the slot (%v), want the stream", n, err)
		}
		m.Finish(t)
		id := publishUntilStored(t, a, ch, fmt.Sprint(i, " moved"))
		want = append(want, id)
		b.waitUntil(t, ch, id)
		if i == 0 {
			// late's layout still has the slot on first.
			if err := late.Watch(ctx, ch); err != nil {
				t.Fatal(err)
			}
			lateFirst = publish("to the late watcher")
			late.waitUntil(t, ch, lateFirst)
		}
	}
	last := publish("after moving back")
	b.waitUntil(t, ch, last)
	late.waitUntil(t, ch, last)
	lateWant := want[slices.Index(want, lateFirst):]
	if got := late.waitFor(t, ch, 0); !slices.EqualFunc(got, lateWant, func(m edge.Message, id edge.ID) bool { return m.ID == id }) {
		t.Errorf("the late watcher relayed %v, want %v", got, lateWant)
	}

	got := b.waitFor(t, ch, len(want))
	if len(got) != len(want) {
		t.Fatalf("relayed %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if m.ID != want[i] {
			t.Fatalf("message %d relayed is %v, want %v", i, m.ID, want[i])
		}
	}
	if clients, err := second.Do(t, "CLIENT", "LIST", "TYPE", "pubsub"); err != nil || clients != "" {
		t.Errorf("the master that lost the slot relays to: %q (%v)", clients, err)
	}
}

// A keyed publish stays once while its channel's slot migrates, whichever
// of the stream and the idempotency key has moved: a repeat is answered
// with the first publish's id, or fails (and is repeated later), but is
// never stored again.
func TestRedisClusterReshardOnce(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := startClusterNode(t, c)
	ctx := context.Background()
	const ch = "resharded-once"
	stream := "edge:{" + ch + "}"
	tests := []struct {
		name  string
		moved func(onceKey string) []string // the keys migrated before the repeat
	}{
		{"stream moved", func(string) []string { return []string{stream} }},
		{"key moved", func(k string) []string { return []string{k} }},
		{"both moved", func(k string) []string { return []string{stream, k} }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprint("k", i)
			id, replayed, err := a.PublishOnce(ctx, ch, "", []byte(key), key)
			if err != nil || replayed {
				t.Fatalf("first PublishOnce: %v, replayed %v, %v", id, replayed, err)
			}
			from := c.MasterOf(t, stream)
			to := c.Nodes[0]
			if to == from {
				to = c.Nodes[1]
			}
			m := c.BeginMove(t, stream, to)
			m.Migrate(t, tc.moved("edge:{"+ch+"}:once:"+key)...)
			again, replayed, err := a.PublishOnce(ctx, ch, "", []byte(key), key)
			if err == nil && (again != id || !replayed) {
				t.Errorf("repeat while half migrated: %v, replayed %v; want %v, replayed", again, replayed, id)
			}
			m.Finish(t)
			again, replayed, err = a.PublishOnce(ctx, ch, "", []byte(key), key)
			if err != nil || again != id || !replayed {
				t.Errorf("repeat after the move: %v, replayed %v, %v; want %v, replayed", again, replayed, err, id)
			}
			p, err := a.History(ctx, ch, edge.ID{}, 100)
			if err != nil || len(p.Messages) != i+1 {
				t.Errorf("history holds %d messages (%v), want %d", len(p.Messages), err, i+1)
			}
		})
	}
}

// A master dies with acknowledged messages that its replica never got (the
// replica was frozen and its link cut, so that the lag is certain), and the
// replica takes over. A node that relayed the lost messages finds them gone
// when it fills the channel from the new master: it reports the loss
// (OnLost, so its subscribers resync and get a gap) and records it in the
// stream, so that a cursor from before the loss, of a client that was away,
// gets a gap too instead of the messages published after it, and the
// history after the gap starts after the loss. A cursor after the loss
// gets no gap.
func TestRedisClusterLaggingReplica(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	a := startClusterNode(t, c) // publishes
	b := startClusterNode(t, c) // relays
	lost := make(chan string, 10)
	b.OnLost(func(ch string) { lost <- ch })
	ctx := context.Background()
	const ch = "lagging"
	if err := b.Watch(ctx, ch); err != nil {
		t.Fatal(err)
	}
	master := c.MasterOf(t, "edge:{"+ch+"}")
	replica := c.ReplicasOf(t, master)[0]
	survivor := mustPublish(t, a, ch, "replicated")
	kept := mustPublish(t, a, ch, "replicated too")
	if n, err := master.Do(t, "WAIT", "1", "5000"); err != nil || n != "1" {
		t.Fatalf("WAIT for the replica: %q, %v", n, err)
	}
	b.waitUntil(t, ch, kept)

	replica.Pause(t)
	if _, err := master.Do(t, "CLIENT", "KILL", "TYPE", "replica"); err != nil {
		t.Fatal(err)
	}
	var gone []edge.ID
	for i := range 3 {
		gone = append(gone, mustPublish(t, a, ch, fmt.Sprint("lost ", i)))
	}
	b.waitUntil(t, ch, gone[len(gone)-1])
	master.Kill(t)
	replica.Continue(t)
	c.WaitMaster(t, replica)

	select {
	case got := <-lost:
		if got != ch {
			t.Fatalf("OnLost(%q), want %q", got, ch)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the relay did not report the lost messages within 20s")
	}
	after := publishUntilStored(t, a, ch, "after the failover")
	b.waitUntil(t, ch, after)

	tests := []struct {
		name   string
		cursor edge.ID
		gap    bool
	}{
		{"before the loss", kept, true},
		// A page's gap comes before its messages: the survivor, older
		// than the loss, would follow the gap as if it came after it.
		{"before a survivor", survivor, true},
		{"inside the loss", gone[0], true},
		{"the newest relayed", gone[len(gone)-1], true}, // more may have followed it
		{"after the loss", after, false},
	}
	for _, tc := range tests {
		p, err := b.History(ctx, ch, tc.cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.Gap != tc.gap {
			t.Errorf("%s: history after %v has gap %v, want %v", tc.name, tc.cursor, p.Gap, tc.gap)
		}
		if tc.cursor != after && (len(p.Messages) != 1 || p.Messages[0].ID != after) {
			t.Errorf("%s: history after %v holds %v, want the message published after the failover", tc.name, tc.cursor, p.Messages)
		}
	}
	got := b.waitFor(t, ch, 0)
	for i := 1; i < len(got); i++ {
		if !got[i-1].ID.Less(got[i].ID) {
			t.Fatalf("relayed %v after %v", got[i].ID, got[i-1].ID)
		}
	}
}
