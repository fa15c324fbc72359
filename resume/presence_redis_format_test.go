package resume

import (
	"context"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// presenceChange reads the announcements the function sends, ignores a
// later version's, and refuses what is malformed.
func TestPresenceChange(t *testing.T) {
	alice := edge.Member{Conn: "c1", Sub: "alice", Info: "hi there", Node: "n1"}
	for _, tc := range []struct {
		name, payload string
		want          edge.PresenceChange
		ok, wantErr   bool
	}{
		{"join", `1 join {"conn":"c1","sub":"alice","info":"hi there","node":"n1"}`, edge.PresenceChange{Channel: "c", Event: edge.EventJoin, Member: alice}, true, false},
		{"leave", `1 leave {"conn":"c1","sub":"alice","info":"hi there","node":"n1"}`, edge.PresenceChange{Channel: "c", Event: edge.EventLeave, Member: alice}, true, false},
		{"leave of a member the hash lost (cjson escapes /)", `1 leave {"conn":"a\/b"}`, edge.PresenceChange{Channel: "c", Event: edge.EventLeave, Member: edge.Member{Conn: "a/b"}}, true, false},
		{"a later release's field", `1 join {"conn":"c1","since":5}`, edge.PresenceChange{Channel: "c", Event: edge.EventJoin, Member: edge.Member{Conn: "c1"}}, true, false},
		{"a later version", `2 arrive {"conn":"c1"} more`, edge.PresenceChange{}, false, false},
		{"unknown event", `1 wave {"conn":"c1"}`, edge.PresenceChange{}, false, true},
		{"no member", `1 join`, edge.PresenceChange{}, false, true},
		{"no conn", `1 join {"node":"n"}`, edge.PresenceChange{}, false, true},
		{"not JSON", `1 join conn`, edge.PresenceChange{}, false, true},
		{"empty", ``, edge.PresenceChange{}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := presenceChange("c", tc.payload)
			if (err != nil) != tc.wantErr || ok != tc.ok || got != tc.want {
				t.Fatalf("presenceChange(%q) = %+v, %v, %v; want %+v, %v, an error: %v", tc.payload, got, ok, err, tc.want, tc.ok, tc.wantErr)
			}
		})
	}
}

// FuzzPresenceChange: no announcement makes the parser panic, and what
// it accepts names a conn and a known event.
func FuzzPresenceChange(f *testing.F) {
	for _, s := range []string{`1 join {"conn":"c"}`, `1 leave {"conn":"c","node":"n"}`, `2 x`, `1 join {`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c, ok, err := presenceChange("c", payload)
		if ok && (err != nil || c.Member.Conn == "" || (c.Event != edge.EventJoin && c.Event != edge.EventLeave)) {
			t.Fatalf("accepted %q as %+v, %v", payload, c, err)
		}
	})
}

// A member that leaves while a refresh that holds it is on its way is
// not added back by it for good: the refresh, run after the leave,
// re-adds it, and the node removes it again once the refresh is answered.
func TestPresenceRefreshAfterLeave(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{PresenceTTL: edge.PresenceTTL})
	ctx := context.Background()
	m := edge.Member{Conn: "x", Node: "n"}
	if err := r.Join(ctx, "f", m); err != nil {
		t.Fatal(err)
	}
	calls := r.refreshCalls(ctx) // built before the leave
	if err := r.Leave(ctx, "f", m.Conn, ""); err != nil {
		t.Fatal(err)
	}
	r.runRefreshes(ctx, calls) // reaches Redis after it
	if got, _ := srv.Do(t, "ZSCORE", "edge:{f}:members", "x"); got != "" {
		t.Fatalf("the member that left is listed again (expiry %s)", got)
	}
	if got, _ := srv.Do(t, "HEXISTS", "edge:{f}:member-info", "x"); got != "0" {
		t.Fatalf("the member that left keeps its info (HEXISTS %s)", got)
	}
	if _, n, err := r.Members(ctx, "f", 10); err != nil || n != 0 {
		t.Fatalf("Members counts %d, %v; want 0", n, err)
	}
}
