package transports_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/fdelta"
	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports"
)

// deltaWire is a message object as a delta subscriber receives it, or a
// gap signal.
type deltaWire struct {
	Channel  string `json:"channel"`
	ID       string `json:"id"`
	Event    string `json:"event"`
	Key      string `json:"key"`
	Data     string `json:"data"`
	Encoding string `json:"encoding"`
	Delta    string `json:"delta"`
	gap      bool
}

// payload returns the message's data as bytes.
func (m deltaWire) payload() ([]byte, error) {
	if m.Encoding == "base64" {
		return base64.StdEncoding.DecodeString(m.Data)
	}
	return []byte(m.Data), nil
}

// deltaSub is a subscription with delta=fossil: next returns the next
// message object or gap signal.
type deltaSub interface {
	next(within time.Duration) (deltaWire, error)
	close()
}

// deltaApplier plays client.js: it keeps the last payload of each key,
// applies patches, and counts what came how.
type deltaApplier struct {
	held   map[string]deltaHeld
	deltas int
	fulls  []string // ids of messages that came in full
	bytes  int      // data bytes received
}

type deltaHeld struct {
	id   string
	data []byte
}

func newDeltaApplier() *deltaApplier { return &deltaApplier{held: make(map[string]deltaHeld)} }

// apply returns the payload m stands for.
func (a *deltaApplier) apply(m deltaWire) ([]byte, error) {
	p, err := m.payload()
	if err != nil {
		return nil, err
	}
	a.bytes += len(m.Data)
	if m.Delta == "" {
		a.fulls = append(a.fulls, m.ID)
	} else {
		h, ok := a.held[m.Key]
		if !ok || h.id != m.Delta {
			return nil, fmt.Errorf("message %s is a delta against %s, but the client holds %q of key %q", m.ID, m.Delta, h.id, m.Key)
		}
		if p, err = fdelta.Apply(h.data, p); err != nil {
			return nil, fmt.Errorf("message %s: %w", m.ID, err)
		}
		a.deltas++
	}
	a.held[m.Key] = deltaHeld{id: m.ID, data: p}
	return p, nil
}

// deltaColumns are the transports, each subscribing with delta=fossil.
var deltaColumns = []struct {
	name string
	open func(t *testing.T, e *testEdge, channel, cursor string) deltaSub
}{
	{"ws-url", openDeltaWSURL},
	{"ws-op", openDeltaWSOp},
	{"sse", openDeltaSSE},
	{"poll", openDeltaPoll},
}

// TestDelta proves deltas on every backend and transport: every message,
// its patch applied, is history's payload byte for byte; patches are
// sent; the first message of a stream, after a resume and after a gap,
// and every edge.DeltaResync-th, is full.
func TestDelta(t *testing.T) {
	for _, b := range contractBackends[:3] {
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range deltaColumns {
				t.Run(col.name, func(t *testing.T) {
					c := cell{use: use}
					t.Run("live-and-resume", func(t *testing.T) { deltaLiveAndResume(t, c.edge(t, 0), col.open, col.name) })
					t.Run("gap", func(t *testing.T) { deltaGap(t, c.edge(t, 5), col.open, col.name) })
					t.Run("keys", func(t *testing.T) { deltaKeys(t, c.edge(t, 0), col.open, col.name) })
				})
			}
		})
	}
}

// historyPayloads returns the payload of every retained message of
// channel by id.
func historyPayloads(t *testing.T, e *testEdge, channel string) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for cursor := "0-0"; ; {
		var p struct {
			Messages []deltaWire
			Cursor   string
			More     bool
		}
		getJSON(t, e.url("/v1/history", "channel", channel, "since", cursor, "limit", "1000"), nil, &p)
		for _, m := range p.Messages {
			data, err := m.payload()
			if err != nil {
				t.Fatal(err)
			}
			out[m.ID] = data
		}
		cursor = p.Cursor
		if !p.More {
			return out
		}
	}
}

