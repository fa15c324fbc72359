package transports_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// Serve an edge on a loopback port, publish, and read the history back.
func ExampleServer() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	// The zero configurations are valid: defaults everywhere.
	srv, err := transports.New(transports.Config{}, resume.NewMemory(resume.MemoryConfig{}), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	resp, _ := http.Post(base+"/v1/publish?channel=news", "text/plain", strings.NewReader("hello"))
	resp.Body.Close()
	resp, _ = http.Get(base + "/v1/history?channel=news")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"data":"hello"`))

	stop()
	fmt.Println(<-done)
	// Output:
	// 200 true
	// <nil>
}
