package transports_test

import (
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
	"github.com/edgeworks/edge/transports/telemetry"
)

// testEdge is a real edge server on a loopback port.
type testEdge struct {
	t    *testing.T
	base string // http://127.0.0.1:port
	srv  *transports.Server
	stop func() error
}

// startEdge starts an edge on the embedded store with its default history.
func startEdge(t *testing.T, cfg transports.Config) *testEdge {
	t.Helper()
	return startEdgeWith(t, cfg, resume.NewMemory(resume.MemoryConfig{}))
}

// startEdgeWith starts an edge on broker, with opts as serveOn takes them.
func startEdgeWith(t *testing.T, cfg transports.Config, broker edge.Broker, opts ...transports.Option) *testEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, cfg, broker, ln, opts...)
}

// serveOn starts an edge on broker that serves ln. Without opts it has
// telemetry of its own for GET /metrics.
func serveOn(t *testing.T, cfg transports.Config, broker edge.Broker, ln net.Listener, opts ...transports.Option) *testEdge {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	if len(opts) == 0 {
		opts = []transports.Option{transports.WithTelemetry(testTelemetry(t, nil))}
	}
	srv, err := transports.New(cfg, broker, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	e := &testEdge{t: t, base: "http://" + ln.Addr().String(), srv: srv}
	stopped := false
	e.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(cfg.WithDefaults().DrainTimeout + 5*time.Second):
			t.Error("server did not stop")
			return nil
		}
	}
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	return e
}

func (e *testEdge) url(path string, query ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(query); i += 2 {
		q.Add(query[i], query[i+1])
	}
	if len(q) == 0 {
		return e.base + path
	}
	return e.base + path + "?" + q.Encode()
}

func (e *testEdge) wsURL(query ...string) string {
	return "ws" + strings.TrimPrefix(e.url("/v1/subscribe", query...), "http")
}

// publish publishes data to channel and returns the id.
func (e *testEdge) publish(channel, data string) string {
	e.t.Helper()
	return e.publishEvent(channel, "", data)
}

func (e *testEdge) publishEvent(channel, event, data string) string {
	e.t.Helper()
	id, err := e.tryPublish(channel, event, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// tryPublish publishes and returns the id, or what went wrong; unlike
// publish it may be called from any goroutine.
func (e *testEdge) tryPublish(channel, event, data string) (string, error) {
	q := []string{"channel", channel}
	if event != "" {
		q = append(q, "event", event)
	}
	resp, err := http.Post(e.url("/v1/publish", q...), "text/plain", strings.NewReader(data))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Channel, ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("publish: status %d, err %v", resp.StatusCode, err)
	}
	return out.ID, nil
}

// getJSON does a GET and decodes the JSON answer.
func getJSON(t *testing.T, u string, header http.Header, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", u, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode
}

// wireMessage is the message object of WS frames and long-poll answers.
type wireMessage struct {
	Channel  string `json:"channel"`
	ID       string `json:"id"`
	Event    string `json:"event"`
	Data     string `json:"data"`
	Encoding string `json:"encoding"`
	Key      string `json:"key"`
}

type pollAnswer struct {
	Messages   []wireMessage `json:"messages"`
	Cursor     string        `json:"cursor"`
	Gap        bool          `json:"gap"`
	GapIn      []string      `json:"gap_channels"`
	Disconnect *struct {
		Code      int  `json:"code"`
		Reconnect bool `json:"reconnect"`
	} `json:"disconnect"`
}

type errorAnswer struct {
	Error struct{ Code, Message string } `json:"error"`
}

// sseEvent is one dispatched SSE event, or a comment.
type sseEvent struct {
	ID, Event, Data string
	HasID           bool
	Comment         string
	Retry           string // the stream's latest retry: value when the event came
}

// sseClient reads an SSE stream opened with net/http.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	cancel func()
}

// openSSE opens an SSE stream; header may carry Last-Event-ID.
func openSSE(t *testing.T, u string, header http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 1024), cancel: cancel}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// read parses the stream per the SSE spec (lines end at \n here, which is
// all the edge sends).
func (c *sseClient) read() {
	defer close(c.events)
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var ev sseEvent
	var data []string
	var retry string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 || ev.HasID {
				ev.Data, ev.Retry = strings.Join(data, "\n"), retry
				c.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			c.events <- sseEvent{Comment: strings.TrimSpace(line[1:])}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID, ev.HasID = value, true
			case "event":
				ev.Event = value
			case "data":
				data = append(data, value)
			case "retry":
				retry = value
			}
		}
	}
}

// next returns the next event that carries data (skipping comments and
// id-only events), failing after a deadline.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		ev := c.nextAny()
		if ev.Comment == "" && (ev.Data != "" || ev.Event != "") {
			return ev
		}
	}
}

// nextAny returns the next event or comment.
func (c *sseClient) nextAny() sseEvent {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatal("SSE stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		c.t.Fatal("no SSE event within 10s")
	}
	return sseEvent{}
}

// lastID returns the id of the id-only event the stream sends once it is
// live, skipping anything before it.
func (c *sseClient) lastID() string {
	c.t.Helper()
	for {
		ev := c.nextAny()
		if ev.HasID && ev.Data == "" && ev.Event == "" {
			return ev.ID
		}
	}
}

