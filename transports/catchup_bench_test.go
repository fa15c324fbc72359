package transports_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// catchUpMessages is how many missed messages a resume brings.
const catchUpMessages = 10_000

// BenchmarkCatchUp measures a resume that brings 10,000 missed messages:
// from the request to the last message read by the client, per transport
// (long-poll chains answers of 1,000). ms/resume is the figure to compare
// with the 100 ms target.
//
//	go test -run '^$' -bench CatchUp ./transports/
func BenchmarkCatchUp(b *testing.B) {
	base := "http://" + benchServer(b, resume.NewMemory(resume.MemoryConfig{HistorySize: catchUpMessages}))

	start, last := fillChannel(b, base, "catchup")
	get := func(query url.Values) (*http.Response, error) {
		return http.Get(base + "/v1/subscribe?" + query.Encode())
	}
	transports := []struct {
		name   string
		resume func() error
	}{
		{"sse", func() error {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/subscribe?channel=catchup", nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Last-Event-ID", start)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			want := []byte("id: " + last + "\n")
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if bytes.Equal(line, want) {
					return nil
				}
			}
		}},
		{"ws", func() error {
			u := "ws" + strings.TrimPrefix(base, "http") + "/v1/subscribe?" + url.Values{"channel": {"catchup"}, "since": {start}}.Encode()
			conn, _, err := websocket.DefaultDialer.Dial(u, nil)
			if err != nil {
				return err
			}
			defer conn.Close()
			want := []byte(`"id":"` + last + `"`)
			for {
				_, frame, err := conn.ReadMessage()
				if err != nil {
					return err
				}
				if bytes.Contains(frame, want) {
					return nil
				}
			}
		}},
		{"poll", func() error {
			cursor := start
			for cursor != last {
				resp, err := get(url.Values{"channel": {"catchup"}, "since": {cursor}, "limit": {"1000"}})
				if err != nil {
					return err
				}
				var a struct{ Cursor string }
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				if err != nil {
					return err
				}
				cursor = a.Cursor
			}
			return nil
		}},
	}
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tr.resume(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/resume")
		})
	}
}

// fillChannel publishes catchUpMessages messages of 100 bytes to channel
// and returns the cursor before the first and the id of the last.
func fillChannel(b *testing.B, base, channel string) (start, last string) {
	b.Helper()
	resp, err := http.Get(base + "/v1/subscribe?channel=" + channel + "&timeout=0")
	if err != nil {
		b.Fatal(err)
	}
	var a struct{ Cursor string }
	json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	payload := strings.Repeat("x", 100)
	for i := range catchUpMessages {
		resp, err := http.Post(base+"/v1/publish?channel="+channel, "text/plain", strings.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		var p struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&p)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("publish %d: %s", i, resp.Status)
		}
		last = p.ID
	}
	if a.Cursor == "" || last == "" {
		b.Fatalf("no cursor (%q) or last id (%q)", a.Cursor, last)
	}
	return a.Cursor, last
}

// benchServer runs a server with the default configuration on broker
// until the benchmark ends, and returns its address.
func benchServer(b *testing.B, broker edge.Broker) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := transports.New(transports.Config{}, broker, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}
