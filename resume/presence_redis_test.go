package resume_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
			bobOnN2 := edge.Member{Conn: bob.Conn, Info: bob.Info, Node: "n2"} // a long-poll member moves so
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
				{"alice leaves", func() error { return a.Leave(ctx, "room", alice.Conn, "") }, 2, []edge.PresenceChange{leave("room", alice)}},
				{"alice leaves again: nothing", func() error { return a.Leave(ctx, "room", alice.Conn, "") }, 2, nil},
				{"a stranger leaves: nothing", func() error { return w.Leave(ctx, "room", "x", "") }, 2, nil},
				{"a bad conn leaves: nothing", func() error { return w.Leave(ctx, "room", "a b", "") }, 2, nil},
				{"carol leaves from the other node", func() error { return a.Leave(ctx, "room", carol.Conn, "") }, 1, []edge.PresenceChange{leave("room", carol)}},
				{"n2 leaves bob, n1's: nothing", func() error { return w.Leave(ctx, "room", bob.Conn, "n2") }, 1, nil},
				{"bob moves to n2 and n1 leaves him: nothing", func() error {
					if err := w.Join(ctx, "room", bobOnN2); err != nil {
						return err
					}
					return a.Leave(ctx, "room", bob.Conn, "n1")
				}, 1, nil},
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
					if err := a.Leave(ctx, "hall", probe.Conn, ""); err != nil {
						t.Fatal(err)
					}
					w.waitHeard(t, 10*time.Second, leave("hall", probe))
				} else {
					w.waitHeard(t, 10*time.Second, s.heard...)
				}
				wantMembers(t, w, "room", 10, s.room, alice, bob, carol, bobOnN2)
			}
			wantMembers(t, a, "room", 10, 1, bobOnN2)
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
// announces their leaves, once: on a channel where another node keeps a
// member, and on one where nobody writes any more (whose keys must
// outlive the members until a sweep found them). The keys are gone after
// their last member.
func TestRedisPresenceNodeDies(t *testing.T) {
	for _, be := range presenceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			dead, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
			other := startPresenceNode(t, b, resume.RedisConfig{})
			ctx := context.Background()
			var joins, leaves []edge.PresenceChange
			for _, ch := range []string{"shared", "alone"} {
				if err := w.Watch(ctx, ch); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					m := edge.Member{Conn: fmt.Sprint("dead-", i), Node: "dead"}
					if err := dead.Join(ctx, ch, m); err != nil {
						t.Fatal(err)
					}
					joins, leaves = append(joins, join(ch, m)), append(leaves, leave(ch, m))
				}
			}
			alive := edge.Member{Conn: "alive", Node: "other"}
			if err := other.Join(ctx, "shared", alive); err != nil {
				t.Fatal(err)
			}
			w.waitHeard(t, 10*time.Second, append(joins, join("shared", alive))...)
			// Refreshed, the members outlive the TTL: checked over two.
			tick := time.NewTicker(presenceTTL / 4)
			defer tick.Stop()
			for end := time.Now().Add(2 * presenceTTL); time.Now().Before(end); <-tick.C {
				wantMembers(t, w, "shared", 10, 4)
				wantMembers(t, w, "alone", 10, 3)
			}
			dead.stop()
			died := time.Now()
			w.waitHeard(t, presenceTTL+presenceTTL/3+5*time.Second, leaves...)
			t.Logf("the members of a node that died vanished after %v (TTL %v)", time.Since(died), presenceTTL)
			wantMembers(t, w, "shared", 10, 1, alive)
			wantMembers(t, w, "alone", 10, 0)
			if err := other.Leave(ctx, "shared", alive.Conn, ""); err != nil {
				t.Fatal(err)
			}
			w.waitHeard(t, 10*time.Second, leave("shared", alive))
			for _, key := range []string{"edge:{shared}:members", "edge:{shared}:member-info", "edge:{alone}:members", "edge:{alone}:member-info"} {
				if n, err := b.do(t, key, "EXISTS", key); err != nil || n != "0" {
					t.Errorf("%s: EXISTS %s, %v; want it gone with the last member", key, n, err)
				}
			}
		})
	}
}

