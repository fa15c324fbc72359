package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A slot moves with its keys as redis-cli --cluster reshard moves it: while
// it is half migrated the source serves the keys it holds and redirects
// the others with -ASK, a command over keys on both sides gets -TRYAGAIN;
// once finished every node sees the target serve it, the source answers
// -MOVED, and the slot's shard-channel subscribers on the source are
// dropped. It can move back.
func TestClusterMoveSlot(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	const n = 25 // more than one MIGRATE batch
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("{slot}k%02d", i))
	}
	from := c.MasterOf(t, keys[0])
	to := c.Nodes[0]
	if to == from {
		to = c.Nodes[1]
	}
	for _, k := range keys {
		if _, err := from.Do(t, "SET", k, "v"+k); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := dial(from.Addr, time.Now().Add(doTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.close()
	if reply, err := sub.do("SSUBSCRIBE", "{slot}live"); err != nil || !strings.Contains(render(reply), "ssubscribe") {
		t.Fatalf("SSUBSCRIBE: %q, %v", render(reply), err)
	}

	m := c.BeginMove(t, keys[0], to)
	if m.From != from || m.To != to {
		t.Fatalf("the move goes from %s to %s, want %s to %s", m.From.Addr, m.To.Addr, from.Addr, to.Addr)
	}
	m.Migrate(t, keys[0])
	tests := []struct {
		name string
		args []string
		want string // the reply, or the start of the error
	}{
		{"a key still there", []string{"GET", keys[1]}, "v" + keys[1]},
		{"a migrated key", []string{"GET", keys[0]}, fmt.Sprintf("ASK %d %s", m.Slot, to.Addr)},
		{"keys on both sides", []string{"MGET", keys[0], keys[1]}, "TRYAGAIN"},
	}
	for _, tc := range tests {
		got, err := from.Do(t, tc.args...)
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %v on the source answered %q, want %q", tc.name, tc.args, got, tc.want)
		}
	}
	m.Finish(t)

	if got := c.MasterOf(t, keys[0]); got != to {
		t.Fatalf("after the move %s serves the slot, want %s", got.Addr, to.Addr)
	}
	for _, k := range keys {
		if got, err := to.Do(t, "GET", k); err != nil || got != "v"+k {
			t.Errorf("GET %s on the target = %q, %v", k, got, err)
		}
	}
	if _, err := from.Do(t, "GET", keys[1]); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
		t.Errorf("GET on the source after the move: %v, want MOVED", err)
	}
	if reply, err := readReply(sub.r, 0); err != nil || !strings.HasPrefix(render(reply), "sunsubscribe\n{slot}live") {
		t.Errorf("the source's shard-channel subscriber got %q, %v; want sunsubscribe", render(reply), err)
	}

	c.MoveSlot(t, keys[0], from)
	if got := c.MasterOf(t, keys[0]); got != from {
		t.Fatalf("after moving back %s serves the slot, want %s", got.Addr, from.Addr)
	}
	if got, err := from.Do(t, "DBSIZE"); err != nil || got != fmt.Sprint(n) {
		t.Errorf("DBSIZE on the source after moving back = %q, %v; want %d", got, err, n)
	}
}

// A paused server answers nothing until it continues, and Stop ends it
// even while paused.
func TestPause(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Pause(t)
	if _, err := s.do(time.Now().Add(200*time.Millisecond), "PING"); err == nil {
		t.Fatal("a paused server answered PING")
	}
	s.Continue(t)
	if got, err := s.Do(t, "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Continue = %q, %v", got, err)
	}
	s.Pause(t)
	start := time.Now()
	s.Stop(t)
	if d := time.Since(start); d >= stopGrace {
		t.Errorf("Stop of a paused server took %v: it waited for SIGKILL", d)
	}
}
