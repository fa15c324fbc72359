package resume_test

import (
	"context"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// A message's conflation key is kept on every store: in history and on the
// live relay, for a keyed publish, one with an idempotency key too (whose
// repeat stores nothing) and a batch whose messages have keys or not.
func TestMessageKey(t *testing.T) {
	for _, b := range batchBackends {
		t.Run(b.name, func(t *testing.T) {
			s := b.start(t)
			keyed, ok := s.(edge.KeyPublisher)
			if !ok {
				t.Fatalf("%T keeps no keys", s)
			}
			ctx := context.Background()
			const ch = "dash"
			if err := s.Watch(ctx, ch); err != nil {
				t.Fatal(err)
			}
			defer s.Unwatch(ch)
			publish := func(key, once string) edge.ID {
				t.Helper()
				id, replayed, err := keyed.PublishKeyed(ctx, edge.Publication{Channel: ch, Event: "e", Data: []byte("d-" + key), Key: key}, once)
				if err != nil || replayed {
					t.Fatalf("PublishKeyed(%q, %q) = %v, %v, %v", key, once, id, replayed, err)
				}
				return id
			}
			publish("EURUSD", "")
			first := publish("GBPUSD", "once-1")
			id, replayed, err := keyed.PublishKeyed(ctx, edge.Publication{Channel: ch, Event: "e", Data: []byte("d-GBPUSD"), Key: "GBPUSD"}, "once-1")
			if err != nil || !replayed || id != first {
				t.Fatalf("the repeat = %v, %v, %v; want %v replayed", id, replayed, err, first)
			}
			for _, p := range s.PublishBatch(ctx, []edge.Publication{
				{Channel: ch, Event: "e", Data: []byte("d-a"), Key: "a"},
				{Channel: ch, Event: "e", Data: []byte("d-")},
				{Channel: ch, Event: "e", Data: []byte("d-b/1:x"), Key: "b/1:x"},
			}) {
				if p.Err != nil {
					t.Fatal(p.Err)
				}
			}
			if _, err := s.Publish(ctx, ch, "e", []byte("d-")); err != nil {
				t.Fatal(err)
			}
			want := []string{"EURUSD", "GBPUSD", "a", "", "b/1:x", ""}
			check := func(what string, got []edge.Message) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
				}
				for i, m := range got {
					if m.Key != want[i] || string(m.Data) != "d-"+want[i] {
						t.Fatalf("%s: message %d has key %q and data %q, want key %q", what, i, m.Key, m.Data, want[i])
					}
				}
			}
			check("relayed", s.waitFor(t, ch, len(want)))
			page, err := s.History(ctx, ch, edge.ID{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			check("history", page.Messages)
		})
	}
}