// wsClient is a gorilla/websocket client.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, u string) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", u, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

// wsFrame is any frame from the edge: a control frame (Type set), one
// message, or several.
type wsFrame struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref"`
	Channel   string          `json:"channel"`
	ID        string          `json:"id"`
	Error     *struct{ Code, Message string }
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Reconnect *bool  `json:"reconnect"`
	Cursor    string `json:"cursor"`
	messages  []wireMessage
}

// read returns the next frame, splitting message arrays.
func (c *wsClient) read() wsFrame {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	kind, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("websocket read: %v", err)
	}
	if kind != websocket.TextMessage {
		c.t.Fatalf("frame kind %d", kind)
	}
	f, err := decodeWSFrame(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// decodeWSFrame decodes a text frame from the edge, splitting message
// arrays.
func decodeWSFrame(b []byte) (wsFrame, error) {
	var f wsFrame
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &f.messages); err != nil {
			return f, fmt.Errorf("bad array frame %s: %v", b, err)
		}
		return f, nil
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("bad frame %s: %v", b, err)
	}
	if f.Type == "" {
		var m wireMessage
		json.Unmarshal(b, &m)
		f.messages = []wireMessage{m}
	}
	return f, nil
}

// readControl returns the next control frame of the given type, failing
// on any message frame in between.
func (c *wsClient) readControl(typ string) wsFrame {
	c.t.Helper()
	f := c.read()
	if f.Type != typ {
		c.t.Fatalf("got frame %+v, want a %q frame", f, typ)
	}
	return f
}

// readMessages reads until n messages arrived, failing on control frames
// other than those in allow.
func (c *wsClient) readMessages(n int) []wireMessage {
	c.t.Helper()
	var out []wireMessage
	for len(out) < n {
		f := c.read()
		if f.Type != "" {
			c.t.Fatalf("unexpected control frame %+v while waiting for messages", f)
		}
		out = append(out, f.messages...)
	}
	return out
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// drain reads the body of an HTTP response to the end.
func drain(r io.Reader) { io.Copy(io.Discard, r) }

// doJSON sends req, decodes its JSON answer into into and returns the
// status.
func doJSON(t *testing.T, req *http.Request, into any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	decodeJSON(t, resp, into)
	return resp.StatusCode
}

func decodeJSON(t *testing.T, resp *http.Response, into any) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

// runSeam publishes from four goroutines as fast as they can while
// subscribers join (through join) at cursors taken from publish answers
// along the way. When publishing is done, each subscriber must have
// received exactly the channel's ids after its cursor, in order: nothing
// lost, nothing twice, at whatever moment it joined.
func runSeam(t *testing.T, channel string, join func(e *testEdge, cursor string) (collect func(last string) []string)) {
	e := startEdgeWith(t, transports.Config{Hub: edge.Config{QueueBytes: 64 << 20}}, resume.NewMemory(resume.MemoryConfig{HistorySize: 100000}))
	const publishers, each, joins = 4, 750, 20
	first := e.publish(channel, "first")
	ids := make(chan string, publishers*each)
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				ids <- e.publish(channel, "x")
			}
		})
	}
	go func() { wg.Wait(); close(ids) }()
	type sub struct {
		cursor  string
		collect func(last string) []string
	}
	subs := []sub{{first, join(e, first)}}
	n := 0
	for id := range ids {
		if n++; n%(publishers*each/joins) == 0 {
			subs = append(subs, sub{id, join(e, id)})
		}
	}
	all := historyIDs(t, e, channel)
	last := all[len(all)-1]
	for _, s := range subs {
		i := slices.Index(all, s.cursor)
		want := all[i+1:]
		if len(want) == 0 {
			continue // joined at the very end: nothing to wait for
		}
		got := s.collect(last)
		if !slices.Equal(got, want) {
			t.Fatalf("subscriber from %s got %d ids, want %d; first difference at %d", s.cursor, len(got), len(want), firstDiff(got, want))
		}
	}
}

// historyIDs pages through the whole history of channel.
func historyIDs(t *testing.T, e *testEdge, channel string) []string {
	var ids []string
	for cursor := "0-0"; ; {
		var p struct {
			Messages []wireMessage
			Cursor   string
			More     bool
		}
		getJSON(t, e.url("/v1/history", "channel", channel, "since", cursor, "limit", "1000"), nil, &p)
		for _, m := range p.Messages {
			ids = append(ids, m.ID)
		}
		cursor = p.Cursor
		if !p.More {
			return ids
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// testTelemetry installs an SDK of the test's own, which ignores the
// process environment: metrics for GET /metrics and, when spans is not
// nil, traces to spans.
func testTelemetry(t *testing.T, spans sdktrace.SpanExporter) transports.Telemetry {
	t.Helper()
	o := telemetry.Options{Env: func(string) string { return "" }}
	if spans != nil {
		o.SpanExporters = []sdktrace.SpanExporter{spans}
	}
	tel, err := telemetry.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return transports.Telemetry{Meters: tel.Meters, Tracers: tel.Tracers, Propagator: tel.Propagator, Metrics: tel.Handler}
}
