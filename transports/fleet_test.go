package transports_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

// startFleet starts n edge servers on one real Redis.
func startFleet(t *testing.T, n int) ([]*testEdge, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	var nodes []*testEdge
	for range n {
		r, err := resume.NewRedis(resume.RedisConfig{URLs: []string{srv.URL()}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startEdgeWith(t, transports.Config{}, r,
			transports.WithTelemetry(testTelemetry(t, nil)), transports.WithStore(r)))
	}
	return nodes, srv
}

// Subscribers on every node, over every transport, receive every message
// published on any node exactly once, in order.
func TestFleetFanOutEveryTransportEveryNode(t *testing.T) {
	nodes, _ := startFleet(t, 3)
	sse := openSSE(t, nodes[0].url("/v1/subscribe", "channel", "fleet"), nil)
	sse.lastID()
	ws := dialWS(t, nodes[1].wsURL("channel", "fleet"))
	ws.readControl("subscribed")
	var start pollAnswer
	getJSON(t, nodes[2].url("/v1/subscribe", "channel", "fleet", "timeout", "0"), nil, &start)

	const total = 150
	var want []string
	for i := range total {
		want = append(want, nodes[i%3].publish("fleet", fmt.Sprint(i)))
	}
	for i, id := range want {
		if ev := sse.next(); ev.ID != id || ev.Data != fmt.Sprint(i) {
			t.Fatalf("SSE on node 0: message %d = %+v, want %s", i, ev, id)
		}
	}
	for i, m := range ws.readMessages(total) {
		if m.ID != want[i] {
			t.Fatalf("WS on node 1: message %d = %+v, want %s", i, m, want[i])
		}
	}
	expectPolled(t, nodes[2], "fleet", start.Cursor, want, 100)

	// Each node counted its round-trips to Redis, none failed.
	for i, n := range nodes {
		m := scrape(t, n)
		if v, _ := value(m, "edge_redis_commands_total", "outcome", "ok"); v < total/3 {
			t.Errorf("node %d: %v Redis round-trips, want at least %d", i, v, total/3)
		}
		if v, _ := value(m, "edge_redis_commands_total", "outcome", "failed"); v != 0 {
			t.Errorf("node %d: %v failed Redis round-trips", i, v)
		}
		if v, _ := value(m, "edge_redis_duration_seconds_count"); v == 0 {
			t.Errorf("node %d: no Redis round-trip timed", i)
		}
	}
}

// A client that was on node A resumes on node B with its cursor and gets
// exactly what it missed: no sticky sessions needed.
func TestFleetResumeOnAnotherNode(t *testing.T) {
	nodes, _ := startFleet(t, 2)
	c := openSSE(t, nodes[0].url("/v1/subscribe", "channel", "move"), nil)
	c.lastID()
	first := nodes[0].publish("move", "on A")
	if ev := c.next(); ev.ID != first {
		t.Fatalf("%+v", ev)
	}
	c.close()
	var missed []string
	for i := range 5 {
		missed = append(missed, nodes[i%2].publish("move", fmt.Sprint(i)))
	}
	c = openSSE(t, nodes[1].url("/v1/subscribe", "channel", "move"), http.Header{"Last-Event-Id": {first}})
	for _, id := range missed {
		if ev := c.next(); ev.ID != id {
			t.Fatalf("resumed on B: %+v, want %s", ev, id)
		}
	}
	live := nodes[0].publish("move", "live from A")
	if ev := c.next(); ev.ID != live {
		t.Fatalf("live: %+v", ev)
	}
}

// While Redis is down publishing answers 503 and readiness fails; after it
// comes back, subscribers that stayed connected get what is published.
func TestFleetRedisOutage(t *testing.T) {
	nodes, srv := startFleet(t, 2)
	c := openSSE(t, nodes[1].url("/v1/subscribe", "channel", "out"), nil)
	c.lastID()
	before := nodes[0].publish("out", "before")
	if ev := c.next(); ev.ID != before {
		t.Fatalf("%+v", ev)
	}
	srv.Stop(t)
	resp, err := http.Post(nodes[0].url("/v1/publish", "channel", "out"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ans errorAnswer
	decodeJSON(t, resp, &ans)
	resp.Body.Close()
	if resp.StatusCode != 503 || ans.Error.Code != "unavailable" {
		t.Fatalf("publish during outage: %d %+v", resp.StatusCode, ans)
	}
	var ready errorAnswer
	if st := getJSON(t, nodes[0].url("/readyz"), nil, &ready); st != 503 {
		t.Fatalf("readyz during outage: %d", st)
	}
	srv.Restart(t)
	after := nodes[0].publish("out", "after")
	if ev := c.next(); ev.ID != after {
		t.Fatalf("after the outage: %+v, want %s", ev, after)
	}
}

// A backend that only knows PUBLISH (redis-cli here) reaches SSE
// subscribers through --ingest, and its messages are resumable.
func TestFleetIngestPlainPublish(t *testing.T) {
	srv := redistest.Start(t)
	r, err := resume.NewRedis(resume.RedisConfig{URLs: []string{srv.URL()}, Ingest: "tutorial:*"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := startEdgeWith(t, transports.Config{}, r)
	c := openSSE(t, e.url("/v1/subscribe", "channel", "tutorial:chat"), nil)
	c.lastID()
	_, port, _ := strings.Cut(srv.Addr, ":")
	publish := func(msg string) {
		out, err := exec.Command("redis-cli", "-p", port, "PUBLISH", "tutorial:chat", msg).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli: %v %s", err, out)
		}
	}
	// Until the node holds the ingest lease, a plain PUBLISH is lost (the
	// documented trade-off): publish until the first one comes through.
	var first sseEvent
	deadline := time.Now().Add(15 * time.Second)
	for first.Data == "" {
		publish("hello")
		select {
		case ev := <-c.events:
			if ev.Data == "hello" {
				first = ev
			}
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no plain PUBLISH came through")
		}
	}
	c.close()
	publish("while away")
	resumed := openSSE(t, e.url("/v1/subscribe", "channel", "tutorial:chat"), http.Header{"Last-Event-Id": {first.ID}})
	for {
		ev := resumed.next()
		if ev.Data == "while away" {
			break
		}
		if ev.Data != "hello" { // extra hellos from the warm-up are fine
			t.Fatalf("resumed with %+v", ev)
		}
	}
}

// Two edge servers on a three-master Redis Cluster: channels spread over
// the slots; an SSE subscriber to several of them on one node gets what
// the other node publishes, and resumes there with its composite cursor.
func TestFleetOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cfg := resume.RedisConfig{URLs: strings.Split(cluster.URLs(), ","), Cluster: true}
	var nodes []*testEdge
	for range 2 {
		r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startEdgeWith(t, transports.Config{}, r))
	}
	channels := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	var query []string
	for _, ch := range channels {
		query = append(query, "channel", ch)
	}
	c := openSSE(t, nodes[0].url("/v1/subscribe", query...), nil)
	c.lastID()
	for _, ch := range channels {
		nodes[1].publish(ch, ch+"-1")
	}
	var cursor string
	for range channels {
		ev := c.next()
		var m wireMessage
		json.Unmarshal([]byte(ev.Data), &m)
		if m.Data != m.Channel+"-1" {
			t.Fatalf("got %+v", m)
		}
		cursor = ev.ID
	}
	c.close()
	for _, ch := range channels {
		nodes[0].publish(ch, ch+"-2")
	}
	resumed := openSSE(t, nodes[1].url("/v1/subscribe", query...), http.Header{"Last-Event-Id": {cursor}})
	got := map[string]bool{}
	for range channels {
		var m wireMessage
		json.Unmarshal([]byte(resumed.next().Data), &m)
		if m.Data != m.Channel+"-2" || got[m.Channel] {
			t.Fatalf("resumed with %+v", m)
		}
		got[m.Channel] = true
	}
}

// A backend publishes with one redis-cli command, without HTTP: the
// documented FCALL reaches an SSE subscriber with its id as SSE id.
func TestFleetPublishWithFCALL(t *testing.T) {
	nodes, srv := startFleet(t, 1)
	c := openSSE(t, nodes[0].url("/v1/subscribe", "channel", "orders"), nil)
	c.lastID()
	_, port, _ := strings.Cut(srv.Addr, ":")
	out, err := exec.Command("redis-cli", "-p", port, "FCALL", "edge_publish", "1", "edge:{orders}", "created", `{"order":42}`).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	if ev := c.next(); ev.ID != id || ev.Event != "created" || ev.Data != `{"order":42}` {
		t.Fatalf("got %+v, want id %s", ev, id)
	}
}
