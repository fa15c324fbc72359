package transports_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// pollMemberAnswer is what these tests read of a long-poll answer.
type pollMemberAnswer struct {
	Cursor string `json:"cursor"`
	Member string `json:"member"`
	errorAnswer
}

// pollMemberToken polls e once for channels without a member token, and
// returns the token and cursor of the answer: such a poll is no member.
func pollMemberToken(t *testing.T, e *testEdge, channels []string) pollMemberAnswer {
	t.Helper()
	return pollAs(t, e, channels, "", "timeout", "0")
}

// pollAs polls e once for channels with the member token (none when
// empty) and the query's other parameters, and returns the answer.
func pollAs(t *testing.T, e *testEdge, channels []string, member string, query ...string) pollMemberAnswer {
	t.Helper()
	q := append(channelQuery(channels), query...)
	if member != "" {
		q = append(q, "member", member)
	}
	var a pollMemberAnswer
	if st := getJSON(t, e.url("/v1/subscribe", q...), nil, &a); st != http.StatusOK {
		t.Fatalf("poll %v: %d %+v", q, st, a.Error)
	}
	if !edge.ValidMemberToken(a.Member) || (member != "" && a.Member != member) {
		t.Fatalf("poll %v: member %q, want a token (the one sent, %q, if any)", q, a.Member, member)
	}
	return a
}

// nextOf returns the next join or leave s hears of a member other than
// the listener itself.
func nextOf(t *testing.T, s presenceSub) heard {
	t.Helper()
	return nextHeard(t, s, func(h heard) bool { return h.event != "" && h.member.Info != "listener" })
}

// TestPresencePollMember: on every backend, a long-poll subscriber is a
// member from its first poll, listed between its polls, its polls within
// the grace announce nothing more, and once they stop it leaves, heard
// once, after the grace.
func TestPresencePollMember(t *testing.T) {
	for _, b := range contractBackends {
		if !presenceOn(b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			const grace = 2 * time.Second
			e := presenceEdgeWith(t, presenceBroker(t, b.start(t)), transports.Config{PollMemberGrace: grace, Hub: edge.Config{Node: "n1"}})
			const room = "room.poll"
			listener := openPresenceSSE(t, e, []string{room}, "presence", "1", "info", "listener")
			waitMembers(t, e, room, 1)

			a := pollMemberToken(t, e, []string{room})
			if l := getPresence(t, e, room); l.Count != 1 {
				t.Fatalf("a poll without a member token is listed: %+v", l)
			}
			a = pollAs(t, e, []string{room}, a.Member, "timeout", "0", "info", "poller", "since", a.Cursor)
			answered := time.Now()
			poller := edge.Member{Conn: edge.PollConn(a.Member, ""), Info: "poller", Node: "n1"}
			if h := nextOf(t, listener); h.event != "join" || h.member != poller {
				t.Fatalf("heard %+v, want the join of %+v", h, poller)
			}
			l := getPresence(t, e, room)
			if time.Since(answered) < grace && (l.Count != 2 || !containsMember(l.Members, poller)) {
				t.Fatalf("a moment after its answer, the long-poll is not listed: %+v", l)
			}
			for range 3 {
				pollAs(t, e, []string{room}, a.Member, "timeout", "0", "info", "poller", "since", a.Cursor)
			}
			// A sentinel's join, heard before anything the polls might
			// have announced since.
			sentinel := openSSE(t, e.url("/v1/subscribe", "channel", room, "info", "sentinel"), nil)
			sentinel.lastID()
			if h := nextOf(t, listener); h.event != "join" || h.member.Info != "sentinel" {
				t.Fatalf("heard %+v, want the sentinel's join (the polls announced nothing)", h)
			}
			stopped := time.Now()
			if h := nextOf(t, listener); h.event != "leave" || h.member != poller {
				t.Fatalf("heard %+v, want the long-poll's leave", h)
			}
			if d := time.Since(stopped); d < grace/2 {
				t.Fatalf("the long-poll left %v after its last poll, before the grace (%v)", d, grace)
			}
			waitMembers(t, e, room, 2)
			sentinel.close()
			if h := nextOf(t, listener); h.event != "leave" || h.member.Info != "sentinel" {
				t.Fatalf("heard %+v, want the sentinel's leave (the long-poll left once)", h)
			}
		})
	}
}

