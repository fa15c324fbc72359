package transports_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeworks/edge/transports"
)

// dialFrozen opens an SSE stream of channel over a raw TCP connection
// whose receive buffer is small, reads the response up to the stream's
// first id, and then never reads again: a frozen tab or a suspended
// process, whose kernel acknowledges what fits in that buffer and then
// advertises a zero window.
func dialFrozen(t *testing.T, e *testEdge, query string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return err
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /v1/subscribe?%s HTTP/1.1\r\nHost: edge\r\nAccept: text/event-stream\r\n\r\n", query)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	readUntil(t, bufio.NewReader(c), "id: ")
	return c
}

// A peer that stops reading an SSE stream while messages flow is noticed
// at the heartbeats: once bytes the edge wrote stay unacknowledged for a
// whole heartbeat, the stream ends as a slow consumer, long before its
// kernel buffers fill and a write blocks for writeTimeout. A subscriber
// of the same channel, at the same heartbeat, receives every message.
func TestSSEFrozenPeer(t *testing.T) {
	const heartbeat = 250 * time.Millisecond
	e := startEdge(t, transports.Config{HeartbeatMin: time.Millisecond})
	query := fmt.Sprintf("channel=cold&heartbeat=%s", heartbeat)
	good := openSSE(t, e.base+"/v1/subscribe?"+query, nil)
	good.lastID()
	dialFrozen(t, e, query)
	waitSessions(t, e, 2)

	// 256 bytes every 20 ms: the frozen peer's buffer is full within a
	// second, the edge's send buffer (megabytes on loopback) far later.
	payload := strings.Repeat("x", 256)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var ids []string
	const giveUp = 40 // heartbeats: 10 s, when a blocked write would time out
	start := time.Now()
	for e.srv.Hub().Sessions() > 1 {
		if time.Since(start) > giveUp*heartbeat {
			t.Fatalf("the frozen peer was not noticed within %d heartbeats", giveUp)
		}
		ids = append(ids, e.publish("cold", payload))
		<-tick.C
	}
	took := time.Since(start)
	t.Logf("frozen peer noticed %v (%.1f heartbeats) after publishing began, %d messages in", took.Round(time.Millisecond), float64(took)/float64(heartbeat), len(ids))
	if took > 12*heartbeat {
		t.Errorf("the frozen peer was noticed after %.1f heartbeats; want a few once its buffer is full (about 1 s here)", float64(took)/float64(heartbeat))
	}
	if n := e.srv.Hub().SlowConsumers(); n != 1 {
		t.Errorf("%d slow consumers, want 1", n)
	}
	ids = append(ids, e.publish("cold", "after"))
	for i, id := range ids {
		if ev := good.next(); ev.ID != id {
			t.Fatalf("the good subscriber's message %d is %+v, want id %s", i, ev, id)
		}
	}
}
