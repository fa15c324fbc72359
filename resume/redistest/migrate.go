package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// migrateBatch is how many keys one MIGRATE moves, as redis-cli --cluster
// reshard's default --cluster-pipeline.
const migrateBatch = 10

// SlotMove is the migration of one slot from the master that serves it to
// another master, done the way `redis-cli --cluster reshard` does it.
// BeginMove opens it: the slot is IMPORTING on the target and MIGRATING on
// the source, and all its keys are still on the source. While it is open,
// the source serves the keys it still holds and answers -ASK for the
// others (a client then asks the target), and a command over several keys
// of which it holds some gets -TRYAGAIN. Migrate moves chosen keys, so that
// a test can hold the slot half migrated; Finish moves the rest and hands
// the slot to the target. Create it with BeginMove; its methods must be
// called from the test goroutine.
type SlotMove struct {
	// Slot is the slot being moved.
	Slot int
	// From is the master that served the slot when the move began; To
	// is the master that serves it once Finish has returned.
	From, To *Server

	c            *Cluster
	fromID, toID string
}

// MoveSlot moves key's slot, with every key in it, to the master to:
// BeginMove and Finish. It returns once every running node sees to serve
// the slot (deadline 30s). It fails t if to already serves it.
func (c *Cluster) MoveSlot(t testing.TB, key string, to *Server) {
	t.Helper()
	c.BeginMove(t, key, to).Finish(t)
}

// BeginMove opens the migration of key's slot to the master to: CLUSTER
// SETSLOT IMPORTING on to, then SETSLOT MIGRATING on the slot's master. No
// key has moved yet. It fails t if to is not a master or already serves
// the slot.
func (c *Cluster) BeginMove(t testing.TB, key string, to *Server) *SlotMove {
	t.Helper()
	from := c.MasterOf(t, key)
	if from == to {
		t.Fatalf("redistest: %s already serves the slot of %q", to.Addr, key)
	}
	if !to.isMaster() {
		t.Fatalf("redistest: %s is not a master: a slot can only move to one", to.Addr)
	}
	slot, err := from.Do(t, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT %q: %v", key, err)
	}
	m := &SlotMove{From: from, To: to, c: c, fromID: from.nodeID(t), toID: to.nodeID(t)}
	if m.Slot, err = strconv.Atoi(slot); err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT %q answered %q", key, slot)
	}
	m.setSlot(t, to, "IMPORTING", m.fromID)
	m.setSlot(t, from, "MIGRATING", m.toID)
	return m
}

// Migrate moves keys (of the slot, and still on the source) to the target
// with one MIGRATE. Until Finish, the source answers -ASK for them.
func (m *SlotMove) Migrate(t testing.TB, keys ...string) {
	t.Helper()
	if len(keys) == 0 {
		return
	}
	args := append([]string{"MIGRATE", "127.0.0.1", strconv.Itoa(m.To.port), "", "0", "10000", "KEYS"}, keys...)
	if _, err := m.From.Do(t, args...); err != nil {
		t.Fatalf("redistest: MIGRATE %s from %s to %s: %v", strings.Join(keys, " "), m.From.Addr, m.To.Addr, err)
	}
}

// Finish moves the keys left on the source in batches of 10 (CLUSTER
// GETKEYSINSLOT, MIGRATE ... KEYS), then assigns the slot to the target
// with CLUSTER SETSLOT NODE on the target, the source and every other
// running master, in that order, and waits (deadline 30s, polling) until
// every running node sees the target serve the slot. The source drops
// its subscribers of the slot's shard channels (they get sunsubscribe) as
// it takes the SETSLOT.
func (m *SlotMove) Finish(t testing.TB) {
	t.Helper()
	for {
		keys, err := m.From.Do(t, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(m.Slot), strconv.Itoa(migrateBatch))
		if err != nil {
			t.Fatalf("redistest: CLUSTER GETKEYSINSLOT on %s: %v", m.From.Addr, err)
		}
		if keys == "" {
			break
		}
		m.Migrate(t, strings.Split(keys, "\n")...)
	}
	m.setSlot(t, m.To, "NODE", m.toID)
	m.setSlot(t, m.From, "NODE", m.toID)
	for _, s := range m.c.running() {
		if s != m.To && s != m.From && s.isMaster() {
			m.setSlot(t, s, "NODE", m.toID)
		}
	}
	if err := m.c.servedBy(time.Now().Add(clusterTimeout), m.Slot, m.To); err != nil {
		t.Fatal(err)
	}
}

// setSlot sends CLUSTER SETSLOT <slot> <how> <id> to s.
func (m *SlotMove) setSlot(t testing.TB, s *Server, how, id string) {
	t.Helper()
	if _, err := s.Do(t, "CLUSTER", "SETSLOT", strconv.Itoa(m.Slot), how, id); err != nil {
		t.Fatalf("redistest: CLUSTER SETSLOT %d %s %s on %s: %v", m.Slot, how, id, s.Addr, err)
	}
}

// nodeID returns s's cluster node id.
func (s *Server) nodeID(t testing.TB) string {
	t.Helper()
	id, err := s.Do(t, "CLUSTER", "MYID")
	if err != nil || id == "" {
		t.Fatalf("redistest: CLUSTER MYID on %s: %q, %v", s.Addr, id, err)
	}
	return id
}

// servedBy polls every running node until all see master serve slot in a
// healthy cluster, or deadline passes.
func (c *Cluster) servedBy(deadline time.Time, slot int, master *Server) error {
	start := time.Now()
	wait := 10 * time.Millisecond
	for {
		var problems []string
		for _, s := range c.running() {
			reply, err := s.do(soonest(deadline, time.Now().Add(time.Second)), "CLUSTER", "SLOTS")
			var addr string
			if err == nil {
				addr, err = slotMaster(reply, int64(slot))
			}
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", s.Addr, err))
			case addr != master.Addr:
				problems = append(problems, fmt.Sprintf("%s: slot %d is served by %s", s.Addr, slot, addr))
			}
		}
		if len(problems) == 0 {
			return c.healthyBy(deadline, master)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: not every node sees %s serve slot %d after %v:\n%s%s", master.Addr, slot, time.Since(start).Round(time.Second), strings.Join(problems, "\n"), c.tails())
		}
		time.Sleep(wait) // polling: nothing to wait on but the nodes' own state
		wait = min(2*wait, maxPollWait)
	}
}

// Pause freezes the server with SIGSTOP, as a machine that stalls would:
// it keeps its connections but answers nothing and replicates nothing
// until Continue. Stop and Kill work on a paused server.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Continue wakes a server that Pause froze, with SIGCONT.
func (s *Server) Continue(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.proc == nil {
		t.Fatalf("redistest: %v to the stopped redis-server on %s", sig, s.Addr)
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redistest: %v to redis-server on %s: %v", sig, s.Addr, err)
	}
}
