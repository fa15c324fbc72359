package resume_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// redisNode is one edge node's Redis store, running, with what it relays.
type redisNode struct {
	*resume.Redis
	mu   sync.Mutex
	got  map[string][]edge.Message
	more chan struct{}
}

func startRedisNode(t *testing.T, srv *redistest.Server, cfg resume.RedisConfig) *redisNode {
	t.Helper()
	cfg.URLs = []string{srv.URL()}
	r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	return runRedisNode(t, r)
}

// runRedisNode records what r relays and runs it until the test ends.
func runRedisNode(t *testing.T, r *resume.Redis) *redisNode {
	n := &redisNode{Redis: r, got: map[string][]edge.Message{}, more: make(chan struct{}, 1)}
	r.Relay(func(_ context.Context, m edge.Message) {
		n.mu.Lock()
		n.got[m.Channel] = append(n.got[m.Channel], m)
		n.mu.Unlock()
		select {
		case n.more <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// waitUntil waits until the node relayed the message id of channel.
func (n *redisNode) waitUntil(t *testing.T, channel string, id edge.ID) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		n.mu.Lock()
		got := n.got[channel]
		seen := len(got) > 0 && !got[len(got)-1].ID.Less(id)
		n.mu.Unlock()
		if seen {
			for _, m := range n.waitFor(t, channel, 0) {
				if m.ID == id {
					return
				}
			}
			t.Fatalf("acknowledged message %v of %q was never relayed", id, channel)
		}
		select {
		case <-n.more:
		case <-deadline:
			t.Fatalf("acknowledged message %v of %q not relayed within 20s", id, channel)
		}
	}
}

// waitFor waits until the node relayed n messages of channel and returns them.
func (n *redisNode) waitFor(t *testing.T, channel string, count int) []edge.Message {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		n.mu.Lock()
		got := append([]edge.Message(nil), n.got[channel]...)
		n.mu.Unlock()
		if len(got) >= count {
			return got
		}
		select {
		case <-n.more:
		case <-deadline:
			t.Fatalf("%d of %d messages of %q relayed", len(got), count, channel)
		}
	}
}

func mustPublish(t *testing.T, b edge.Broker, channel, data string) edge.ID {
	t.Helper()
	id, err := b.Publish(context.Background(), channel, "", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRedisPublishHistoryLast(t *testing.T) {
	srv := redistest.Start(t)
	n := startRedisNode(t, srv, resume.RedisConfig{})
	ctx := context.Background()
	if last, err := n.Last(ctx, "h"); err != nil || !last.IsZero() {
		t.Fatalf("Last of a new channel = %v, %v", last, err)
	}
	var ids []edge.ID
	for i := range 10 {
		ids = append(ids, mustPublish(t, n, "h", fmt.Sprint(i)))
		if i > 0 && !ids[i-1].Less(ids[i]) {
			t.Fatalf("ids not increasing: %v then %v", ids[i-1], ids[i])
		}
	}
	if last, _ := n.Last(ctx, "h"); last != ids[9] {
		t.Fatalf("Last = %v, want %v", last, ids[9])
	}
	for _, tc := range []struct {
		name  string
		after edge.ID
		limit int
		want  []string
	}{
		{"from the start", edge.ID{}, 100, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"after an id", ids[6], 100, []string{"7", "8", "9"}},
		{"limit", ids[0], 2, []string{"1", "2"}},
		{"after the last", ids[9], 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := n.History(ctx, "h", tc.after, tc.limit)
			if err != nil || p.Gap {
				t.Fatalf("page %+v, err %v", p, err)
			}
			var got []string
			for _, m := range p.Messages {
				got = append(got, string(m.Data))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRedisGap(t *testing.T) {
	srv := redistest.Start(t)
	n := startRedisNode(t, srv, resume.RedisConfig{HistorySize: 100})
	ctx := context.Background()
	var ids []edge.ID
	for i := range 400 {
		ids = append(ids, mustPublish(t, n, "g", fmt.Sprint(i)))
	}
	t.Run("trimmed cursor", func(t *testing.T) {
		p, _ := n.History(ctx, "g", ids[0], 10)
		if !p.Gap {
			t.Fatal("no gap for a cursor whose successors were trimmed")
		}
	})
	t.Run("recent cursor", func(t *testing.T) {
		p, _ := n.History(ctx, "g", ids[390], 100)
		if p.Gap || len(p.Messages) != 9 {
			t.Fatalf("gap %v, %d messages", p.Gap, len(p.Messages))
		}
	})
	t.Run("flushed and recreated", func(t *testing.T) {
		if _, err := srv.Do(t, "FLUSHALL"); err != nil {
			t.Fatal(err)
		}
		p, _ := n.History(ctx, "g", ids[399], 10)
		if !p.Gap {
			t.Fatal("no gap for a cursor into a flushed stream")
		}
		mustPublish(t, n, "g", "new")
		p, _ = n.History(ctx, "g", ids[399], 10)
		if !p.Gap || len(p.Messages) != 1 {
			t.Fatalf("recreated stream: gap %v, %d messages", p.Gap, len(p.Messages))
		}
	})
}

// A message published on one node reaches the other, once, in order.
func TestRedisRelayAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisNode(t, srv, resume.RedisConfig{})
	b := startRedisNode(t, srv, resume.RedisConfig{})
	if err := b.Watch(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	var want []edge.ID
	for i := range 300 {
		want = append(want, mustPublish(t, a, "x", fmt.Sprint(i)))
	}
	got := b.waitFor(t, "x", len(want))
	for i, m := range got {
		if i >= len(want) || m.ID != want[i] || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("relayed message %d = %v %q, want %v", i, m.ID, m.Data, want[i])
		}
	}
	b.Unwatch("x")
}

// When a node's relay connection drops, what was stored meanwhile is
// filled from the stream: delivered once, in order.
func TestRedisFillAfterRelayDrop(t *testing.T) {
	srv := redistest.Start(t)
	b := startRedisNode(t, srv, resume.RedisConfig{})
	if err := b.Watch(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for round := range 3 {
		if _, err := srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		for i := range 20 { // published straight into Redis while b reconnects
			id, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{f}", "", fmt.Sprintf("%d-%d", round, i))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
	}
	got := b.waitFor(t, "f", len(want))
	if len(got) != len(want) {
		t.Fatalf("%d relayed, want %d", len(got), len(want))
	}
	for i, m := range got {
		if m.ID.String() != want[i] {
			t.Fatalf("message %d: %v, want %s", i, m.ID, want[i])
		}
	}
}

// A publisher runs while Redis restarts: every acknowledged message is
// relayed to the other node exactly once, in order; publishes during the
// outage fail with ErrUnavailable and readiness fails.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisNode(t, srv, resume.RedisConfig{})
	b := startRedisNode(t, srv, resume.RedisConfig{})
	if err := b.Watch(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		acked    []edge.ID
		failures int
	)
	stop := make(chan struct{})
	published := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id, err := a.Publish(context.Background(), "r", "", []byte(fmt.Sprint(i)))
			mu.Lock()
			if err == nil {
				acked = append(acked, id)
			} else if errors.Is(err, edge.ErrUnavailable) {
				failures++
			} else {
				t.Errorf("publish: %v", err)
			}
			mu.Unlock()
			select {
			case published <- struct{}{}:
			default:
			}
		}
	})
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcked := func(n int) {
		for ackedCount() < n {
			<-published
		}
	}
	waitAcked(50)
	srv.Stop(t)
	if err := a.Ready(context.Background()); err == nil {
		t.Fatal("ready while Redis is down")
	}
	for { // at least one publish must fail during the outage
		<-published
		mu.Lock()
		f := failures
		mu.Unlock()
		if f > 0 {
			break
		}
	}
	srv.Restart(t)
	waitAcked(ackedCount() + 50)
	close(stop)
	wg.Wait()

	for _, id := range acked {
		b.waitUntil(t, "r", id)
	}
	all := b.waitFor(t, "r", 0)
	for i := 1; i < len(all); i++ {
		if !all[i-1].ID.Less(all[i].ID) {
			t.Fatalf("relayed out of order or twice: %v then %v", all[i-1].ID, all[i].ID)
		}
	}
}

func TestRedisFunctionValidatesInput(t *testing.T) {
	srv := redistest.Start(t)
	startRedisNode(t, srv, resume.RedisConfig{MaxPayload: 10})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bad key", []string{"FCALL", "edge_publish", "1", "news", "", "x"}},
		{"bad channel", []string{"FCALL", "edge_publish", "1", "edge:{a b}", "", "x"}},
		{"reserved event", []string{"FCALL", "edge_publish", "1", "edge:{a}", "gap", "x"}},
		{"event with newline", []string{"FCALL", "edge_publish", "1", "edge:{a}", "x\ny", "x"}},
		{"too large", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "01234567890"}},
		{"missing payload", []string{"FCALL", "edge_publish", "1", "edge:{a}", ""}},
		{"option without a value", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size"}},
		{"unknown option", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "exactly-once", "k"}},
		{"unknown option beside a key", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "idempotency-key", "k", "exactly-once", "k"}},
		{"option given twice", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size", "5", "history-size", "6"}},
		{"option not a number", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-ttl-ms", "1h"}},
		{"option zero", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "max-payload", "0"}},
		{"option fractional", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size", "1.5"}},
		{"too large for the option", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "xx", "max-payload", "1"}},
		// The three options in the order nodes send them take a fast path.
		{"nodes' order, zero", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size", "0", "history-ttl-ms", "1000", "max-payload", "10"}},
		{"nodes' order, not a number", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size", "5", "history-ttl-ms", "1h", "max-payload", "10"}},
		{"nodes' order, fractional", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "x", "history-size", "5", "history-ttl-ms", "1000", "max-payload", "1.5"}},
		{"nodes' order, too large", []string{"FCALL", "edge_publish", "1", "edge:{a}", "", "xx", "history-size", "5", "history-ttl-ms", "1000", "max-payload", "1"}},
		{"two keys", []string{"FCALL", "edge_publish", "2", "edge:{a}", "edge:{a}x", "", "x"}},
		{"two keys, not the idempotency key's", []string{"FCALL", "edge_publish", "2", "edge:{a}", "edge:{a}:once:j", "", "x", "idempotency-key", "k"}},
		{"three keys", []string{"FCALL", "edge_publish", "3", "edge:{a}", "edge:{a}:once:k", "edge:{a}:once:k", "", "x", "idempotency-key", "k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := srv.Do(t, tc.args...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// Retention in Redis stays bounded: trimming keeps a stream near
// history-size under load, and an idle channel's stream expires after
// history-ttl.
func TestRedisRetention(t *testing.T) {
	srv := redistest.Start(t)
	n := startRedisNode(t, srv, resume.RedisConfig{HistorySize: 100, HistoryTTL: time.Hour})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				if _, err := n.Publish(ctx, "busy", "", []byte(fmt.Sprint(w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	length, err := srv.Do(t, "XLEN", "edge:{busy}")
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole radix-tree nodes (100 entries by default).
	if l, _ := strconv.Atoi(length); l < 100 || l > 300 {
		t.Fatalf("stream holds %s entries after 4000 publishes with history-size 100", length)
	}
	ttl, _ := srv.Do(t, "PTTL", "edge:{busy}")
	if ms, _ := strconv.Atoi(ttl); ms <= 0 || ms > int(time.Hour.Milliseconds()) {
		t.Fatalf("stream PTTL %s, want an expiry within history-ttl", ttl)
	}
}

// Through Sentinel the edge finds the master by name and works as on a
// single Redis.
func TestRedisSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "edgemaster")
	cfg := resume.RedisConfig{URLs: []string{sentinel.URL()}, SentinelMaster: "edgemaster"}
	var nodes []*redisNode
	for range 2 {
		r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, runRedisNode(t, r))
	}
	if err := nodes[1].Watch(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	id := mustPublish(t, nodes[0], "s", "via sentinel")
	if got := nodes[1].waitFor(t, "s", 1); got[0].ID != id {
		t.Fatalf("relayed %v, want %v", got[0].ID, id)
	}
	if length, _ := master.Do(t, "XLEN", "edge:{s}"); length != "1" {
		t.Fatalf("the master's stream holds %q entries", length)
	}
}

// When messages stored while a node was disconnected are gone before it
// can fill them in, the node reports the channel lost (the hub then makes
// its subscribers resume and see the gap) instead of skipping silently.
func TestRedisReportsUnrecoverableLoss(t *testing.T) {
	srv := redistest.Start(t)
	n := startRedisNode(t, srv, resume.RedisConfig{})
	lost := make(chan string, 1)
	n.OnLost(func(ch string) { lost <- ch })
	ctx := context.Background()
	if err := n.Watch(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, n, "l", "seen")
	n.waitFor(t, "l", 1)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	// Atomically: drop the node's relay connection, store a message, trim
	// it away, store another.
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ClientKillByFilter(ctx, "TYPE", "pubsub")
		p.FCall(ctx, "edge_publish", []string{"edge:{l}"}, "", "missed")
		p.XTrimMaxLen(ctx, "edge:{l}", 0)
		p.FCall(ctx, "edge_publish", []string{"edge:{l}"}, "", "after")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-lost:
		if ch != "l" {
			t.Fatalf("lost %q", ch)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the loss was not reported")
	}
}

// A fill that fails must hold back the live messages after it: relaying
// one would skip, without a gap, the messages the fill was to deliver.
// Here the relay's Redis user loses the right to read streams while its
// connection is down; the message published meanwhile, and the live one
// after it, arrive in order once reading works again.
func TestRedisFailedFillHoldsLiveMessages(t *testing.T) {
	srv := redistest.Start(t)
	if _, err := srv.Do(t, "ACL", "SETUSER", "relay", "on", ">pw", "~*", "&*", "+@all"); err != nil {
		t.Fatal(err)
	}
	cfg := resume.RedisConfig{URLs: []string{"redis://relay:pw@" + srv.Addr}}
	r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	n := runRedisNode(t, r)
	if err := n.Watch(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	publish := func(data string) edge.ID {
		t.Helper()
		reply, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{f}", "", data)
		if err != nil {
			t.Fatal(err)
		}
		id, err := edge.ParseID(reply)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// denied waits until Redis has refused the relay's reads more than
	// after times, and returns how many times.
	denied := func(after int) int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			log, err := srv.Do(t, "ACL", "LOG")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			lines := strings.Split(log, "\n")
			for i := 0; i+1 < len(lines); i++ {
				if lines[i] == "count" {
					c, _ := strconv.Atoi(lines[i+1])
					n += c
				}
			}
			if n > after {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("the relay did not try to fill (%d denials)", n)
			}
			time.Sleep(10 * time.Millisecond) // polling Redis's log: no event to wait on
		}
	}

	n.waitUntil(t, "f", publish("0"))
	for _, cmd := range [][]string{{"ACL", "SETUSER", "relay", "-xrange"}, {"CLIENT", "KILL", "TYPE", "pubsub"}} {
		if _, err := srv.Do(t, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	publish("1")       // missed live: the relay reconnects after a backoff
	fills := denied(0) // its fill after reconnecting failed
	publish("2")       // relayed live while "1" is still missing
	denied(fills)      // the relay tried to fill before relaying "2"
	if _, err := srv.Do(t, "ACL", "SETUSER", "relay", "+xrange"); err != nil {
		t.Fatal(err)
	}
	n.waitUntil(t, "f", publish("3"))
	var got []string
	for _, m := range n.waitFor(t, "f", 0) {
		got = append(got, string(m.Data))
	}
	if want := []string{"0", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("relayed %q, want %q", got, want)
	}
}
