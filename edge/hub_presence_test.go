package edge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// presenceConfig keeps presence on the channels starting "p.".
var presenceConfig = edge.Config{Presence: func(ch string) bool { return len(ch) > 2 && ch[:2] == "p." }, Node: "n1"}

// nextFrame waits for the next queued frame of s.
func nextFrame(t *testing.T, s *edge.Session, pending *[]*edge.Frame) *edge.Frame {
	t.Helper()
	deadline := time.After(waitFor)
	for len(*pending) == 0 {
		*pending = s.Take(*pending)
		if len(*pending) > 0 {
			break
		}
		select {
		case <-s.Notify():
		case <-deadline:
			t.Fatal("no frame within the deadline")
		}
	}
	f := (*pending)[0]
	*pending = (*pending)[1:]
	return f
}

// waitCount waits until channel lists want members.
func waitCount(t *testing.T, h *edge.Hub, channel string, want int) []edge.Member {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(time.Millisecond) // the store is polled: it tells no one
	defer tick.Stop()
	for {
		members, n, err := h.Members(context.Background(), channel, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n == want && len(members) == want {
			return members
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d members (%v), want %d", channel, n, members, want)
		}
		<-tick.C
	}
}

func TestPresenceJoinLeave(t *testing.T) {
	h, b := newHub(t, presenceConfig)
	listener := newSession(t, h)
	listener.HearPresence(true)
	joinLive(t, listener, "p.room")
	var got []*edge.Frame

	member := newSession(t, h)
	member.SetMember("bob", `{"name":"Bob"}`)
	joinLive(t, member, "p.room")
	f := nextFrame(t, listener, &got)
	if !f.IsPresence() || f.Event != edge.EventJoin || f.Channel != "p.room" || !f.ID.IsZero() {
		t.Fatalf("frame %+v, want a join of p.room without id", f)
	}
	want := edge.Member{Conn: "n1-1", Sub: "bob", Info: `{"name":"Bob"}`, Node: "n1"}
	if *f.Member != want {
		t.Fatalf("member %+v, want %+v", *f.Member, want)
	}
	if members := waitCount(t, h, "p.room", 1); members[0] != want {
		t.Fatalf("Members = %+v, want %+v", members, want)
	}

	// Presence frames do not move the message dedupe: the next message
	// comes as it would without them.
	id := publish(t, b, "p.room", "hello")
	if f := nextFrame(t, listener, &got); f.IsPresence() || f.ID != id {
		t.Fatalf("frame %+v, want message %v", f, id)
	}

	member.Release()
	if f := nextFrame(t, listener, &got); f.Event != edge.EventLeave || f.Member.Conn != want.Conn {
		t.Fatalf("frame %+v, want the leave of %s", f, want.Conn)
	}
	waitCount(t, h, "p.room", 0)
}

func TestPresenceWho(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		member  bool // SetMember called
		hear    bool
		members int
		hears   bool
	}{
		{"member that hears", "p.a", true, true, 1, true},
		{"member that does not hear", "p.b", true, false, 1, false},
		{"listener only (a long-poll)", "p.c", false, true, 0, true},
		{"channel without presence", "q.d", true, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, presenceConfig)
			s := newSession(t, h)
			if tt.member {
				s.SetMember("", "")
			}
			s.HearPresence(tt.hear)
			joinLive(t, s, tt.channel)
			if !h.KeepsPresence(tt.channel) {
				if _, _, err := h.Members(context.Background(), tt.channel, 10); !errors.Is(err, edge.ErrPresenceOff) {
					t.Fatalf("Members of %s: %v, want ErrPresenceOff", tt.channel, err)
				}
				return
			}
			waitCount(t, h, tt.channel, tt.members)
			other := newSession(t, h)
			other.SetMember("", "")
			joinLive(t, other, tt.channel)
			waitCount(t, h, tt.channel, tt.members+1)
			var got []*edge.Frame
			for got = s.Take(got); len(got) > 0 && got[0].Member.Conn != other.Conn(); got = got[1:] {
			}
			if heard := len(got) > 0; heard != tt.hears {
				t.Fatalf("heard the other's join: %v, want %v", heard, tt.hears)
			}
		})
	}
}

// A member that subscribes and unsubscribes faster than the store is
// called ends where it was last: its joins and leaves reach the store in
// order.
func TestPresenceOrder(t *testing.T) {
	h, _ := newHub(t, presenceConfig)
	s := newSession(t, h)
	s.SetMember("", "")
	for i := range 200 {
		joinLive(t, s, "p.flap")
		if i < 199 {
			if err := s.Unsubscribe("p.flap"); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.StopPresence(context.Background())
	if _, n, _ := h.Members(context.Background(), "p.flap", 10); n != 1 {
		t.Fatalf("%d members after the last subscribe, want 1", n)
	}
}

// failingPresence is a store whose joins fail.
type failingPresence struct {
	*testBroker
}

func (failingPresence) Join(context.Context, string, edge.Member) error {
	return fmt.Errorf("%w: store down", edge.ErrUnavailable)
}

func TestPresenceJoinFails(t *testing.T) {
	_, b := newHub(t, edge.Config{})
	h := edge.NewHub(failingPresence{b}, presenceConfig, slog.New(slog.DiscardHandler))
	s := newSession(t, h)
	s.SetMember("", "")
	joinLive(t, s, "p.x")
	h.StopPresence(context.Background())
	if n := h.PresenceFailures(); n != 1 {
		t.Fatalf("PresenceFailures = %d, want 1", n)
	}
	id := publish(t, b, "p.x", "still works")
	var got []*edge.Frame
	if f := nextFrame(t, s, &got); f.ID != id {
		t.Fatalf("frame %+v, want message %v", f, id)
	}
}

// StopPresence sends the leaves of released sessions before it returns,
// and nothing afterwards.
func TestStopPresence(t *testing.T) {
	h, _ := newHub(t, presenceConfig)
	for range 50 {
		s := newSession(t, h)
		s.SetMember("", "")
		joinLive(t, s, "p.drain")
		s.Release()
	}
	h.StopPresence(context.Background())
	if _, n, _ := h.Members(context.Background(), "p.drain", 10); n != 0 {
		t.Fatalf("%d members once stopped, want 0", n)
	}
	s := newSession(t, h)
	s.SetMember("", "")
	joinLive(t, s, "p.drain")
	if _, n, _ := h.Members(context.Background(), "p.drain", 10); n != 0 {
		t.Fatalf("%d members after StopPresence, want 0", n)
	}
}
