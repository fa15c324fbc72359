package transports_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// laneRequest opens a connection to e that the publish lane serves (it
// starts with a publish) or, with viaNetHTTP, one that net/http serves (it
// starts with another request, answered first), and writes request on it.
func laneRequest(t *testing.T, e *testEdge, request string, viaNetHTTP bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	if !viaNetHTTP {
		return rawRequest(t, e, request)
	}
	c, br := rawRequest(t, e, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp.Body)
	resp.Body.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c, br
}

// laneAnswer is an answer with what differs between two equal answers
// (the date, a generated request id, a message id) taken out.
type laneAnswer struct {
	status int
	header http.Header
	body   string
	close  bool
}

var messageID = regexp.MustCompile(`"id":"[0-9]+-[0-9]+"`)

func readLaneAnswer(t *testing.T, br *bufio.Reader) laneAnswer {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("answer's body: %v", err)
	}
	h := resp.Header.Clone()
	if h.Get("Date") == "" {
		t.Error("an answer without Date")
	}
	h.Del("Date")
	if id := h.Get("X-Request-Id"); id == "" {
		t.Error("an answer without X-Request-Id")
	} else if !strings.HasPrefix(id, "client-") {
		h.Set("X-Request-Id", "generated")
	}
	return laneAnswer{resp.StatusCode, h, messageID.ReplaceAllString(string(body), `"id":"ID"`), resp.Close}
}

