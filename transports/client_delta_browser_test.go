package transports_test

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/edgeworks/edge/transports"
)

// client.js with delta on, on each transport, hands the page exactly
// history's payloads while the edge sends deltas; a base the client
// spoils (its bytes, then its id) is recovered by a full resend, and the
// page never gets a wrong payload.
func TestClientAppliesDeltas(t *testing.T) {
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			e := startEdge(t, transports.Config{CORSOrigin: "*"})
			opts := fmt.Sprintf(`{"transports": [%q], "delta": true, "openTimeout": 1500, "minDelay": 20, "maxDelay": 300, "hiddenDelay": 0}`, transport)
			page := httptest.NewServer(clientPage(e.base, []string{"dash"}, opts))
			defer page.Close()
			b := openTab(t, page.URL)
			if got := b.waitOpen(); got != transport {
				t.Fatalf("open on %s", got)
			}
			var want []string
			// Each message waits for the one before to reach the page: a
			// long-poll asks for deltas once it holds a base, and a burst
			// published before its first delta poll would all come from
			// history as whole messages.
			publish := func(from, n int) {
				for i := from; i < from+n; i++ {
					data := string(transports.DashboardUpdate(i))
					e.publish("dash", data)
					want = append(want, "dash/"+data)
					b.received(want)
				}
			}
			// 20, then 10 and 10 per round: the first message after each
			// spoiling is not a resync (every edge.DeltaResync-th is full).
			publish(0, 20)
			b.received(want)
			if n, _ := strconv.Atoi(b.eval(`String(window.sub.applied)`)); n == 0 {
				t.Fatal("the client applied no delta")
			}
			for round, how := range []string{"bytes", "id"} {
				applied, _ := strconv.Atoi(b.eval(`String(window.sub.applied)`))
				b.eval(fmt.Sprintf(`window.sub._testCorruptBases(%q), ""`, how))
				publish(100*(round+1), 10)
				b.received(want)
				b.wait(fmt.Sprintf(`window.sub.recoveries === %d`, round+1))
				publish(100*(round+1)+10, 10)
				b.received(want)
				if n, _ := strconv.Atoi(b.eval(`String(window.sub.applied)`)); n <= applied {
					t.Fatalf("after recovering from a spoiled base (%s), no delta applied", how)
				}
			}
			if got := b.eval(`String(window.sub.transport)`); got != transport {
				t.Fatalf("recovered onto %s", got)
			}
		})
	}
}
