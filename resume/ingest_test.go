package resume_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// waitIngestReady waits until a node holds the ingest lease and n nodes
// pattern-subscribed, so a plain PUBLISH is picked up.
func waitIngestReady(t *testing.T, srv *redistest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		holder, _ := srv.Do(t, "GET", "edge:ingest:lease")
		clients, _ := srv.Do(t, "CLIENT", "LIST", "TYPE", "pubsub")
		if holder != "" && strings.Count(clients, " psub=1 ") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest not ready: lease %q, clients:\n%s", holder, clients)
		}
		time.Sleep(20 * time.Millisecond) // polling Redis for the lease
	}
}

// Plain PUBLISH traffic on ingested channels is stored once (by the lease
// holder among two ingesting nodes), relayed to every node, and resumable.
func TestRedisIngest(t *testing.T) {
	srv := redistest.Start(t)
	var nodes []*redisNode
	for range 2 {
		cfg := resume.RedisConfig{URLs: []string{srv.URL()}, Ingest: "plain.*"}
		r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, runRedisNode(t, r))
	}
	watcher := startRedisNode(t, srv, resume.RedisConfig{})
	if err := watcher.Watch(context.Background(), "plain.news"); err != nil {
		t.Fatal(err)
	}
	waitIngestReady(t, srv, 2)
	for i := range 50 {
		if _, err := srv.Do(t, "PUBLISH", "plain.news", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := watcher.waitFor(t, "plain.news", 50)
	for i, m := range got {
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, m.Data)
		}
	}
	p, err := watcher.History(context.Background(), "plain.news", got[24].ID, 100)
	if err != nil || p.Gap || len(p.Messages) != 25 {
		t.Fatalf("history after message 24: gap %v, %d messages, %v", p.Gap, len(p.Messages), err)
	}
	// Exactly once: nothing more arrives (the second node did not store
	// them again); a marker published last is the next message.
	srv.Do(t, "PUBLISH", "plain.news", "marker")
	if m := watcher.waitFor(t, "plain.news", 51)[50]; string(m.Data) != "marker" {
		t.Fatalf("after 50 messages came %q, want the marker", m.Data)
	}
}
