package resume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// batchStore is a store under test with what it relayed.
type batchStore interface {
	edge.Broker
	edge.BatchPublisher
	waitFor(t *testing.T, channel string, count int) []edge.Message
}

// memNode is the embedded store with what it relayed.
type memNode struct {
	*resume.Memory
	node *redisNode // its recorder: a redisNode without Redis
}

func (m memNode) waitFor(t *testing.T, channel string, count int) []edge.Message {
	return m.node.waitFor(t, channel, count)
}

func startMemNode() memNode {
	m := resume.NewMemory(resume.MemoryConfig{})
	rec := &redisNode{got: map[string][]edge.Message{}, more: make(chan struct{}, 1)}
	m.Relay(func(_ context.Context, msg edge.Message) {
		rec.mu.Lock()
		rec.got[msg.Channel] = append(rec.got[msg.Channel], msg)
		rec.mu.Unlock()
		select {
		case rec.more <- struct{}{}:
		default:
		}
	})
	return memNode{Memory: m, node: rec}
}

// batchBackends are every store that publishes batches: started once per
// test, each with a fresh server.
var batchBackends = []struct {
	name  string
	start func(t *testing.T) batchStore
}{
	{"memory", func(*testing.T) batchStore { return startMemNode() }},
	{"redis", func(t *testing.T) batchStore { return startRedisNode(t, redistest.Start(t), resume.RedisConfig{}) }},
	{"redis-cluster", func(t *testing.T) batchStore { return startClusterNode(t, redistest.StartCluster(t, 3)) }},
}

func pubs(channel string, data ...string) []edge.Publication {
	var p []edge.Publication
	for _, d := range data {
		p = append(p, edge.Publication{Channel: channel, Event: "e", Data: []byte(d)})
	}
	return p
}

// A batch stores each channel's messages with consecutive, increasing ids
// in the order given, answers them in the order of the batch, relays each
// once and in order, and history resumes across it — on every store.
func TestPublishBatch(t *testing.T) {
	for _, b := range batchBackends {
		t.Run(b.name, func(t *testing.T) {
			s := b.start(t)
			ctx := context.Background()
			channels := []string{"a", "b", "c", "d", "e", "f"}
			for _, ch := range channels {
				if err := s.Watch(ctx, ch); err != nil {
					t.Fatal(err)
				}
				defer s.Unwatch(ch)
			}
			before := mustPublish(t, s, "a", "before")
			// Interleaved channels, so that the groups are not in runs.
			var batch []edge.Publication
			for i := range 10 {
				for _, ch := range channels {
					batch = append(batch, edge.Publication{Channel: ch, Event: "e", Data: fmt.Appendf(nil, "%s%d", ch, i)})
				}
			}
			// Single publishes race the batch: none may land between
			// the batch's messages of a channel.
			var wg sync.WaitGroup
			singles := make([]edge.ID, 20)
			for i := range singles {
				wg.Go(func() { singles[i] = mustPublish(t, s, "a", fmt.Sprint("single", i)) })
			}
			done := s.PublishBatch(ctx, batch)
			wg.Wait()
			if len(done) != len(batch) {
				t.Fatalf("%d results for %d messages", len(done), len(batch))
			}
			byChannel := map[string][]edge.ID{}
			for i, d := range done {
				if d.Err != nil {
					t.Fatalf("message %d: %v", i, d.Err)
				}
				byChannel[batch[i].Channel] = append(byChannel[batch[i].Channel], d.ID)
			}
			for _, ch := range channels {
				ids := byChannel[ch]
				var want []edge.Message
				for i, id := range ids {
					want = append(want, edge.Message{ID: id, Channel: ch, Event: "e", Data: fmt.Appendf(nil, "%s%d", ch, i)})
				}
				// History after the batch's first message's predecessor
				// holds exactly the batch's messages next: consecutive.
				all, err := s.History(ctx, ch, edge.ID{}, 1000)
				if err != nil {
					t.Fatal(err)
				}
				at := slices.IndexFunc(all.Messages, func(m edge.Message) bool { return m.ID == ids[0] })
				if at < 0 || len(all.Messages) < at+len(ids) || !sameMessages(all.Messages[at:at+len(ids)], want) {
					t.Fatalf("%s: history %v does not hold the batch %v in a run", ch, all.Messages, want)
				}
				if ch == "a" {
					if !before.Less(ids[0]) {
						t.Fatalf("batch id %v is not after %v", ids[0], before)
					}
					// Resume across the batch: from the message before it.
					p, err := s.History(ctx, ch, before, 1000)
					if err != nil || p.Gap {
						t.Fatalf("resume from %v: gap %v, %v", before, p.Gap, err)
					}
					if len(p.Messages) != len(ids)+len(singles) {
						t.Fatalf("resume from %v: %d messages, want %d", before, len(p.Messages), len(ids)+len(singles))
					}
				}
				got := s.waitFor(t, ch, len(all.Messages))
				var relayed []edge.Message
				for _, m := range got {
					if slices.Contains(ids, m.ID) {
						relayed = append(relayed, m)
					}
				}
				if !sameMessages(relayed, want) {
					t.Fatalf("%s: relayed %v, want each of %v once, in order", ch, relayed, want)
				}
				for i := 1; i < len(got); i++ {
					if !got[i-1].ID.Less(got[i].ID) {
						t.Fatalf("%s: relayed %v then %v", ch, got[i-1].ID, got[i].ID)
					}
				}
			}
		})
	}
}

