package resume

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// The embedded store keeps PublishOnce's promise: a key repeated within
// the window returns the first id and stores nothing, another message
// under the key is refused, keys of other channels are unrelated, and the
// window ends.
func TestMemoryPublishOnce(t *testing.T) {
	type step struct {
		advance  time.Duration
		channel  string
		key      string
		data     string
		replayed bool // of step first
		first    int  // the step whose id this one returns; -1: a new one
		bad      bool // refused with ErrBadRequest
	}
	tests := []struct {
		name  string
		steps []step
		kept  map[string]int // messages each channel holds at the end
	}{
		{
			name:  "a retry",
			steps: []step{{channel: "a", key: "k", data: "1", first: -1}, {channel: "a", key: "k", data: "1", replayed: true, first: 0}},
			kept:  map[string]int{"a": 1},
		},
		{
			name:  "another message under the key",
			steps: []step{{channel: "a", key: "k", data: "1", first: -1}, {channel: "a", key: "k", data: "2", bad: true}},
			kept:  map[string]int{"a": 1},
		},
		{
			name:  "the same key on another channel",
			steps: []step{{channel: "a", key: "k", data: "1", first: -1}, {channel: "b", key: "k", data: "1", first: -1}},
			kept:  map[string]int{"a": 1, "b": 1},
		},
		{
			name:  "other keys",
			steps: []step{{channel: "a", key: "k1", data: "1", first: -1}, {channel: "a", key: "k2", data: "1", first: -1}},
			kept:  map[string]int{"a": 2},
		},
		{
			name: "just within the window",
			steps: []step{{channel: "a", key: "k", data: "1", first: -1},
				{advance: 10*time.Minute - time.Millisecond, channel: "a", key: "k", data: "1", replayed: true, first: 0}},
			kept: map[string]int{"a": 1},
		},
		{
			name: "after the window",
			steps: []step{{channel: "a", key: "k", data: "1", first: -1},
				{advance: 10 * time.Minute, channel: "a", key: "k", data: "2", first: -1},
				{channel: "a", key: "k", data: "2", replayed: true, first: 1}},
			kept: map[string]int{"a": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clock := newTestMemory(t, MemoryConfig{})
			var ids []edge.ID
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				id, replayed, err := m.PublishOnce(context.Background(), s.channel, "", []byte(s.data), s.key)
				ids = append(ids, id)
				switch {
				case s.bad:
					if !errors.Is(err, edge.ErrBadRequest) {
						t.Fatalf("step %d: %v, want ErrBadRequest", i, err)
					}
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				case replayed != s.replayed:
					t.Fatalf("step %d: replayed %v", i, replayed)
				case s.first >= 0 && id != ids[s.first]:
					t.Fatalf("step %d: id %v, want step %d's %v", i, id, s.first, ids[s.first])
				}
				for j := range i {
					if s.first < 0 && !s.bad && tt.steps[j].channel == s.channel && ids[j] == id {
						t.Fatalf("step %d: id %v repeats step %d's", i, id, j)
					}
				}
			}
			for channel, n := range tt.kept {
				if p := history(t, m, channel, edge.ID{}, 100); len(p.Messages) != n {
					t.Errorf("channel %s holds %d messages, want %d", channel, len(p.Messages), n)
				}
			}
		})
	}
}

// Publishes racing with one key store one message, and all get its id.
func TestMemoryPublishOnceRace(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	var relayed sync.WaitGroup
	var count sync.Mutex
	n := 0
	m.Relay(func(context.Context, edge.Message) { count.Lock(); n++; count.Unlock() })
	ids := make([]edge.ID, 16)
	for i := range ids {
		relayed.Go(func() {
			id, _, err := m.PublishOnce(context.Background(), "race", "", []byte("x"), "key")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	relayed.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids %v differ", ids)
		}
	}
	if n != 1 {
		t.Fatalf("relayed %d messages, want 1", n)
	}
}

// The keys remembered are bounded: past the bound the oldest is
// forgotten, and a forgotten key's window ends with it.
func TestOnceKeysBounded(t *testing.T) {
	o := newOnceKeys(time.Minute, 3)
	now := time.Unix(1000, 0)
	sum := onceSum("", []byte("x"))
	for i := range 5 {
		o.remember("c", fmt.Sprint(i), edge.ID{Ms: uint64(i + 1)}, sum, now)
	}
	if len(o.byKey) != 3 || len(o.order)-o.head != 3 {
		t.Fatalf("%d keys, %d in order, want 3", len(o.byKey), len(o.order)-o.head)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok, _ := o.lookup("c", fmt.Sprint(i), sum, now); ok != want {
			t.Errorf("key %d remembered: %v, want %v", i, ok, want)
		}
	}
	// A key published again after its window is remembered anew; the
	// record of its first publish, when it is dropped, does not take it.
	o = newOnceKeys(time.Minute, 10)
	o.remember("c", "k", edge.ID{Ms: 1}, sum, now)
	o.remember("c", "k", edge.ID{Ms: 2}, sum, now.Add(time.Minute))
	o.remember("c", "other", edge.ID{Ms: 3}, sum, now.Add(time.Minute+time.Second))
	if id, ok, _ := o.lookup("c", "k", sum, now.Add(time.Minute+time.Second)); !ok || id.Ms != 2 {
		t.Fatalf("key k: %v %v, want the second publish's id", id, ok)
	}
}
