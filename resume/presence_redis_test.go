package resume_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// presenceTTL is the nodes' PresenceTTL in these tests: short, so that a
// dead node's members lapse quickly.
const presenceTTL = 2 * time.Second

// presenceBackend is a Redis deployment: how nodes connect to it and a way
// to send a command to the server that holds a key.
type presenceBackend struct {
	conn resume.RedisConfig
	do   func(t *testing.T, key string, args ...string) (string, error)
}

// presenceBackends are the deployments presence is tested on.
var presenceBackends = []struct {
	name  string
	start func(t *testing.T) presenceBackend
}{
	{"single", func(t *testing.T) presenceBackend {
		srv := redistest.Start(t)
		return presenceBackend{resume.RedisConfig{URLs: []string{srv.URL()}},
			func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }}
	}},
	{"sentinel", func(t *testing.T) presenceBackend {
		master := redistest.Start(t)
		sentinel := redistest.StartSentinel(t, master, "edgemaster")
		return presenceBackend{resume.RedisConfig{URLs: []string{sentinel.URL()}, SentinelMaster: "edgemaster"},
			func(t *testing.T, _ string, args ...string) (string, error) { return master.Do(t, args...) }}
	}},
	{"cluster", func(t *testing.T) presenceBackend {
		c := redistest.StartCluster(t, 3)
		return presenceBackend{resume.RedisConfig{URLs: strings.Split(c.URLs(), ",")},
			func(t *testing.T, key string, args ...string) (string, error) {
				return c.MasterOf(t, key).Do(t, args...)
			}}
	}},
}

// presenceNode is a node with presence on every channel, recording the
// joins and leaves it hears.
type presenceNode struct {
	*resume.Redis
	stop func() // ends Run, as if the node died: nothing is left

	mu    sync.Mutex
	heard []edge.PresenceChange
	more  chan struct{}
}

// startPresenceNode starts a node on b's Redis, with cfg's other fields.
func startPresenceNode(t *testing.T, b presenceBackend, cfg resume.RedisConfig) *presenceNode {
	t.Helper()
	cfg.URLs, cfg.SentinelMaster = b.conn.URLs, b.conn.SentinelMaster
	cfg.Presence = func(string) bool { return true }
	if cfg.PresenceTTL == 0 {
		cfg.PresenceTTL = presenceTTL
	}
	r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	n := &presenceNode{Redis: r, more: make(chan struct{}, 1)}
	r.OnPresence(func(_ context.Context, c edge.PresenceChange) {
		n.mu.Lock()
		n.heard = append(n.heard, c)
		n.mu.Unlock()
		select {
		case n.more <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	n.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(n.stop)
	return n
}

// take returns what the node heard since the last take.
func (n *presenceNode) take() []edge.PresenceChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	heard := n.heard
	n.heard = nil
	return heard
}

// waitHeard waits until the node heard every change of want, in any
// order, and nothing else, and returns them.
func (n *presenceNode) waitHeard(t *testing.T, within time.Duration, want ...edge.PresenceChange) {
	t.Helper()
	deadline := time.After(within)
	var got []edge.PresenceChange
	for {
		got = append(got, n.take()...)
		if len(got) >= len(want) {
			break
		}
		select {
		case <-n.more:
		case <-deadline:
			t.Fatalf("heard %+v within %v, want %+v", got, within, want)
		}
	}
	key := func(c edge.PresenceChange) string { return c.Channel + " " + c.Event + " " + c.Member.Conn }
	sort := func(cs []edge.PresenceChange) {
		slices.SortFunc(cs, func(a, b edge.PresenceChange) int { return strings.Compare(key(a), key(b)) })
	}
	sort(got)
	sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("heard %+v, want %+v", got, want)
	}
}

// quiet checks that the node heard nothing: an announcement sent by the
// store before a later one that it did hear would be there by now, as
// one connection relays both in order.
func (n *presenceNode) quiet(t *testing.T) {
	t.Helper()
	if heard := n.take(); len(heard) > 0 {
		t.Fatalf("heard %+v, want nothing", heard)
	}
}

// wantMembers checks channel's count and listing.
func wantMembers(t *testing.T, n *presenceNode, channel string, limit, count int, among ...edge.Member) {
	t.Helper()
	list, got, err := n.Members(context.Background(), channel, limit)
	if err != nil {
		t.Fatal(err)
	}
	if got != count || len(list) != min(limit, count) {
		t.Fatalf("%s: %d listed of %d, want %d of %d", channel, len(list), got, min(limit, count), count)
	}
	for _, m := range list {
		if among != nil && !slices.Contains(among, m) {
			t.Fatalf("%s: lists %+v, want one of %+v", channel, m, among)
		}
	}
}

func join(c string, m edge.Member) edge.PresenceChange {
	return edge.PresenceChange{Channel: c, Event: edge.EventJoin, Member: m}
}

func leave(c string, m edge.Member) edge.PresenceChange {
	return edge.PresenceChange{Channel: c, Event: edge.EventLeave, Member: m}
}

// Joins, re-joins and leaves on one node are listed and counted on
// another, which hears them; a limit bounds the list, never the count.
func TestRedisPresence(t *testing.T) {
	for _, be := range presenceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			a, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
			ctx := context.Background()
			for _, ch := range []string{"room", "hall"} {
				if err := w.Watch(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			alice := edge.Member{Conn: "n1-1", Sub: "alice", Node: "n1"}
			bob := edge.Member{Conn: "n1-2", Info: `{"name":"Bob <b@x>"}`, Node: "n1"}
			carol := edge.Member{Conn: "n2-1", Sub: "carol", Node: "n2"}
			steps := []struct {
				name  string
				do    func() error
				room  int
				heard []edge.PresenceChange
			}{
				{"alice joins", func() error { return a.Join(ctx, "room", alice) }, 1, []edge.PresenceChange{join("room", alice)}},
				{"alice joins again: replaced, not announced", func() error { return a.Join(ctx, "room", alice) }, 1, nil},
				{"bob joins", func() error { return a.Join(ctx, "room", bob) }, 2, []edge.PresenceChange{join("room", bob)}},
				{"carol joins on the watching node", func() error { return w.Join(ctx, "room", carol) }, 3, []edge.PresenceChange{join("room", carol)}},
				{"alice joins another channel", func() error { return a.Join(ctx, "hall", alice) }, 3, []edge.PresenceChange{join("hall", alice)}},
				{"alice leaves", func() error { return a.Leave(ctx, "room", alice.Conn) }, 2, []edge.PresenceChange{leave("room", alice)}},
				{"alice leaves again: nothing", func() error { return a.Leave(ctx, "room", alice.Conn) }, 2, nil},
				{"a stranger leaves: nothing", func() error { return w.Leave(ctx, "room", "x") }, 2, nil},
				{"a bad conn leaves: nothing", func() error { return w.Leave(ctx, "room", "a b") }, 2, nil},
				{"carol leaves from the other node", func() error { return a.Leave(ctx, "room", carol.Conn) }, 1, []edge.PresenceChange{leave("room", carol)}},
			}
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if s.heard == nil {
					// A join of a sentinel member, heard after anything
					// the step announced, and then taken back.
					probe := edge.Member{Conn: "probe", Node: "n9"}
					if err := a.Join(ctx, "hall", probe); err != nil {
						t.Fatal(err)
					}
					w.waitHeard(t, 10*time.Second, join("hall", probe))
					if err := a.Leave(ctx, "hall", probe.Conn); err != nil {
						t.Fatal(err)
					}
					w.waitHeard(t, 10*time.Second, leave("hall", probe))
				} else {
					w.waitHeard(t, 10*time.Second, s.heard...)
				}
				wantMembers(t, w, "room", 10, s.room, alice, bob, carol)
			}
			wantMembers(t, a, "room", 10, 1, bob)
			wantMembers(t, w, "hall", 10, 1, alice)
			wantMembers(t, w, "nowhere", 10, 0)
			w.quiet(t)
		})
	}
}

