package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePoll answers long-polls with bodies in turn and records the since=
// of each poll and how many connections it accepted. closeConn answers
// with "Connection: close".
type fakePoll struct {
	bodies    []string
	status    int
	closeConn bool

	mu     sync.Mutex // guards since, conns, served
	since  []string
	conns  int
	served int
}

func (f *fakePoll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	i := f.served
	f.served++
	f.since = append(f.since, r.URL.Query().Get("since"))
	f.mu.Unlock()
	if f.closeConn {
		w.Header().Set("Connection", "close")
	}
	if f.status != 0 {
		http.Error(w, "overloaded", f.status)
		return
	}
	if i >= len(f.bodies) {
		http.Error(w, "no more answers", http.StatusInternalServerError)
		return
	}
	w.Write([]byte(f.bodies[i]))
}

func TestPollClient(t *testing.T) {
	msg := `{"channel":"bench-0","id":"2-0","event":"","data":"` + string(appendPayload(nil, 0, time.Now().UnixNano(), 100)) + `"}`
	answers := []string{
		`{"messages":[],"cursor":"1-0","gap":false}`,
		`{"messages":[` + msg + `],"cursor":"2-0","gap":false}`,
		`{"messages":[],"cursor":"2-0","gap":false,"disconnect":{"code":3001,"reason":"shutdown","reconnect":true,"retry_ms":100}}`,
	}
	tests := []struct {
		name       string
		fake       *fakePoll
		connectErr string // empty: connects
		endErr     string // once connected
		conns      int    // connections opened, once connected
	}{
		{"keep-alive", &fakePoll{bodies: answers}, "", "edge disconnected", 1},
		{"connection close", &fakePoll{bodies: answers, closeConn: true}, "", "edge disconnected", 3},
		{"refused", &fakePoll{status: http.StatusServiceUnavailable}, "503", "", 0},
		{"no cursor", &fakePoll{bodies: []string{`{"messages":[]}`}}, "without a cursor", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tt.fake)
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					tt.fake.mu.Lock()
					tt.fake.conns++
					tt.fake.mu.Unlock()
				}
			}
			srv.Start()
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			env := newClientEnv(config{URLs: []*url.URL{u}, Size: 100, Sources: []net.IP{net.IPv4(127, 0, 0, 1)}})
			s := &subscriber{transport: transportPoll, env: env, shard: new(recorder).shard(0)}
			receive, err := s.connectPoll(t.Context())
			if tt.connectErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.connectErr) {
					t.Fatalf("connect: %v, want an error with %q", err, tt.connectErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := receive(); err == nil || !strings.Contains(err.Error(), tt.endErr) {
				t.Errorf("receive: %v, want an error with %q", err, tt.endErr)
			}
			if s.track.unique != 1 || s.unparsed != 0 {
				t.Errorf("received %d messages (%d unparsed), want 1", s.track.unique, s.unparsed)
			}
			tt.fake.mu.Lock()
			defer tt.fake.mu.Unlock()
			if got := strings.Join(tt.fake.since, ","); got != ",1-0,2-0" {
				t.Errorf("since= of the polls: %q, want \",1-0,2-0\"", got)
			}
			if tt.fake.conns != tt.conns {
				t.Errorf("%d connections, want %d", tt.fake.conns, tt.conns)
			}
		})
	}
}