// containsMember reports whether ms holds m.
func containsMember(ms []edge.Member, m edge.Member) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// TestPresencePollMemberFleet: on Redis, polls that alternate between two
// nodes, each held longer than the grace so that the node left behind
// ends its grace meanwhile, make one member: one join, no leave while
// they go on, listed on the node of the last poll; one leave after.
func TestPresencePollMemberFleet(t *testing.T) {
	for _, b := range contractBackends {
		if b.name != "redis" && b.name != "redis-cluster" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			const grace = 500 * time.Millisecond
			nodes := []*testEdge{
				presenceEdgeWith(t, presenceBroker(t, use), transports.Config{PollMemberGrace: grace, Hub: edge.Config{Node: "node-a"}}),
				presenceEdgeWith(t, presenceBroker(t, use), transports.Config{PollMemberGrace: grace, Hub: edge.Config{Node: "node-b"}}),
			}
			const room = "room.fleet-poll"
			listener := openPresenceSSE(t, nodes[1], []string{room}, "presence", "1", "info", "listener")
			waitMembers(t, nodes[0], room, 1)

			a := pollMemberToken(t, nodes[1], []string{room})
			a = pollAs(t, nodes[0], []string{room}, a.Member, "timeout", "0", "since", a.Cursor)
			conn := edge.PollConn(a.Member, "")
			if h := nextOf(t, listener); h.event != "join" || h.member.Conn != conn || h.member.Node != "node-a" {
				t.Fatalf("heard %+v, want the join of %s on node-a", h, conn)
			}
			for i := 1; i <= 4; i++ {
				n := nodes[i%2]
				a = pollAs(t, n, []string{room}, a.Member, "timeout", "1500ms", "since", a.Cursor)
				l := getPresence(t, n, room)
				var on string
				for _, m := range l.Members {
					if m.Conn == conn {
						on = m.Node
					}
				}
				if want := []string{"node-a", "node-b"}[i%2]; l.Count != 2 || on != want {
					t.Fatalf("poll %d: lists %+v, want %s on %s", i, l, conn, want)
				}
			}
			sentinel := openSSE(t, nodes[0].url("/v1/subscribe", "channel", room, "info", "sentinel"), nil)
			sentinel.lastID()
			if h := nextOf(t, listener); h.event != "join" || h.member.Info != "sentinel" {
				t.Fatalf("heard %+v, want the sentinel's join (no leave nor join while the polls went on)", h)
			}
			if h := nextOf(t, listener); h.event != "leave" || h.member.Conn != conn {
				t.Fatalf("heard %+v, want the long-poll's leave once its polls stopped", h)
			}
			waitMembers(t, nodes[1], room, 2)
		})
	}
}

// TestPresencePollMemberRefusals: a member= that is not a token an edge
// gave is a 400; the public conn id of a member, passed as its token,
// neither makes it leave nor takes it over.
func TestPresencePollMemberRefusals(t *testing.T) {
	e := presenceEdgeWith(t, resume.NewMemory(resume.MemoryConfig{}), transports.Config{PollMemberGrace: time.Hour})
	const room = "room.refuse"
	a := pollAs(t, e, []string{room}, pollMemberToken(t, e, []string{room}).Member, "timeout", "0")
	conn := edge.PollConn(a.Member, "")
	waitMembers(t, e, room, 1)
	for _, tt := range []struct{ name, member string }{
		{"empty", ""},
		{"upper case", strings.ToUpper(a.Member)},
		{"31 digits", a.Member[:31]},
		{"33 digits", a.Member + "0"},
		{"not hex", "g" + a.Member[1:]},
		{"the public conn id", conn},
		{"the conn id's digits", strings.TrimPrefix(conn, "poll-")},
		{"the conn id's digits, padded", strings.TrimPrefix(conn, "poll-") + "000000000000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ans pollMemberAnswer
			st := getJSON(t, e.url("/v1/subscribe", "channel", room, "timeout", "0", "member", tt.member), nil, &ans)
			if tt.name == "the conn id's digits, padded" {
				// A well-formed token (an edge may have given it): a
				// member of its own, not the one whose id it copies.
				if st != http.StatusOK || edge.PollConn(ans.Member, "") == conn {
					t.Fatalf("%d %+v, want a member of its own", st, ans)
				}
				return
			}
			if st != http.StatusBadRequest || ans.Error.Code != "bad_request" || !strings.Contains(ans.Error.Message, "member=") {
				t.Fatalf("%d %+v, want 400 bad_request naming member=", st, ans)
			}
		})
	}
	l := waitMembers(t, e, room, 2)
	if !containsMember(l.Members, edge.Member{Conn: conn, Node: e.srv.Hub().Node()}) {
		t.Fatalf("lists %+v, want %s still", l, conn)
	}
	// A poll without presence channels gets no token.
	var news pollMemberAnswer
	if st := getJSON(t, e.url("/v1/subscribe", "channel", "news", "timeout", "0"), nil, &news); st != http.StatusOK || news.Member != "" {
		t.Fatalf("a poll of no presence channel: %d, member %q, want none", st, news.Member)
	}
}

// TestPresencePollMemberChannels: a channel a member's next poll lacks is
// left at once, not after the grace; past Hub.MaxPollMembers a new
// long-poll is no member, and the refusal is counted.
func TestPresencePollMemberChannels(t *testing.T) {
	e := presenceEdgeWith(t, resume.NewMemory(resume.MemoryConfig{}), transports.Config{PollMemberGrace: time.Hour, Hub: edge.Config{MaxPollMembers: 1}})
	a := pollAs(t, e, []string{"room.a", "room.b"}, pollMemberToken(t, e, []string{"room.a"}).Member, "timeout", "0")
	waitMembers(t, e, "room.b", 1)
	pollAs(t, e, []string{"room.a"}, a.Member, "timeout", "0")
	waitMembers(t, e, "room.b", 0)
	waitMembers(t, e, "room.a", 1)

	failures := e.srv.Hub().PresenceFailures()
	pollAs(t, e, []string{"room.a"}, pollMemberToken(t, e, []string{"room.a"}).Member, "timeout", "0") // a second member: over the bound
	if n := e.srv.Hub().PresenceFailures(); n != failures+1 {
		t.Fatalf("presence failures %d, want %d: the refused member is counted", n, failures+1)
	}
	if l := getPresence(t, e, "room.a"); l.Count != 1 || e.srv.Hub().PollMembers() != 1 {
		t.Fatalf("lists %+v with %d poll members kept, want the first alone", l, e.srv.Hub().PollMembers())
	}
}