// readDelta reads n messages from s, applies them and checks each against
// history.
func readDelta(t *testing.T, e *testEdge, s deltaSub, a *deltaApplier, channel string, n int) []string {
	t.Helper()
	var ids []string
	var want map[string][]byte
	for len(ids) < n {
		m, err := s.next(arrival)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(ids), n, err)
		}
		if m.gap {
			t.Fatalf("gap signal after %d messages", len(ids))
		}
		p, err := a.apply(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want[m.ID]; !ok {
			want = historyPayloads(t, e, channel)
		}
		if !bytes.Equal(p, want[m.ID]) {
			t.Fatalf("message %s: payload %q; history has %q", m.ID, p, want[m.ID])
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// fullAt returns the positions in ids of the ids in fulls.
func fullAt(ids, fulls []string) []int {
	var at []int
	for i, id := range ids {
		for _, f := range fulls {
			if f == id {
				at = append(at, i)
			}
		}
	}
	return at
}

func deltaLiveAndResume(t *testing.T, e *testEdge, open func(*testing.T, *testEdge, string, string) deltaSub, col string) {
	ch := "delta.live." + col
	seed := e.publish(ch, string(transports.DashboardUpdate(0)))
	s := open(t, e, ch, seed)
	a := newDeltaApplier()
	n := edge.DeltaResync + 5
	for i := 1; i <= n; i++ {
		e.publish(ch, string(transports.DashboardUpdate(i)))
	}
	ids := readDelta(t, e, s, a, ch, n)
	// The first message the channel's state sees has no base; then every
	// DeltaResync-th. A long-poll may get more in full: a message it
	// reads from history before the relay brought it to the hub (Redis).
	at := fullAt(ids, a.fulls)
	if col != "poll" && fmt.Sprint(at) != fmt.Sprint([]int{0, edge.DeltaResync}) ||
		!slices.Contains(at, 0) || !slices.Contains(at, edge.DeltaResync) {
		t.Errorf("full messages at %v of %d; want [0 %d]", at, n, edge.DeltaResync)
	}
	if a.deltas < n/2 {
		t.Errorf("%d deltas of %d messages", a.deltas, n)
	}
	s.close()

	// Resume from three messages back: history comes in full (but for a
	// long-poll, which trusts its cursor), then deltas against it.
	// The client holds what it got up to its cursor.
	a = newDeltaApplier()
	a.held[""] = deltaHeld{id: ids[n-4], data: historyPayloads(t, e, ch)[ids[n-4]]}
	s = open(t, e, ch, ids[n-4])
	for i := n + 1; i <= n+3; i++ {
		e.publish(ch, string(transports.DashboardUpdate(i)))
	}
	resumed := readDelta(t, e, s, a, ch, 6)
	at = fullAt(resumed, a.fulls)
	if col == "poll" {
		// A poll trusts its cursor, and gets the frames the hub relayed
		// (with their patches) for what it reads from history.
		if a.deltas == 0 {
			t.Error("no delta after the resume")
		}
	} else if fmt.Sprint(at) != fmt.Sprint([]int{0, 1, 2}) {
		t.Errorf("after the resume, full messages at %v; want [0 1 2]", at)
	}
	s.close()
}

func deltaGap(t *testing.T, e *testEdge, open func(*testing.T, *testEdge, string, string) deltaSub, col string) {
	ch := "delta.gap." + col
	first := e.publish(ch, string(transports.DashboardUpdate(0)))
	second := e.publish(ch, string(transports.DashboardUpdate(1)))
	// Redis trims whole nodes of a stream, so publish until the message
	// after the cursor is gone.
	secondID, _ := edge.ParseID(second)
	retainsSecond := func() bool {
		oldest, err := edge.ParseID(historyIDs(t, e, ch)[0])
		return err != nil || !secondID.Less(oldest)
	}
	for n := 2; retainsSecond(); n++ {
		if n == 1000 {
			t.Fatalf("%s still retains its second message", ch)
		}
		e.publish(ch, string(transports.DashboardUpdate(n)))
	}
	retained := len(historyIDs(t, e, ch))
	s := open(t, e, ch, first)
	m, err := s.next(arrival)
	if err != nil || !m.gap {
		t.Fatalf("first after the resume: %+v, %v; want the gap signal", m, err)
	}
	a := newDeltaApplier()
	readDelta(t, e, s, a, ch, retained)
	for i := range 3 {
		e.publish(ch, string(transports.DashboardUpdate(2000+i)))
	}
	a.fulls = nil
	ids := readDelta(t, e, s, a, ch, 3)
	// The channel's state saw none of the retained messages: the first
	// live message has no base (a long-poll may get more in full).
	if at := fullAt(ids, a.fulls); col != "poll" && fmt.Sprint(at) != "[0]" || len(at) == 0 || at[0] != 0 {
		t.Errorf("live after the gap: full at %v; want [0]", at)
	}
	s.close()
}

// deltaKeys publishes the states of two instruments, a and b, with
// key=, interleaved: each is a patch against the previous message of
// its own key (the applier checks the base per key).
func deltaKeys(t *testing.T, e *testEdge, open func(*testing.T, *testEdge, string, string) deltaSub, col string) {
	ch := "delta.keys." + col
	seed := e.publish(ch, "seed")
	s := open(t, e, ch, seed)
	a := newDeltaApplier()
	const n = 20
	for i := range n {
		key, data := "a", string(transports.DashboardUpdate(i/2))
		if i%2 == 1 {
			key, data = "b", strings.ToUpper(data)
		}
		resp, err := http.Post(e.url("/v1/publish", "channel", ch, "key", key), "text/plain", strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		drain(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish with key=%s: %d", key, resp.StatusCode)
		}
	}
	ids := readDelta(t, e, s, a, ch, n)
	at := fullAt(ids, a.fulls)
	if col != "poll" && fmt.Sprint(at) != "[0 1]" || len(at) < 2 || at[0] != 0 || at[1] != 1 {
		t.Errorf("full messages at %v; want [0 1] (the first of each key)", at)
	}
	if a.deltas < n/2 {
		t.Errorf("%d deltas of %d messages", a.deltas, n)
	}
	if _, ok := a.held["a"]; !ok || len(a.held) != 2 {
		t.Errorf("the messages came with keys %v; want a and b", slices.Collect(maps.Keys(a.held)))
	}
	s.close()
}

// wsDeltaSub reads a WebSocket delta subscription.
type wsDeltaSub struct {
	conn       *websocket.Conn
	pending    []deltaWire
	subscribed bool // the subscribe op was acknowledged
}

func openDeltaWSURL(t *testing.T, e *testEdge, channel, cursor string) deltaSub {
	t.Helper()
	q := []string{"channel", channel, "delta", "fossil"}
	if cursor != "" {
		q = append(q, "since", cursor)
	}
	s := &wsDeltaSub{conn: dialWS(t, e.wsURL(q...)).conn}
	s.waitSubscribed(t, channel)
	return s
}

// waitSubscribed reads until the subscription is acknowledged, once its
// history was sent: what is published from then on is live.
func (s *wsDeltaSub) waitSubscribed(t *testing.T, channel string) {
	t.Helper()
	for !s.subscribed {
		if err := s.read(arrival); err != nil {
			t.Fatalf("subscribe %s: %v", channel, err)
		}
	}
}

// openDeltaWSOp subscribes with a subscribe op, and returns once it is
// acknowledged (history before the acknowledgement is kept for next).
// openDeltaWSURL subscribes with channel= in the URL, the same way.
func openDeltaWSOp(t *testing.T, e *testEdge, channel, cursor string) deltaSub {
	t.Helper()
	c := dialWS(t, e.wsURL())
	op := map[string]any{"op": "subscribe", "channel": channel, "delta": "fossil"}
	if cursor != "" {
		op["since"] = cursor
	}
	c.send(op)
	s := &wsDeltaSub{conn: c.conn}
	s.waitSubscribed(t, channel)
	return s
}

func (s *wsDeltaSub) next(within time.Duration) (deltaWire, error) {
	for len(s.pending) == 0 {
		if err := s.read(within); err != nil {
			return deltaWire{}, err
		}
	}
	m := s.pending[0]
	s.pending = s.pending[1:]
	return m, nil
}

// read reads a frame into pending.
func (s *wsDeltaSub) read(within time.Duration) error {
	s.conn.SetReadDeadline(time.Now().Add(within))
	_, b, err := s.conn.ReadMessage()
	if err != nil {
		return err
	}
	if len(b) > 0 && b[0] == '[' {
		var list []deltaWire
		err := json.Unmarshal(b, &list)
		s.pending = append(s.pending, list...)
		return err
	}
	var f struct {
		Type string `json:"type"`
		deltaWire
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	switch f.Type {
	case "":
		s.pending = append(s.pending, f.deltaWire)
	case "gap":
		s.pending = append(s.pending, deltaWire{Channel: f.Channel, gap: true})
	case "subscribed":
		s.subscribed = true
	default:
		return fmt.Errorf("frame %s", b)
	}
	return nil
}

func (s *wsDeltaSub) close() { s.conn.Close() }

// sseDeltaSub reads an SSE delta subscription: its events carry the
// message object even for one channel.
type sseDeltaSub struct {
	c       *sseClient
	live    bool        // the id-only event came: history was sent
	pending []deltaWire // what came before it
}

// openDeltaSSE opens the stream and returns once its history was sent.
func openDeltaSSE(t *testing.T, e *testEdge, channel, cursor string) deltaSub {
	t.Helper()
	h := http.Header{}
	if cursor != "" {
		h.Set("Last-Event-ID", cursor)
	}
	s := &sseDeltaSub{c: openSSE(t, e.url("/v1/subscribe", "channel", channel, "delta", "fossil"), h)}
	for !s.live {
		m, err := s.read(arrival)
		if err != nil {
			t.Fatalf("subscribe %s: %v", channel, err)
		}
		if !s.live {
			s.pending = append(s.pending, m)
		}
	}
	return s
}

func (s *sseDeltaSub) next(within time.Duration) (deltaWire, error) {
	if len(s.pending) > 0 {
		m := s.pending[0]
		s.pending = s.pending[1:]
		return m, nil
	}
	return s.read(within)
}

// read returns the next message or gap signal, or notes the id-only
// event that ends the history (and returns nothing then).
func (s *sseDeltaSub) read(within time.Duration) (deltaWire, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		var ev sseEvent
		select {
		case e, ok := <-s.c.events:
			if !ok {
				return deltaWire{}, errors.New("SSE stream ended")
			}
			ev = e
		case <-timer.C:
			return deltaWire{}, fmt.Errorf("nothing within %v", within)
		}
		if ev.HasID && ev.Data == "" && ev.Event == "" && !s.live {
			s.live = true
			return deltaWire{}, nil
		}
		if ev.Comment != "" || ev.Data == "" && ev.Event == "" {
			continue
		}
		var m deltaWire
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			return m, fmt.Errorf("event %q: %w", ev.Data, err)
		}
		switch {
		case ev.Event == "gap":
			m.gap = true
		case ev.ID != m.ID:
			return m, fmt.Errorf("event id %q for message %s", ev.ID, m.ID)
		}
		return m, nil
	}
}

func (s *sseDeltaSub) close() { s.c.close() }

// pollDeltaSub chains long-polls with delta=fossil, each from the cursor
// of the answer before.
type pollDeltaSub struct {
	e       *testEdge
	channel string
	cursor  string
	ctx     context.Context
	cancel  func()
	pending []deltaWire
	first   chan pollDeltaAnswer // the first poll's answer, until next took it
}

func openDeltaPoll(t *testing.T, e *testEdge, channel, cursor string) deltaSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pollDeltaSub{e: e, channel: channel, cursor: cursor, ctx: ctx, cancel: cancel, first: make(chan pollDeltaAnswer, 1)}
	t.Cleanup(cancel)
	// The first poll is under way once the edge counts it: what is
	// published from then on is relayed to it (and its channel's delta
	// state sees it).
	go func() {
		a, err := p.poll(ctx)
		p.first <- pollDeltaAnswer{a, err}
	}()
	deadline := time.Now().Add(arrival)
	for {
		if n, _ := value(scrape(t, e), "edge_connections", "transport", "poll"); n > 0 {
			break
		}
		select {
		case r := <-p.first: // answered at once, from history
			p.first <- r
			return p
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("poll of %s: the edge does not count it within %v", channel, arrival)
		}
	}
	return p
}

type pollDeltaAnswer struct {
	a   pollDeltaBody
	err error
}

type pollDeltaBody struct {
	Messages []deltaWire `json:"messages"`
	Cursor   string      `json:"cursor"`
	Gap      bool        `json:"gap"`
}

// poll sends one long-poll from the cursor.
func (p *pollDeltaSub) poll(ctx context.Context) (pollDeltaBody, error) {
	var a pollDeltaBody
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.e.url("/v1/subscribe", "channel", p.channel, "since", p.cursor, "delta", "fossil", "timeout", "10s"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if err = json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("poll: %d, %v", resp.StatusCode, err)
	}
	return a, nil
}

func (p *pollDeltaSub) next(within time.Duration) (deltaWire, error) {
	ctx, cancel := context.WithTimeout(p.ctx, within)
	defer cancel()
	for len(p.pending) == 0 {
		var a pollDeltaBody
		var err error
		if p.first != nil {
			r := <-p.first
			p.first = nil
			a, err = r.a, r.err
		} else {
			a, err = p.poll(ctx)
		}
		if err != nil {
			return deltaWire{}, err
		}
		if a.Gap {
			p.pending = append(p.pending, deltaWire{Channel: p.channel, gap: true})
		}
		p.pending = append(p.pending, a.Messages...)
		p.cursor = a.Cursor
	}
	m := p.pending[0]
	p.pending = p.pending[1:]
	return m, nil
}

func (p *pollDeltaSub) close() { p.cancel() }

// TestDeltaRefused: delta= and a subscribe op's "delta" take fossil only.
func TestDeltaRefused(t *testing.T) {
	e := startEdge(t, transports.Config{})
	for _, v := range []string{"vcdiff", "FOSSIL", "1", "fossil,fossil", strings.Repeat("x", 300)} {
		for _, transport := range []string{"sse", "poll"} {
			var ans errorAnswer
			st := getJSON(t, e.url("/v1/subscribe", "channel", "a", "transport", transport, "delta", v), http.Header{"Accept": {"text/event-stream"}}, &ans)
			if st != http.StatusBadRequest || ans.Error.Code != "bad_request" {
				t.Errorf("%s delta=%q: %d %+v; want 400 bad_request", transport, v, st, ans)
			}
		}
		if _, resp, err := websocket.DefaultDialer.Dial(e.wsURL("channel", "a", "delta", v), nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("ws delta=%q: %v; want 400", v, err)
		}
	}
	c := dialWS(t, e.wsURL())
	for _, op := range []map[string]any{
		{"op": "subscribe", "channel": "a", "delta": "gzip", "ref": 1},
		{"op": "subscribe", "channel": "a", "delta": true, "ref": 2},
		{"op": "publish", "channel": "a", "data": "x", "delta": "fossil", "ref": 3},
	} {
		c.send(op)
		if f := c.read(); f.Type != "error" || f.Error == nil || f.Error.Code != "bad_request" {
			t.Errorf("%v: %+v; want a bad_request error frame", op, f)
		}
	}
}

// TestDeltaWithConflate: a subscriber that asks for deltas and conflation
// is refused nothing and gets whole messages.
func TestDeltaWithConflate(t *testing.T) {
	e := startEdge(t, transports.Config{})
	seed := e.publish("dc", string(transports.DashboardUpdate(0)))
	ws := dialWS(t, e.wsURL("channel", "dc", "since", seed, "delta", "fossil", "conflate", "50ms"))
	ws.readControl("subscribed")
	for i := 1; i <= 5; i++ {
		e.publish("dc", string(transports.DashboardUpdate(i)))
	}
	var got []wireMessage
	for len(got) == 0 || got[len(got)-1].Data != string(transports.DashboardUpdate(5)) {
		got = append(got, ws.read().messages...)
	}
	var poll struct{ Messages []deltaWire }
	if st := getJSON(t, e.url("/v1/subscribe", "channel", "dc", "since", seed, "delta", "fossil", "conflate", "50ms", "timeout", "0"), nil, &poll); st != http.StatusOK || len(poll.Messages) == 0 {
		t.Fatalf("poll: %d %+v", st, poll)
	}
	for _, m := range poll.Messages {
		got = append(got, wireMessage{ID: m.ID, Data: m.Data})
		if m.Delta != "" {
			t.Fatalf("a conflating poll got a delta: %+v", m)
		}
	}
	for _, m := range got {
		if !strings.HasPrefix(m.Data, `{"widgets"`) {
			t.Fatalf("message %s is not a whole payload: %q", m.ID, m.Data)
		}
	}
}
