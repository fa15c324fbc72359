package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

const (
	// publishesBetween is how many acknowledged publishes the test waits
	// for before the first restart, between restarts and after the last.
	publishesBetween = 40
)

// TestRollingRestart runs three edge nodes on one Redis and restarts them
// one by one (SIGTERM, clean exit, start again on the same address) while
// a publisher publishes steadily and subscribers of every transport follow
// their channel from node to node. Every subscriber must end up with
// exactly the channel's stored history: every message once, in order, and
// every acknowledged publish among them.
func TestRollingRestart(t *testing.T) {
	rdb := redistest.Start(t)
	bin := buildEdge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	var nodes []*fleetNode
	for i := range 3 {
		nodes = append(nodes, startFleetNode(ctx, t, client, bin, fmt.Sprintf("node%d", i),
			"--redis", rdb.URL(), "--drain-timeout", rollingDrain.String(), "--history-size", "100000"))
	}

	// Every channel has a subscriber of each transport, and every node
	// starts with one of each.
	channels := []string{"rolling-a", "rolling-b", "rolling-c"}
	var subs []*subscriber
	for _, s := range []struct {
		transport, channel string
		first              int
	}{
		{"ws", "rolling-a", 0}, {"sse", "rolling-a", 1}, {"poll", "rolling-a", 2},
		{"ws", "rolling-b", 1}, {"sse", "rolling-b", 2}, {"poll", "rolling-b", 0},
		{"ws", "rolling-c", 2}, {"sse", "rolling-c", 0}, {"poll", "rolling-c", 1},
	} {
		subs = append(subs, newSubscriber(s.transport, s.channel, s.first))
	}
	subCtx, stopSubs := context.WithCancel(ctx)
	var subsDone sync.WaitGroup
	defer func() { stopSubs(); subsDone.Wait() }()
	for _, s := range subs {
		subsDone.Go(func() { s.run(subCtx, client, nodes) })
	}
	for _, s := range subs {
		select {
		case <-s.live:
		case <-ctx.Done():
			t.Fatalf("%s never went live:\n%s", s, s.report())
		}
	}

	pub := &publisher{client: client, nodes: nodes, channels: channels}
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	defer func() { stopPub(); <-pubDone }()
	go func() { defer close(pubDone); pub.run(pubCtx) }()
	awaitPublishes := func(what string) {
		t.Helper()
		want := pub.acked() + publishesBetween
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if !waitFor(waitCtx, func() bool { return pub.acked() >= want }) {
			t.Fatalf("publishing stalled %s: %d acknowledged; failed attempts: %s", what, pub.acked(), pub.failureReport())
		}
	}

	awaitPublishes("before the first restart")
	for _, n := range nodes {
		n.restart(ctx, t, client)
		awaitPublishes("after restarting " + n.name)
	}
	stopPub()
	<-pubDone

	stored := make(map[string][]message)
	for _, ch := range channels {
		h, err := readHistory(ctx, client, nodes[0].base(), ch)
		if err != nil {
			t.Fatal(err)
		}
		stored[ch] = h
	}
	caughtUp := func() bool {
		for _, s := range subs {
			if h := stored[s.channel]; len(h) > 0 && s.lastID() != h[len(h)-1].ID {
				return false
			}
		}
		return true
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
	if !waitFor(waitCtx, caughtUp) {
		t.Errorf("subscribers did not catch up with the stored history within 15s")
	}
	stopSubs()
	subsDone.Wait()

	checkHistory(t, stored, pub.acks())
	for _, s := range subs {
		d := mismatch(s.messages(), stored[s.channel])
		if d != "" || len(s.problemList()) > 0 {
			t.Errorf("%s: %s\nconnections:\n%s", s, cmp.Or(d, "messages match the history"), s.report())
		}
	}
	t.Logf("%d acknowledged publishes; failed attempts: %s", len(pub.acks()), pub.failureReport())
	for _, s := range subs {
		t.Logf("%s: %d messages over %d connections", s, len(s.messages()), s.connectionCount())
	}
}
