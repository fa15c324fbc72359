package edge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

func TestMemberToken(t *testing.T) {
	token := edge.NewMemberToken()
	tests := []struct {
		name  string
		token string
		valid bool
	}{
		{"fresh", token, true},
		{"another fresh", edge.NewMemberToken(), true},
		{"empty", "", false},
		{"upper case", strings.ToUpper(token[:1]) + "A" + token[2:], false},
		{"short", token[:31], false},
		{"long", token + "0", false},
		{"not hex", "z" + token[1:], false},
		{"a conn id", edge.PollConn(token, ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := edge.ValidMemberToken(tt.token); got != tt.valid {
				t.Fatalf("ValidMemberToken(%q) = %v, want %v", tt.token, got, tt.valid)
			}
		})
	}
	conn := edge.PollConn(token, "alice")
	if conn != edge.PollConn(token, "alice") || conn == edge.PollConn(token, "bob") || !strings.HasPrefix(conn, "poll-") || len(conn) != 25 || strings.Contains(token, conn[5:]) {
		t.Fatalf("PollConn = %q: want the same for the same token and sub, another for another sub, and nothing of the token", conn)
	}
}

// A long-poll member is listed from PollMember until the grace has
// passed after its poll is answered; a poll within the grace keeps it;
// StopPresence leaves it at once.
func TestPollMemberGrace(t *testing.T) {
	const grace = 50 * time.Millisecond
	h, _ := newHub(t, presenceConfig)
	m := edge.Member{Conn: edge.PollConn(edge.NewMemberToken(), ""), Info: "poller"}
	done, ok := h.PollMember(m, []string{"p.a", "news"}, grace)
	if !ok {
		t.Fatal("PollMember refused a member of a presence channel")
	}
	if got := waitCount(t, h, "p.a", 1)[0]; got != (edge.Member{Conn: m.Conn, Info: "poller", Node: "n1"}) {
		t.Fatalf("listed %+v, want %+v on n1", got, m)
	}
	done()
	again, _ := h.PollMember(m, []string{"p.a"}, grace) // the next poll, within the grace
	<-time.After(4 * grace)
	waitCount(t, h, "p.a", 1)
	again()
	waitCount(t, h, "p.a", 0)
	if n := h.PollMembers(); n != 0 {
		t.Fatalf("%d poll members kept after the grace, want 0", n)
	}

	if _, ok := h.PollMember(m, []string{"news"}, grace); ok {
		t.Fatal("PollMember took a member of no presence channel")
	}
	done, _ = h.PollMember(m, []string{"p.b"}, time.Hour)
	done()
	waitCount(t, h, "p.b", 1)
	h.StopPresence(context.Background())
	if _, n, _ := h.Members(context.Background(), "p.b", 10); n != 0 || h.PollMembers() != 0 {
		t.Fatalf("%d members (%d kept) once stopped, want 0", n, h.PollMembers())
	}
	if _, ok := h.PollMember(m, []string{"p.b"}, time.Hour); ok {
		t.Fatal("PollMember took a member after StopPresence")
	}
}