func sameMessages(a, b []edge.Message) bool {
	return slices.EqualFunc(a, b, func(x, y edge.Message) bool {
		return x.ID == y.ID && x.Channel == y.Channel && x.Event == y.Event && string(x.Data) == string(y.Data)
	})
}

// On Redis a channel's messages are stored all or none: a message the
// function refuses (here an event the caller did not validate) keeps its
// whole channel out of the stream, while the other channels of the batch
// are stored; a Redis that refuses writes stores nothing.
func TestRedisPublishBatchAtomic(t *testing.T) {
	for _, b := range batchBackends[1:] {
		t.Run(b.name, func(t *testing.T) {
			s := b.start(t)
			ctx := context.Background()
			batch := append(pubs("ok", "1", "2"), pubs("bad", "1", "2", "3")...)
			batch[3].Event = "gap" // reserved: the function refuses it
			batch = append(batch, pubs("ok", "3")...)
			done := s.PublishBatch(ctx, batch)
			for i, d := range done {
				wantErr := batch[i].Channel == "bad"
				if (d.Err != nil) != wantErr {
					t.Fatalf("message %d of %s: error %v, want one: %v", i, batch[i].Channel, d.Err, wantErr)
				}
				if wantErr && !errors.Is(d.Err, edge.ErrUnavailable) {
					t.Fatalf("message %d: %v, want ErrUnavailable", i, d.Err)
				}
			}
			if p, err := s.History(ctx, "bad", edge.ID{}, 10); err != nil || len(p.Messages) != 0 {
				t.Fatalf("the refused channel holds %d messages (%v), want none", len(p.Messages), err)
			}
			if p, err := s.History(ctx, "ok", edge.ID{}, 10); err != nil || len(p.Messages) != 3 {
				t.Fatalf("the other channel holds %d messages (%v), want 3", len(p.Messages), err)
			}
		})
	}
	t.Run("redis refusing writes", func(t *testing.T) {
		srv := redistest.Start(t)
		s := startRedisNode(t, srv, resume.RedisConfig{})
		if _, err := srv.Do(t, "CONFIG", "SET", "min-replicas-to-write", "1"); err != nil {
			t.Fatal(err)
		}
		done := s.PublishBatch(context.Background(), append(pubs("x", "1", "2"), pubs("y", "1")...))
		for i, d := range done {
			if !errors.Is(d.Err, edge.ErrUnavailable) {
				t.Fatalf("message %d: %v, want ErrUnavailable", i, d.Err)
			}
		}
		if _, err := srv.Do(t, "CONFIG", "SET", "min-replicas-to-write", "0"); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{"x", "y"} {
			if p, err := s.History(context.Background(), ch, edge.ID{}, 10); err != nil || len(p.Messages) != 0 {
				t.Fatalf("%s holds %d messages (%v), want none", ch, len(p.Messages), err)
			}
		}
	})
}
