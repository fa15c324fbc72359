package status_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/edgeworks/edge/transports/metrics"
	"github.com/edgeworks/edge/transports/status"
)

// A server samples itself with Run and serves the page and its stream.
func Example() {
	read := func(context.Context) status.Reading {
		r := status.Reading{Sessions: 4, Store: "memory"}
		r.Connections[metrics.WS], r.Connections[metrics.SSE] = 1, 3
		return r
	}
	s := status.New(read, nil, status.WithInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.ServePage)
	mux.HandleFunc("GET /status/events", s.ServeEvents)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/status/events")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for event := ""; sc.Scan(); {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && event == "sample" {
			var p status.Point
			json.Unmarshal([]byte(data), &p)
			fmt.Println(p.Connections, p.Sessions, p.Store, p.Published, p.Latency)
			return
		}
	}
	// Output: map[poll:0 sse:3 ws:1] 4 memory 0 <nil>
}
