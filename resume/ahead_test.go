package resume_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// A well-formed cursor that a channel cannot place, because it is past the
// channel's newest id (its history was lost, as after a restart without
// persistence), gets a gap and the position to continue from, on every
// store: a reader that kept the cursor would never see the channel's next
// message.
func TestHistoryCursorAhead(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) edge.Broker
	}{
		{"memory", func(t *testing.T) edge.Broker { return resume.NewMemory(resume.MemoryConfig{}) }},
		{"redis", func(t *testing.T) edge.Broker {
			cfg := resume.RedisConfig{URLs: []string{redistest.Start(t).URL()}}
			r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
			if err != nil {
				t.Fatal(err)
			}
			return runRedisNode(t, r)
		}},
	}
	future := edge.ID{Ms: 9999999999999}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			b := st.open(t)
			ctx := context.Background()
			last, err := b.Last(ctx, "never")
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name     string
				channel  string
				after    edge.ID
				wantLast edge.ID
			}{
				{"channel without messages", "never", future, last},
				{"channel with messages", "some", future, edge.ID{}}, // wantLast filled below
				{"one past the newest", "some", edge.ID{}, edge.ID{}},
			}
			first := mustPublish(t, b, "some", "1")
			newest := mustPublish(t, b, "some", "2")
			cases[1].wantLast = newest
			cases[2].after, cases[2].wantLast = edge.ID{Ms: newest.Ms, Seq: newest.Seq + 1}, newest
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					p, err := b.History(ctx, c.channel, c.after, 10)
					if err != nil {
						t.Fatal(err)
					}
					if !p.Ahead || !p.Gap || p.Last != c.wantLast || len(p.Messages) != 0 {
						t.Fatalf("history after %v: ahead %v gap %v last %v, %d messages; want ahead and gap, last %v, none",
							c.after, p.Ahead, p.Gap, p.Last, len(p.Messages), c.wantLast)
					}
				})
			}
			t.Run("cursors it can place", func(t *testing.T) {
				for _, after := range []edge.ID{{}, first, newest} {
					p, err := b.History(ctx, "some", after, 10)
					if err != nil || p.Ahead {
						t.Fatalf("history after %v: ahead %v, %v", after, p.Ahead, err)
					}
				}
			})
		})
	}
}
