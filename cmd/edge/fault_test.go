package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/edgeworks/edge/resume/redistest"
)

// Fault tests: real edge processes on real redis-server processes, under
// steady publishing, with subscribers of every transport following their
// channel from node to node (checkRun). Each test injects one fault and
// proves with verify that every acknowledged publish reached every
// subscriber exactly once, in order, or behind an explicit gap signal;
// never a silent hole, a duplicate or a reordering.

// faultTimeout bounds one fault test.
const faultTimeout = 60 * time.Second

// startFaultFleet builds the edge and starts n nodes on the store that
// args name.
func startFaultFleet(ctx context.Context, t *testing.T, client *http.Client, n int, args ...string) []*fleetNode {
	t.Helper()
	bin := buildEdge(t)
	var nodes []*fleetNode
	for i := range n {
		nodes = append(nodes, startFleetNode(ctx, t, client, bin, fmt.Sprintf("node%d", i),
			append([]string{"--history-size", "100000"}, args...)...))
	}
	return nodes
}

// faultContext returns the test's context and an HTTP client for it.
func faultContext(t *testing.T) (context.Context, *http.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
	t.Cleanup(cancel)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	return ctx, client
}

// TestFaultRedisKilledAOF kills Redis (SIGKILL) under two edge nodes and
// restarts it from its AOF (appendfsync always). Nothing acknowledged is
// lost, so every subscriber gets exactly the stored history, every message
// once, in order, without a gap: the nodes fill their live channels from
// the streams when their relay connection comes back.
func TestFaultRedisKilledAOF(t *testing.T) {
	rdb := redistest.Start(t)
	ctx, client := faultContext(t)
	nodes := startFaultFleet(ctx, t, client, 2, "--redis", rdb.URL())
	run := startCheck(ctx, t, client, nodes, []string{"fault-a", "fault-b"})
	run.awaitPublishes("before the kill", publishesBetween)
	rdb.Kill(t)
	run.awaitFailure("after killing Redis")
	rdb.Restart(t)
	run.awaitPublishes("after the restart", publishesBetween)
	run.finish(gapsNever, historyExact)
}

// TestFaultRedisKilledNoPersistence kills a Redis that persists nothing
// and restarts it empty: every channel's history is gone, and every
// subscriber's cursor is ahead of its channel's empty stream. Publishing
// pauses across the restart, so that subscribers resume against the empty
// streams. Each subscriber must get an explicit gap signal, continue from
// the channel's current position, and get every message published after
// the restart.
func TestFaultRedisKilledNoPersistence(t *testing.T) {
	rdb := redistest.Start(t, "--appendonly", "no")
	ctx, client := faultContext(t)
	nodes := startFaultFleet(ctx, t, client, 2, "--redis", rdb.URL())
	run := startCheck(ctx, t, client, nodes, []string{"fault-a", "fault-b"})
	run.awaitPublishes("before the kill", publishesBetween)
	run.pub.paused.Store(true)
	rdb.Kill(t)
	rdb.Restart(t)
	run.awaitGaps("after the restart")
	run.pub.paused.Store(false)
	run.awaitPublishes("after the restart", publishesBetween)
	run.finish(gapsRequired, historyLost)
	// Each node's relay closes a channel's subscribers once when it finds
	// the history lost, and each resume that follows signals the gap. A
	// subscriber told of the gap more often was not moved to the channel's
	// current position: it resumed from the same lost cursor again.
	for _, s := range run.subs {
		if n := len(s.received().gaps); n > len(nodes) {
			t.Errorf("%s: %d gap signals for one loss of history on %d nodes: it was not moved to the channel's current position\n%s", s, n, len(nodes), s.report())
		}
	}
}

// clusterFleet is a Redis Cluster of 3 masters with a replica each, with
// two edge nodes on it.
type clusterFleet struct {
	*redistest.Cluster
	master   *redistest.Server // serves channels[0]
	replica  *redistest.Server // master's replica
	nodes    []*fleetNode
	channels []string // channels[1] is served by another master
}

// startClusterFleet starts the cluster and the nodes, and picks the channels.
func startClusterFleet(ctx context.Context, t *testing.T, client *http.Client) *clusterFleet {
	t.Helper()
	f := &clusterFleet{
		Cluster:  redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: time.Second}),
		channels: []string{"fault-a"},
	}
	f.master = f.MasterOf(t, "edge:{fault-a}")
	replicas := f.ReplicasOf(t, f.master)
	if len(replicas) != 1 {
		t.Fatalf("%s has %d replicas, want 1", f.master.Addr, len(replicas))
	}
	f.replica = replicas[0]
	for i := 'b'; len(f.channels) < 2; i++ {
		ch := "fault-" + string(i)
		if f.MasterOf(t, "edge:{"+ch+"}") != f.master {
			f.channels = append(f.channels, ch)
		}
	}
	f.nodes = startFaultFleet(ctx, t, client, 2, "--redis-cluster", "--redis", f.URLs())
	return f
}

// TestFaultClusterFailover fails the master that serves a channel over to
// its replica with CLUSTER FAILOVER, which loses nothing acknowledged.
// Subscribers of both channels stay exactly once, or behind a gap signal.
func TestFaultClusterFailover(t *testing.T) {
	ctx, client := faultContext(t)
	f := startClusterFleet(ctx, t, client)
	run := startCheck(ctx, t, client, f.nodes, f.channels)
	run.awaitPublishes("before the failover", publishesBetween)
	f.Failover(t, f.replica)
	run.awaitPublishes("after the failover", publishesBetween)
	run.finish(gapsAllowed, historyAcked)
}