// The publish lane answers every publish as net/http's path does: the same
// status, headers and body, and the same decision to keep the connection.
// Each request is sent first on a connection the lane serves, then on one
// net/http serves.
func TestLaneAnswersAsNetHTTP(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the publish lane serves on Linux only")
	}
	e := startEdge(t, transports.Config{PublishKeys: []string{"pk-1"}, MaxPayload: 64, CORSOrigin: "https://app.example"})
	publish := func(query, headers, body string) string {
		return "POST /v1/publish" + query + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	key := "Authorization: Bearer pk-1\r\n"
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"publish", publish("?channel=lane", key, "hello"), 200},
		{"with an event", publish("?channel=lane&event=price", key, "1.5"), 200},
		{"empty payload", publish("?channel=lane", key, ""), 200},
		{"without a key", publish("?channel=lane", "", "hello"), 401},
		{"with a wrong key", publish("?channel=lane", "Authorization: Bearer pk-2\r\n", "hello"), 401},
		{"bad channel", publish("?channel=a%20b", key, "hello"), 400},
		{"no channel", publish("", key, "hello"), 400},
		{"bad event", publish("?channel=lane&event=%00", key, "hello"), 400},
		{"semicolon in the query", publish("?channel=lane;x", key, "hello"), 400},
		{"payload over the limit", publish("?channel=lane", key, strings.Repeat("x", 65)), 413},
		{"from another site", publish("?channel=lane", key+"Origin: https://evil.example\r\n", "hello"), 403},
		{"cross-site without origin", publish("?channel=lane", key+"Sec-Fetch-Site: cross-site\r\n", "hello"), 403},
		{"from an allowed origin", publish("?channel=lane", key+"Origin: https://app.example\r\n", "hello"), 200},
		{"request id", publish("?channel=lane", key+"X-Request-Id: client-7\r\n", "hello"), 200},
		{"connection close", publish("?channel=lane", key+"Connection: close\r\n", "hello"), 200},
		{"keep-alive", publish("?channel=lane", key+"Connection: keep-alive\r\n", "hello"), 200},
		{"lower-case names", "POST /v1/publish?channel=lane HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer pk-1\r\ncontent-length: 2\r\n\r\nhi", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var answers [2]laneAnswer
			for i, viaNetHTTP := range []bool{false, true} {
				c, br := laneRequest(t, e, tt.request, viaNetHTTP)
				answers[i] = readLaneAnswer(t, br)
				c.Close()
			}
			lane, nethttp := answers[0], answers[1]
			if lane.status != tt.status {
				t.Errorf("lane: %d %s, want %d", lane.status, lane.body, tt.status)
			}
			if lane.status != nethttp.status || lane.body != nethttp.body || lane.close != nethttp.close {
				t.Errorf("lane: %d close %v %s\nnet/http: %d close %v %s", lane.status, lane.close, lane.body, nethttp.status, nethttp.close, nethttp.body)
			}
			for _, h := range []http.Header{lane.header, nethttp.header} {
				h.Del("Connection") // compared as close above
			}
			if !equalHeaders(lane.header, nethttp.header) {
				t.Errorf("lane's header %v\nnet/http's %v", lane.header, nethttp.header)
			}
		})
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// A lane connection serves pipelined publishes in order, hands itself to
// net/http at the first request that is not a plain publish (whatever
// the lane had read of it is replayed), and leaves to net/http every
// request it does not read itself; nothing is stored twice or lost, and a
// body cut short stores nothing.
func TestLaneKeepAliveAndHandOver(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the publish lane serves on Linux only")
	}
	e := startEdge(t, transports.Config{})
	publish := func(channel, headers, body string) string {
		return "POST /v1/publish?channel=" + channel + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	history := func(channel string) string {
		return "GET /v1/history?channel=" + channel + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	}
	tests := []struct {
		name       string
		channel    string
		writes     []string // written one after another
		closeWrite bool     // the client then closes its side
		answers    []int    // statuses, in order
		stored     []string // the channel's payloads afterwards
	}{
		{
			name:    "pipelined publishes",
			channel: "pipe",
			writes:  []string{publish("pipe", "", "1") + publish("pipe", "", "2") + publish("pipe", "", "3")},
			answers: []int{200, 200, 200},
			stored:  []string{"1", "2", "3"},
		},
		{
			name:    "a publish, then history on the same connection",
			channel: "then",
			writes:  []string{publish("then", "", "1"), history("then")},
			answers: []int{200, 200},
			stored:  []string{"1"},
		},
		{
			name:    "a publish and history pipelined",
			channel: "piped",
			writes:  []string{publish("piped", "", "1") + history("piped") + publish("piped", "", "2")},
			answers: []int{200, 200, 200},
			stored:  []string{"1", "2"},
		},
		{
			name:    "a head split in pieces",
			channel: "split",
			writes:  []string{"POST /v1/pub", "lish?channel=split HTTP/1.1\r\nHo", "st: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhe", "llo"},
			answers: []int{200},
			stored:  []string{"hello"},
		},
		{
			name:    "a head larger than the lane reads",
			channel: "big",
			writes:  []string{publish("big", "X-Fill: "+strings.Repeat("f", 5000)+"\r\n", "1")},
			answers: []int{200},
			stored:  []string{"1"},
		},
		{
			name:    "HTTP/1.0",
			channel: "old",
			writes:  []string{"POST /v1/publish?channel=old HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\n1"},
			answers: []int{200},
			stored:  []string{"1"},
		},
		{
			name:    "chunked",
			channel: "chunked",
			writes:  []string{"POST /v1/publish?channel=chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
			answers: []int{200},
			stored:  []string{"abc"},
		},
		{
			name:    "a publish, then a chunked one",
			channel: "mixed",
			writes:  []string{publish("mixed", "", "1"), "POST /v1/publish?channel=mixed HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n2\r\n0\r\n\r\n"},
			answers: []int{200, 200},
			stored:  []string{"1", "2"},
		},
		{
			name:       "a body cut short",
			channel:    "cut",
			writes:     []string{"POST /v1/publish?channel=cut HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12345"},
			closeWrite: true,
			answers:    []int{400},
		},
		{
			name:    "garbage after a publish",
			channel: "junk",
			writes:  []string{publish("junk", "", "1") + "\x00\x01\x02 nonsense\r\n\r\n"},
			answers: []int{200, 400},
			stored:  []string{"1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := rawRequest(t, e, tt.writes[0])
			for _, w := range tt.writes[1:] {
				if _, err := io.WriteString(c, w); err != nil {
					t.Fatal(err)
				}
			}
			if tt.closeWrite {
				c.(*net.TCPConn).CloseWrite()
			}
			for i, want := range tt.answers {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				drain(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("answer %d: %d, want %d", i, resp.StatusCode, want)
				}
			}
			c.Close()
			var got []string
			var p struct{ Messages []wireMessage }
			getJSON(t, e.url("/v1/history", "channel", tt.channel), nil, &p)
			for _, m := range p.Messages {
				got = append(got, m.Data)
			}
			if !slices.Equal(got, tt.stored) {
				t.Errorf("stored %q, want %q", got, tt.stored)
			}
		})
	}
}

// On drain the lane closes its idle keep-alive connections, answers the
// request it is serving, and Run returns once every lane connection has
// ended.
func TestLaneDrain(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the publish lane serves on Linux only")
	}
	gate := &gatedStore{Broker: resume.NewMemory(resume.MemoryConfig{}), entered: make(chan struct{}, 1), release: make(chan struct{})}
	e := startEdgeWith(t, transports.Config{DrainTimeout: 5 * time.Second}.WithDefaults(), gate)
	close(gate.release) // the first publish goes through
	idle, idleReader := rawRequest(t, e, "POST /v1/publish?channel=drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\n1")
	resp, err := http.ReadResponse(idleReader, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", resp, err)
	}
	drain(resp.Body)
	<-gate.entered
	gate.release = make(chan struct{})
	waiting, waitingReader := rawRequest(t, e, "POST /v1/publish")
	busy, busyReader := rawRequest(t, e, "POST /v1/publish?channel=drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\n2")
	<-gate.entered // the lane is serving it, held in the store
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	for name, br := range map[string]*bufio.Reader{"idle": idleReader, "waiting for a head": waitingReader} {
		if n, err := br.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s connection: read %d bytes, want it closed", name, n)
		}
	}
	// Draining now: the publish being served is answered, and told the
	// connection closes.
	close(gate.release)
	resp, err = http.ReadResponse(busyReader, nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("publish answered while draining: %v %v, want 200 with Connection: close", resp, err)
	}
	drain(resp.Body)
	busy.Close()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	idle.Close()
	waiting.Close()
}

// gatedStore signals entered as a publish reaches it and holds it until
// release is closed.
type gatedStore struct {
	edge.Broker
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Publish(ctx context.Context, channel, event string, data []byte) (edge.ID, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Broker.Publish(ctx, channel, event, data)
}
