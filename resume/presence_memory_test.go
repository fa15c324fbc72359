package resume

import (
	"context"
	"slices"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// TestMemoryPresence joins, re-joins and leaves members and checks what
// the store lists, counts and announces.
func TestMemoryPresence(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{})
	var heard []edge.PresenceChange
	m.OnPresence(func(_ context.Context, c edge.PresenceChange) { heard = append(heard, c) })
	a := edge.Member{Conn: "n1-1", Sub: "alice", Node: "n1"}
	b := edge.Member{Conn: "n1-2", Info: `{"name":"Bob"}`, Node: "n1"}
	steps := []struct {
		name      string
		do        func() error
		count     int
		announced []edge.PresenceChange
	}{
		{"a joins", func() error { return m.Join(ctx, "room", a) }, 1,
			[]edge.PresenceChange{{Channel: "room", Event: edge.EventJoin, Member: a}}},
		{"a joins again: replaced, not announced", func() error { return m.Join(ctx, "room", a) }, 1, nil},
		{"b joins", func() error { return m.Join(ctx, "room", b) }, 2,
			[]edge.PresenceChange{{Channel: "room", Event: edge.EventJoin, Member: b}}},
		{"a joins another channel", func() error { return m.Join(ctx, "hall", a) }, 2,
			[]edge.PresenceChange{{Channel: "hall", Event: edge.EventJoin, Member: a}}},
		{"a leaves", func() error { return m.Leave(ctx, "room", a.Conn, "") }, 1,
			[]edge.PresenceChange{{Channel: "room", Event: edge.EventLeave, Member: a}}},
		{"a leaves again: nothing", func() error { return m.Leave(ctx, "room", a.Conn, "") }, 1, nil},
		{"a stranger leaves: nothing", func() error { return m.Leave(ctx, "nowhere", "x", "") }, 1, nil},
		{"another node leaves b: nothing", func() error { return m.Leave(ctx, "room", b.Conn, "n2") }, 1, nil},
		{"a joins as the owner of the entry, leaves", func() error {
			if err := m.Join(ctx, "room", a); err != nil {
				return err
			}
			return m.Leave(ctx, "room", a.Conn, "n1")
		}, 1, []edge.PresenceChange{{Channel: "room", Event: edge.EventJoin, Member: a}, {Channel: "room", Event: edge.EventLeave, Member: a}}},
	}
	for _, s := range steps {
		heard = nil
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !slices.Equal(heard, s.announced) {
			t.Errorf("%s: announced %+v, want %+v", s.name, heard, s.announced)
		}
		if _, n, _ := m.Members(ctx, "room", 10); n != s.count {
			t.Errorf("%s: room counts %d, want %d", s.name, n, s.count)
		}
	}
	if list, n, _ := m.Members(ctx, "room", 10); n != 1 || len(list) != 1 || list[0] != b {
		t.Errorf("room lists %+v (%d), want only %+v", list, n, b)
	}
	if list, n, _ := m.Members(ctx, "hall", 10); n != 1 || len(list) != 1 || list[0] != a {
		t.Errorf("hall lists %+v (%d), want only %+v", list, n, a)
	}
}

// TestMemoryPresenceLimit lists a bounded number of members and counts
// them all.
func TestMemoryPresenceLimit(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{})
	for i := range 50 {
		if err := m.Join(ctx, "big", edge.Member{Conn: string(rune('A' + i)), Node: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, 1, 49, 50, 100} {
		list, n, err := m.Members(ctx, "big", limit)
		if err != nil || n != 50 || len(list) != min(limit, 50) {
			t.Errorf("limit %d: listed %d, counted %d (%v); want %d of 50", limit, len(list), n, err, min(limit, 50))
		}
	}
}