// The presence functions refuse what they cannot take, with an error that
// says what is wrong, and write nothing: a backend may call them directly.
func TestRedisPresenceFunctionRefuses(t *testing.T) {
	member := func(conn string) string { return `{"conn":"` + conn + `","node":"n"}` }
	long := strings.Repeat("c", 129)
	big := `{"conn":"c","info":"` + strings.Repeat("i", 2048) + `"}`
	var tooMany []string
	for i := range 1001 {
		tooMany = append(tooMany, fmt.Sprint("c", i), member(fmt.Sprint("c", i)))
	}
	cases := []struct {
		name    string
		args    []string // after FCALL
		wantErr string   // "" for a call that works
	}{
		{"join", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", member("c")}, ""},
		{"join without a member", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c"}, "ERR edge: usage: FCALL edge_presence_join"},
		{"join with two keys", []string{"edge_presence_join", "2", "edge:{p}", "edge:{p}x", "1000", "c", member("c")}, "ERR edge: usage"},
		{"join on a bad key", []string{"edge_presence_join", "1", "edge:{p q}", "1000", "c", member("c")}, "the key must be edge:{channel}"},
		{"join on a bare key", []string{"edge_presence_join", "1", "p", "1000", "c", member("c")}, "the key must be edge:{channel}"},
		{"join with TTL 0", []string{"edge_presence_join", "1", "edge:{p}", "0", "c", member("c")}, "ttl-ms must be a whole number of 1 to 86400000"},
		{"join with TTL over a day", []string{"edge_presence_join", "1", "edge:{p}", "86400001", "c", member("c")}, "ttl-ms must be"},
		{"join with TTL 1.5", []string{"edge_presence_join", "1", "edge:{p}", "1.5", "c", member("c")}, "ttl-ms must be"},
		{"join with TTL x", []string{"edge_presence_join", "1", "edge:{p}", "x", "c", member("c")}, "ttl-ms must be"},
		{"join with an empty conn", []string{"edge_presence_join", "1", "edge:{p}", "1000", "", member("")}, "conn must be 1-128 bytes of visible ASCII"},
		{"join with a space in conn", []string{"edge_presence_join", "1", "edge:{p}", "1000", "a b", member("a b")}, "conn must be"},
		{"join with a NUL in conn", []string{"edge_presence_join", "1", "edge:{p}", "1000", "a\x00", `{"conn":"a\u0000"}`}, "conn must be"},
		{"join with a conn of 129 bytes", []string{"edge_presence_join", "1", "edge:{p}", "1000", long, member(long)}, "conn must be"},
		{"join with a member not JSON", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", "{conn=c}"}, "member must be a JSON object of at most 2048 bytes"},
		{"join with a JSON array", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", `["c"]`}, "member must be a JSON object"},
		{"join with a member over 2 KiB", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", big}, "member must be a JSON object"},
		{"join with another conn's member", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", member("d")}, `"conn" must be its conn`},
		{"join with a member without conn", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", `{"node":"n"}`}, `"conn" must be its conn`},
		{"join with a numeric sub", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", `{"conn":"c","sub":1}`}, `"sub" must be a string`},
		{"join with an object info", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", `{"conn":"c","info":{}}`}, `"info" must be a string`},
		{"join with a boolean node", []string{"edge_presence_join", "1", "edge:{p}", "1000", "c", `{"conn":"c","node":true}`}, `"node" must be a string`},
		{"leave", []string{"edge_presence_leave", "1", "edge:{p}", "c"}, ""},
		{"leave without a conn", []string{"edge_presence_leave", "1", "edge:{p}"}, "ERR edge: usage: FCALL edge_presence_leave"},
		{"leave with a bad conn", []string{"edge_presence_leave", "1", "edge:{p}", "a\tb"}, "conn must be"},
		{"leave on a bad key", []string{"edge_presence_leave", "1", "edge:{}", "c"}, "the key must be"},
		{"leave of a node's member", []string{"edge_presence_leave", "1", "edge:{p}", "c", "n"}, ""},
		{"leave with a node and more", []string{"edge_presence_leave", "1", "edge:{p}", "c", "n", "x"}, "ERR edge: usage: FCALL edge_presence_leave"},
		{"members", []string{"edge_presence_members", "1", "edge:{p}", "10"}, ""},
		{"members, limit 0", []string{"edge_presence_members", "1", "edge:{p}", "0"}, ""},
		{"members without a limit", []string{"edge_presence_members", "1", "edge:{p}"}, "ERR edge: usage: FCALL edge_presence_members"},
		{"members, limit -1", []string{"edge_presence_members", "1", "edge:{p}", "-1"}, "limit must be a whole number of 0 to 10000"},
		{"members, limit 10001", []string{"edge_presence_members", "1", "edge:{p}", "10001"}, "limit must be"},
		{"members, limit 2.5", []string{"edge_presence_members", "1", "edge:{p}", "2.5"}, "limit must be"},
		{"refresh", []string{"edge_presence_refresh", "1", "edge:{p}", "1000", "c", member("c")}, ""},
		{"refresh, another member for one there: not checked, not written", []string{"edge_presence_refresh", "1", "edge:{p}", "1000", "c", member("d")}, ""},
		{"refresh, a sweep only", []string{"edge_presence_refresh", "1", "edge:{p}", "1000"}, ""},
		{"refresh without a TTL", []string{"edge_presence_refresh", "1", "edge:{p}"}, "ERR edge: usage: FCALL edge_presence_refresh"},
		{"refresh, a conn without a member", []string{"edge_presence_refresh", "1", "edge:{p}", "1000", "c"}, "ERR edge: usage"},
		{"refresh, a bad member after a good one", []string{"edge_presence_refresh", "1", "edge:{p}", "1000", "e", member("e"), "f", member("g")}, `"conn" must be its conn`},
		{"refresh, 1001 members", append([]string{"edge_presence_refresh", "1", "edge:{p}", "1000"}, tooMany...), "at most 1000 members per refresh"},
		{"refresh with TTL 0", []string{"edge_presence_refresh", "1", "edge:{p}", "0"}, "ttl-ms must be"},
	}
	for _, be := range presenceBackends {
		t.Run(be.name, func(t *testing.T) {
			b := be.start(t)
			startPresenceNode(t, b, resume.RedisConfig{}) // loads the function
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					reply, err := b.do(t, "edge:{p}", append([]string{"FCALL"}, tc.args...)...)
					if tc.wantErr == "" {
						if err != nil {
							t.Fatalf("answered %v", err)
						}
						return
					}
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("answered %q, %v; want an error with %q", reply, err, tc.wantErr)
					}
				})
			}
			// Only the calls that worked wrote: c joined, left and was
			// refreshed back; nothing of e, f, g or the 1001.
			if got, err := b.do(t, "edge:{p}", "ZRANGE", "edge:{p}:members", "0", "-1"); err != nil || got != "c" {
				t.Fatalf("members %q, %v; want only c", got, err)
			}
			if got, err := b.do(t, "edge:{p}", "HGETALL", "edge:{p}:member-info"); err != nil || got != "c\n"+member("c") {
				t.Fatalf("member-info %q, %v; want only c's", got, err)
			}
		})
	}
}

// Join refuses a member the function would refuse, before calling it.
func TestRedisPresenceJoinRefuses(t *testing.T) {
	b := presenceBackends[0].start(t)
	n := startPresenceNode(t, b, resume.RedisConfig{})
	for _, tc := range []struct {
		name string
		m    edge.Member
	}{
		{"empty conn", edge.Member{Node: "n"}},
		{"conn with a space", edge.Member{Conn: "a b", Node: "n"}},
		{"conn of 129 bytes", edge.Member{Conn: strings.Repeat("c", 129), Node: "n"}},
		{"info with a newline", edge.Member{Conn: "c", Info: "a\nb", Node: "n"}},
		{"info over 256 bytes", edge.Member{Conn: "c", Info: strings.Repeat("i", 257), Node: "n"}},
		{"member over 2 KiB", edge.Member{Conn: "c", Sub: strings.Repeat("s", 2048), Node: "n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := n.Join(context.Background(), "p", tc.m); !errors.Is(err, edge.ErrBadRequest) {
				t.Fatalf("Join: %v, want ErrBadRequest", err)
			}
		})
	}
	// The longest member the edge makes fits: a conn of 128 bytes, info
	// of 256 quotes (each escaped), a long sub and node.
	long := edge.Member{Conn: strings.Repeat("c", 128), Sub: strings.Repeat("s", 900), Info: strings.Repeat(`"`, 256), Node: strings.Repeat("n", 200)}
	if err := n.Join(context.Background(), "p", long); err != nil {
		t.Fatalf("Join of the longest member: %v", err)
	}
	wantMembers(t, n, "p", 10, 1, long)
}

// After Redis restarts empty (no persistence), each node's refresh adds
// its members again, without announcing them, and loads the function the
// restart lost.
func TestRedisPresenceAfterRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "no")
	b := presenceBackend{resume.RedisConfig{URLs: []string{srv.URL()}},
		func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }}
	a, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
	ctx := context.Background()
	if err := w.Watch(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	var members []edge.Member
	var joins []edge.PresenceChange
	for i := range 3 {
		m := edge.Member{Conn: fmt.Sprint("a-", i), Sub: "s", Node: "a"}
		if err := a.Join(ctx, "r", m); err != nil {
			t.Fatal(err)
		}
		members, joins = append(members, m), append(joins, join("r", m))
	}
	w.waitHeard(t, 10*time.Second, joins...)
	srv.Kill(t)
	srv.Restart(t)
	if n, _ := srv.Do(t, "EXISTS", "edge:{r}:members"); n != "0" {
		t.Fatalf("the restarted Redis kept the members (EXISTS %s): the test needs one that lost them", n)
	}
	deadline := time.Now().Add(presenceTTL + 10*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		list, count, err := w.Members(ctx, "r", 10)
		if err == nil && count == 3 {
			for _, m := range list {
				if !slices.Contains(members, m) {
					t.Fatalf("after the restart lists %+v, want one of %+v", m, members)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d members, %v; want 3 within %v", count, err, presenceTTL/3)
		}
	}
	// The relay is back (a message goes through), and heard no join.
	if err := w.Watch(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	probe := edge.Member{Conn: "probe", Node: "a"}
	if err := a.Join(ctx, "r", probe); err != nil {
		t.Fatal(err)
	}
	w.waitHeard(t, 10*time.Second, join("r", probe))
}

// A node of the release before presence loads its library (FUNCTION LOAD
// REPLACE, at start or when a publish finds its function missing): it
// lacks the presence functions, so this release's calls find them missing
// and load this release's library again, whose edge_publish keeps taking
// the previous release's calls. Presence is never announced on the live
// channel, whose every payload the previous release reads as a message.
func TestRedisPresenceOverPreviousRelease(t *testing.T) {
	srv := redistest.Start(t)
	b := presenceBackend{resume.RedisConfig{URLs: []string{srv.URL()}},
		func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }}
	n, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
	ctx := context.Background()
	if err := w.Watch(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	previous, err := os.ReadFile("testdata/edge-before-presence.lua")
	if err != nil {
		t.Fatal(err)
	}
	loadPrevious := func() {
		t.Helper()
		if _, err := srv.Do(t, "FUNCTION", "LOAD", "REPLACE", string(previous)); err != nil {
			t.Fatal(err)
		}
	}
	// What the previous release's nodes see: the live channel.
	sub := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { sub.Close() })
	live := sub.SSubscribe(ctx, "edge:{u}:live")
	t.Cleanup(func() { live.Close() })
	if _, err := live.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	loadPrevious()
	m := edge.Member{Conn: "n-1", Sub: "alice", Node: "n"}
	if err := n.Join(ctx, "u", m); err != nil {
		t.Fatalf("join over the previous release's library: %v", err)
	}
	w.waitHeard(t, 10*time.Second, join("u", m))
	loadPrevious()
	wantMembers(t, w, "u", 10, 1, m)
	loadPrevious()
	if err := n.Leave(ctx, "u", m.Conn, ""); err != nil {
		t.Fatalf("leave over the previous release's library: %v", err)
	}
	w.waitHeard(t, 10*time.Second, leave("u", m))

	// The previous release's publish, with its three options, works with
	// this release's library, and is the first thing on the live channel.
	reply, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{u}", "", "old node", "history-size", "1000", "history-ttl-ms", "3600000", "max-payload", "65536")
	if err != nil {
		t.Fatalf("the previous release's publish: %v", err)
	}
	msg, err := live.ReceiveTimeout(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p := msg.(*redis.Message).Payload; p != "0"+reply+"\n\nold node" {
		t.Fatalf("the live channel carried %q first, want the message %s", p, reply)
	}

	// The refresh, on its own, loads this release's library again.
	if err := n.Join(ctx, "u", m); err != nil {
		t.Fatal(err)
	}
	loadPrevious()
	deadline := time.Now().Add(presenceTTL + 10*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		list, err := srv.Do(t, "FUNCTION", "LIST", "LIBRARYNAME", "edge")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(list, "edge_presence_refresh") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh loaded this release's library again")
		}
	}
	wantMembers(t, w, "u", 10, 1, m)
}

// On a cluster a channel's presence lives in its slot, and follows it
// through failovers: the relay hears the channel's joins from its new
// master, and the refresh restores what a failover lost.
func TestRedisPresenceClusterFailover(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	b := presenceBackend{conn: resume.RedisConfig{URLs: strings.Split(c.URLs(), ",")}}
	a, w := startPresenceNode(t, b, resume.RedisConfig{}), startPresenceNode(t, b, resume.RedisConfig{})
	const ch = "moving"
	ctx := context.Background()
	if err := w.Watch(ctx, ch); err != nil {
		t.Fatal(err)
	}
	joined := []edge.Member{{Conn: "before", Node: "a"}}
	if err := a.Join(ctx, ch, joined[0]); err != nil {
		t.Fatal(err)
	}
	w.waitHeard(t, 10*time.Second, join(ch, joined[0]))
	// heardAgain joins new members until w hears one: an announcement
	// sent while w's relay moves to the new master is lost (best effort).
	heardAgain := func(name string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			m := edge.Member{Conn: fmt.Sprint(name, "-", i), Node: "a"}
			if err := a.Join(ctx, ch, m); err == nil {
				joined = append(joined, m)
			}
			wait := time.NewTimer(500 * time.Millisecond)
			select {
			case <-w.more:
			case <-wait.C:
			}
			wait.Stop()
			for _, c := range w.take() {
				if c.Event == edge.EventJoin && strings.HasPrefix(c.Member.Conn, name+"-") {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no join of %s heard within 20s", name)
			}
		}
	}
	// wantAll waits until channel lists every member a joined (the
	// refresh restores those a failover lost).
	wantAll := func() {
		t.Helper()
		deadline := time.Now().Add(presenceTTL + 20*time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for ; ; <-tick.C {
			list, count, err := w.Members(ctx, ch, 100)
			if err == nil && count == len(joined) && len(list) == count {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lists %d of %d members (%v), want all %d: %+v", len(list), count, err, len(joined), joined)
			}
		}
	}
	first := c.MasterOf(t, "edge:{"+ch+"}")
	second := c.ReplicasOf(t, first)[0]

	c.Failover(t, second)
	heardAgain("after-failover")
	wantAll()

	second.Kill(t) // first, its replica now, takes over again
	c.WaitMaster(t, first)
	heardAgain("after-kill")
	wantAll()
}

// Joins and leaves racing the refreshes (every 333ms here) leave Redis
// exactly with the members that stayed, and every member's announcements
// alternate join, leave, join..., ending as it ended: a refresh that
// reached Redis after a leave does not bring the member back.
func TestRedisPresenceChurn(t *testing.T) {
	srv := redistest.Start(t)
	b := presenceBackend{resume.RedisConfig{URLs: []string{srv.URL()}},
		func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }}
	a := startPresenceNode(t, b, resume.RedisConfig{PresenceTTL: time.Second})
	w := startPresenceNode(t, b, resume.RedisConfig{PresenceTTL: time.Second})
	ctx := context.Background()
	channels := []string{"churn0", "churn1", "churn2"}
	for _, ch := range channels {
		if err := w.Watch(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	const workers, conns, rounds = 6, 10, 40
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for round := range rounds {
				for i := range conns {
					m := edge.Member{Conn: fmt.Sprint("w", g, "-", i), Node: "a"}
					ch := channels[(g+i)%len(channels)]
					if err := a.Join(ctx, ch, m); err != nil {
						t.Error(err)
						return
					}
					// The odd ones stay after the last round.
					if round < rounds-1 || i%2 == 0 {
						if err := a.Leave(ctx, ch, m.Conn, ""); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	stay := workers * conns / 2
	// A last join per channel, heard after everything before it.
	for _, ch := range channels {
		if err := a.Join(ctx, ch, edge.Member{Conn: "last-" + ch, Node: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	heard := map[string][]string{}
	deadline := time.After(20 * time.Second)
	for lasts := 0; ; {
		for _, c := range w.take() {
			if strings.HasPrefix(c.Member.Conn, "last-") {
				lasts++
				continue
			}
			k := c.Channel + " " + c.Member.Conn
			heard[k] = append(heard[k], c.Event)
		}
		if lasts == len(channels) {
			break
		}
		select {
		case <-w.more:
		case <-deadline:
			t.Fatal("the last joins were not heard within 20s")
		}
	}
	stayed := 0
	for k, events := range heard {
		for i, e := range events {
			if want := []string{edge.EventJoin, edge.EventLeave}[i%2]; e != want {
				t.Fatalf("%s: announced %v: event %d is %s, want %s", k, events, i, e, want)
			}
		}
		if len(events)%2 == 1 {
			stayed++
		}
	}
	if stayed != stay {
		t.Fatalf("%d members' announcements end with a join, want %d", stayed, stay)
	}
	// Over two more refreshes, Redis holds exactly those that stayed.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(time.Second); time.Now().Before(end); <-tick.C {
		total := 0
		for _, ch := range channels {
			_, n, err := w.Members(ctx, ch, 0)
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		if total != stay+len(channels) {
			t.Fatalf("the channels count %d members, want %d", total, stay+len(channels))
		}
	}
	w.quiet(t)
}
