package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

const (
	// publishesBetween is how many acknowledged publishes to each channel
	// a test waits for before a fault, between faults and after the last.
	publishesBetween = 30
)

// TestRollingRestart runs three edge nodes on one Redis and restarts them
// one by one (SIGTERM, clean exit, start again on the same address) while
// a publisher publishes steadily and subscribers of every transport follow
// their channel from node to node. Every subscriber must end up with
// exactly the channel's stored history: every message once, in order, no
// gap, and every acknowledged publish among them.
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
	run := startCheck(ctx, t, client, nodes, []string{"rolling-a", "rolling-b", "rolling-c"})
	run.awaitPublishes("before the first restart", publishesBetween)
	for _, n := range nodes {
		n.restart(ctx, t, client)
		run.awaitPublishes("after restarting "+n.name, publishesBetween)
	}
	run.finish(gapsNever, historyExact)
}