// TestFaultClusterMasterKilled kills (SIGKILL) the master that serves a
// channel; its replica takes over once the cluster counts the master as
// failed. Whatever the replica had not yet received is lost, so
// subscribers get every acknowledged publish exactly once or behind a gap
// signal, and then the messages published after the failover.
func TestFaultClusterMasterKilled(t *testing.T) {
	ctx, client := faultContext(t)
	f := startClusterFleet(ctx, t, client)
	run := startCheck(ctx, t, client, f.nodes, f.channels)
	run.awaitPublishes("before the kill", publishesBetween)
	f.master.Kill(t)
	run.awaitFailure("after killing the master")
	f.WaitMaster(t, f.replica)
	run.awaitPublishes("after the failover", publishesBetween)
	run.finish(gapsAllowed, historyLost)
}

// TestFaultNodeKilled kills (SIGKILL) one of three edge nodes on one
// Redis: its clients see their connections reset, without a disconnect
// frame or event, and resume with their cursors on the next node. Nothing
// is lost, so every subscriber gets exactly the stored history.
func TestFaultNodeKilled(t *testing.T) {
	rdb := redistest.Start(t)
	ctx, client := faultContext(t)
	nodes := startFaultFleet(ctx, t, client, 3, "--redis", rdb.URL())
	run := startCheck(ctx, t, client, nodes, []string{"fault-a", "fault-b", "fault-c"})
	run.awaitPublishes("before the kill", publishesBetween)
	nodes[0].kill()
	run.awaitPublishes("after the kill", publishesBetween)
	run.finish(gapsNever, historyExact)
	for _, s := range run.subs {
		if s.first == 0 && s.connectionCount() < 2 {
			t.Errorf("%s never left the killed node", s)
		}
	}
}

// TestFaultClusterReshard moves the slot of a channel to another master
// and back, as redis-cli --cluster reshard does, under publishing load: the
// first time it holds the slot half migrated (the stream on the target, so
// that publishes are redirected there with -ASK, where no node relays the
// channel yet) while publishing goes on. A migration loses nothing, so
// every subscriber gets exactly the stored history, without a gap: the
// nodes follow the slot to its new master (the subscribers get what was
// published after the move before it moves back) and fill the channel
// from its stream.
func TestFaultClusterReshard(t *testing.T) {
	ctx, client := faultContext(t)
	f := startClusterFleet(ctx, t, client)
	run := startCheck(ctx, t, client, f.nodes, f.channels)
	key := "edge:{" + f.channels[0] + "}"
	other := f.MasterOf(t, "edge:{"+f.channels[1]+"}")
	run.awaitPublishes("before the move", publishesBetween)
	m := f.BeginMove(t, key, other)
	run.awaitPublishes("with the slot migrating", publishesBetween)
	m.Migrate(t, key)
	run.awaitPublishes("with the slot half migrated", publishesBetween)
	m.Finish(t)
	run.awaitPublishes("after the move", publishesBetween)
	run.awaitDelivery("after the move")
	f.MoveSlot(t, key, f.master)
	run.awaitPublishes("after moving back", publishesBetween)
	run.finish(gapsNever, historyExact)
}

// TestFaultClusterLaggingReplica fails a master over to a replica that
// lacks acknowledged messages, for certain: the replica is frozen
// (SIGSTOP) and its link to the master cut before they are published, the
// master is killed (SIGKILL), and the replica, woken, takes over. Three
// subscribers of each transport follow the channel: some stay connected,
// some are away from before the lost messages were published until after
// the failover (their cursor is older than the loss), some leave after
// receiving them (their cursor names a message the new master never had).
// Every subscriber gets every message the cluster kept exactly once, and
// an explicit gap signal where messages were lost, never a silent hole;
// the subscribers of the channel on another master are untouched.
func TestFaultClusterLaggingReplica(t *testing.T) {
	ctx, client := faultContext(t)
	f := startClusterFleet(ctx, t, client)
	lagging, other := f.channels[0], f.channels[1]
	run := startCheck(ctx, t, client, f.nodes, []string{lagging, lagging, lagging, other})
	stay, early, late := run.subs[0:3], run.subs[3:6], run.subs[6:9]
	run.awaitPublishes("before the fault", publishesBetween/3)
	for _, s := range early {
		s.leave()
	}
	run.awaitPublishes("with some subscribers away", publishesBetween/3)

	f.replica.Pause(t)
	if _, err := f.master.Do(t, "CLIENT", "KILL", "TYPE", "replica"); err != nil {
		t.Fatal(err)
	}
	run.awaitPublishes("that only the master has", publishesBetween/3)
	for _, s := range late {
		s.leave()
	}
	f.master.Kill(t)
	f.replica.Continue(t)
	f.WaitMaster(t, f.replica)
	run.awaitGaps("after the failover", stay...)
	for _, s := range slices.Concat(early, late) {
		s.back()
	}
	run.awaitPublishes("after the failover", publishesBetween/3)
	run.finish(gapsAllowed, historyLost)
	for _, s := range run.subs {
		gaps := len(s.received().gaps)
		switch {
		case s.channel == lagging && gaps == 0:
			t.Errorf("%s: no gap signal, although the failover lost messages\n%s", s, s.report())
		case s.channel == other && gaps > 0:
			t.Errorf("%s: %d gap signals, although its master kept everything\n%s", s, gaps, s.report())
		}
	}
}