// A listing returns at most limit members, and counts all of them.
func TestRedisPresenceLimit(t *testing.T) {
	for _, be := range presenceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			n := startPresenceNode(t, b, resume.RedisConfig{})
			ctx := context.Background()
			var all []edge.Member
			for i := range 50 {
				m := edge.Member{Conn: fmt.Sprint("c", i), Node: "n"}
				all = append(all, m)
				if err := n.Join(ctx, "big", m); err != nil {
					t.Fatal(err)
				}
			}
			for _, limit := range []int{-1, 0, 1, 49, 50, 100, 1 << 20} {
				t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
					wantMembers(t, n, "big", max(limit, 0), 50, all...)
				})
			}
		})
	}
}

// A node that dies (its Run ends, nothing left) has its members vanish
// within the TTL and a sweep; another node that watches the channel
// announces their leaves, once. The keys are gone after the TTL.
func TestRedisPresenceNodeDies(t *testing.T) {
	for _, be := range presenceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			dead, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
			other := startPresenceNode(t, b, resume.RedisConfig{})
			ctx := context.Background()
			if err := w.Watch(ctx, "d"); err != nil {
				t.Fatal(err)
			}
			var joins, leaves []edge.PresenceChange
			for i := range 3 {
				m := edge.Member{Conn: fmt.Sprint("dead-", i), Node: "dead"}
				if err := dead.Join(ctx, "d", m); err != nil {
					t.Fatal(err)
				}
				joins, leaves = append(joins, join("d", m)), append(leaves, leave("d", m))
			}
			alive := edge.Member{Conn: "alive", Node: "other"}
			if err := other.Join(ctx, "d", alive); err != nil {
				t.Fatal(err)
			}
			w.waitHeard(t, 10*time.Second, append(joins, join("d", alive))...)
			// Refreshed, the members outlive the TTL: checked over two.
			tick := time.NewTicker(presenceTTL / 4)
			defer tick.Stop()
			for end := time.Now().Add(2 * presenceTTL); time.Now().Before(end); <-tick.C {
				wantMembers(t, w, "d", 10, 4)
			}
			dead.stop()
			died := time.Now()
			w.waitHeard(t, presenceTTL+presenceTTL/3+5*time.Second, leaves...)
			t.Logf("the members of a node that died vanished after %v (TTL %v)", time.Since(died), presenceTTL)
			wantMembers(t, w, "d", 10, 1, alive)
			if err := other.Leave(ctx, "d", alive.Conn); err != nil {
				t.Fatal(err)
			}
			w.waitHeard(t, 10*time.Second, leave("d", alive))
			for _, key := range []string{"edge:{d}:members", "edge:{d}:member-info"} {
				if n, err := b.do(t, key, "EXISTS", key); err != nil || n != "0" {
					t.Errorf("%s: EXISTS %s, %v; want it gone with the last member", key, n, err)
				}
			}
		})
	}
}
