package transports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// cfItem is a message or a join or leave that a conflating subscriber
// received.
type cfItem struct {
	channel, id, data string
	event, info       string // join or leave, and the member's info, on a presence event
}

// cfSub is a conflating subscription with presence=1. arm makes sure
// that what happens next is heard (a long-poll must be held); next
// returns the next message or presence event.
type cfSub interface {
	arm(t *testing.T)
	next(t *testing.T) cfItem
	close()
}

// cfColumns are the transports: open subscribes to channels from since
// (a cursor) with the conflation window conflate.
var cfColumns = []struct {
	name  string
	multi bool
	open  func(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub
}{
	{"ws-url", false, openCfWSURL},
	{"ws-op", false, openCfWSOp},
	{"ws-op-url", false, openCfWSOpURL},
	{"sse", false, openCfSSE},
	{"sse-multi", true, openCfSSE},
	{"poll", false, openCfPoll},
}

// TestConflate proves conflate= on every backend and transport: the
// first message comes at once; a burst of 50 messages of keys a and b
// comes as a few, among them exactly the burst's newest of a and of b,
// with their stored ids and payloads, in increasing id order; a resume
// without conflate from each delivered id gets exactly what history has
// after it; a resume with conflate from before the burst gets the
// conflated catch-up (the newest of each key); joins and leaves come
// unconflated.
func TestConflate(t *testing.T) {
	for _, b := range contractBackends {
		if !presenceOn(b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range cfColumns {
				t.Run(col.name, func(t *testing.T) {
					e := presenceEdge(t, presenceBroker(t, use), "n1", 0)
					channels := []string{"room.cf-" + col.name}
					if col.multi {
						channels = append(channels, channels[0]+".b")
					}
					room := channels[0]
					from := map[string]string{}
					for _, ch := range channels {
						from[ch] = e.publish(ch, "first")
					}
					since := cursorFor(t, channels, from)
					s := col.open(t, e, channels, since, "1s")
					defer s.close()

					s.arm(t)
					lead := publishKey(t, e, room, "a", "lead")
					if got := nextMessage(t, s); got != (cfItem{channel: room, id: lead, data: "lead"}) {
						t.Fatalf("first delivery %+v, want the lead message %s", got, lead)
					}

					s.arm(t)
					burst := publishBurst(t, e, room, 50)
					last := burst[len(burst)-1]
					hist := historyMessages(t, e, room)
					var got []cfItem
					for len(got) == 0 || got[len(got)-1].id != last {
						got = append(got, nextMessage(t, s))
						s.arm(t)
					}
					checkConflated(t, room, got, hist, burst)

					// Joins and leaves are not conflated.
					s.arm(t)
					m := openSSE(t, e.url("/v1/subscribe", "channel", room, "info", "member"), nil)
					m.lastID()
					if it := nextPresence(t, s); it.event != "join" {
						t.Fatalf("heard %+v, want a join", it)
					}
					s.arm(t)
					m.close()
					if it := nextPresence(t, s); it.event != "leave" {
						t.Fatalf("heard %+v, want a leave", it)
					}

					// A resume without conflate from each delivered id
					// gets exactly history's messages after it.
					for _, it := range got {
						var a pollAnswer
						getJSON(t, e.url("/v1/subscribe", "channel", room, "since", it.id, "timeout", "0", "limit", "1000"), nil, &a)
						i := slices.IndexFunc(hist, func(m wireMessage) bool { return m.ID == it.id })
						if want := hist[i+1:]; !slices.Equal(a.Messages, want) || a.Gap {
							t.Fatalf("resume from %s: %d messages (gap %v), want history's %d after it", it.id, len(a.Messages), a.Gap, len(want))
						}
					}

					// A resume with conflate from before the burst gets
					// the newest of each key.
					r := col.open(t, e, channels, since, "1s")
					defer r.close()
					var caught []cfItem
					for len(caught) == 0 || caught[len(caught)-1].id != last {
						r.arm(t)
						caught = append(caught, nextMessage(t, r))
					}
					a, b := newestOf(hist, "a#"), newestOf(hist, "b#")
					want := []cfItem{{channel: room, id: a.ID, data: a.Data}, {channel: room, id: b.ID, data: b.Data}}
					if a.ID > b.ID {
						want[0], want[1] = want[1], want[0]
					}
					if !slices.Equal(caught, want) {
						t.Fatalf("conflated catch-up %+v, want %+v", caught, want)
					}
				})
			}
		})
	}
}

// checkConflated checks what a conflating subscriber got of a burst
// (whose ids are burst, ending with got's last) against history.
func checkConflated(t *testing.T, room string, got []cfItem, hist []wireMessage, burst []string) {
	t.Helper()
	t.Logf("%d of a burst of %d delivered", len(got), len(burst))
	if len(got) > 10 {
		t.Fatalf("%d of a burst of %d delivered, want at most 10", len(got), len(burst))
	}
	for i, it := range got {
		j := slices.IndexFunc(hist, func(m wireMessage) bool { return m.ID == it.id })
		if j < 0 || it.channel != room || hist[j].Data != it.data || !slices.Contains(burst, it.id) {
			t.Fatalf("delivered %+v, which is no message of the burst in history", it)
		}
		if i > 0 && !idLess(t, got[i-1].id, it.id) {
			t.Fatalf("delivered %s after %s: ids must increase", it.id, got[i-1].id)
		}
	}
	for _, key := range []string{"a#", "b#"} {
		newest := newestOf(hist, key)
		if !slices.Contains(got, cfItem{channel: room, id: newest.ID, data: newest.Data}) {
			t.Fatalf("the burst's newest %s… (%s) was not delivered: got %+v", key, newest.ID, got)
		}
	}
}

// idLess reports whether id a is before id b.
func idLess(t *testing.T, a, b string) bool {
	t.Helper()
	x, err1 := edge.ParseID(a)
	y, err2 := edge.ParseID(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("ids %q, %q: %v %v", a, b, err1, err2)
	}
	return x.Less(y)
}

// newestOf returns the newest message of hist whose data starts with
// prefix.
func newestOf(hist []wireMessage, prefix string) wireMessage {
	for i := len(hist) - 1; i >= 0; i-- {
		if strings.HasPrefix(hist[i].Data, prefix) {
			return hist[i]
		}
	}
	return wireMessage{}
}

// nextPresence returns the next join or leave s hears of the member
// whose info is "member", failing on a message.
func nextPresence(t *testing.T, s cfSub) cfItem {
	t.Helper()
	for {
		it := s.next(t)
		if it.event == "" {
			t.Fatalf("unexpected %+v", it)
		}
		if it.info == "member" {
			return it
		}
	}
}

// nextMessage returns the next message s gets, skipping joins and
// leaves.
func nextMessage(t *testing.T, s cfSub) cfItem {
	t.Helper()
	for {
		if it := s.next(t); it.event == "" {
			return it
		}
	}
}

// publishKey publishes data to channel with the conflation key key.
func publishKey(t *testing.T, e *testEdge, channel, key, data string) string {
	t.Helper()
	var out struct{ ID string }
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish", "channel", channel, "key", key), strings.NewReader(data))
	if st := doJSON(t, req, &out); st != http.StatusOK {
		t.Fatalf("publish with key=%s: status %d", key, st)
	}
	return out.ID
}

// publishBurst publishes n messages to channel in one batch, of the keys
// a and b in turn, with the data "<key>#<i>", and returns their ids.
func publishBurst(t *testing.T, e *testEdge, channel string, n int) []string {
	t.Helper()
	type msg struct {
		Channel string `json:"channel"`
		Data    string `json:"data"`
		Key     string `json:"key"`
	}
	var body struct {
		Messages []msg `json:"messages"`
	}
	for i := range n {
		key := []string{"a", "b"}[i%2]
		body.Messages = append(body.Messages, msg{channel, fmt.Sprintf("%s#%d", key, i), key})
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish/batch"), bytes.NewReader(b))
	var out struct {
		Results []struct {
			ID    string
			Error *struct{ Code, Message string }
		}
	}
	if st := doJSON(t, req, &out); st != http.StatusOK || len(out.Results) != n {
		t.Fatalf("batch publish: status %d, %d results", st, len(out.Results))
	}
	ids := make([]string, n)
	for i, r := range out.Results {
		if r.Error != nil {
			t.Fatalf("batch publish: %+v", r.Error)
		}
		ids[i] = r.ID
	}
	return ids
}

// historyMessages returns the whole history of channel.
func historyMessages(t *testing.T, e *testEdge, channel string) []wireMessage {
	t.Helper()
	var out []wireMessage
	for cursor := "0-0"; ; {
		var p struct {
			Messages []wireMessage
			Cursor   string
			More     bool
		}
		getJSON(t, e.url("/v1/history", "channel", channel, "since", cursor, "limit", "1000"), nil, &p)
		out = append(out, p.Messages...)
		cursor = p.Cursor
		if !p.More {
			return out
		}
	}
}

// cfObject is a message or presence object of a WebSocket frame or a
// long-poll answer.
type cfObject struct {
	Type    string       `json:"type"`
	Channel string       `json:"channel"`
	ID      string       `json:"id"`
	Event   string       `json:"event"`
	Data    string       `json:"data"`
	Member  *edge.Member `json:"member"`
}

func (o cfObject) item() cfItem {
	if o.Member != nil {
		return cfItem{channel: o.Channel, event: o.Event, info: o.Member.Info}
	}
	return cfItem{channel: o.Channel, id: o.ID, data: o.Data}
}

// cfWS reads a WebSocket subscription.
type cfWS struct {
	c       *wsClient
	pending []cfItem
}

func openCfWSURL(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub {
	t.Helper()
	q := append(channelQuery(channels), "since", since, "presence", "1", "conflate", conflate)
	return &cfWS{c: dialWS(t, e.wsURL(q...))}
}

func openCfWSOp(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub {
	t.Helper()
	s := &cfWS{c: dialWS(t, e.wsURL())}
	s.c.send(map[string]any{"op": "subscribe", "channel": channels[0], "since": since, "presence": true, "conflate": conflate})
	for !s.read(t, "subscribed") {
	}
	return s
}

// openCfWSOpURL subscribes with a WebSocket op without "conflate" on a
// connection whose URL says conflate=: the op conflates as the URL says.
func openCfWSOpURL(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub {
	t.Helper()
	var q []string
	if conflate != "" {
		q = []string{"conflate", conflate}
	}
	s := &cfWS{c: dialWS(t, e.wsURL(q...))}
	s.c.send(map[string]any{"op": "subscribe", "channel": channels[0], "since": since, "presence": true})
	for !s.read(t, "subscribed") {
	}
	return s
}

// read reads a frame, keeping what it carries for next, and reports
// whether it was a control frame of type typ.
func (s *cfWS) read(t *testing.T, typ string) bool {
	t.Helper()
	s.c.conn.SetReadDeadline(time.Now().Add(arrival))
	_, b, err := s.c.conn.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	var objects []cfObject
	if b[0] == '[' {
		err = json.Unmarshal(b, &objects)
	} else {
		objects = make([]cfObject, 1)
		err = json.Unmarshal(b, &objects[0])
	}
	if err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	for _, o := range objects {
		switch o.Type {
		case "":
			s.pending = append(s.pending, o.item())
		case typ:
			return true
		case "subscribed": // the URL's channels
		default:
			t.Fatalf("unexpected frame %s", b)
		}
	}
	return false
}

func (s *cfWS) arm(*testing.T) {}

func (s *cfWS) next(t *testing.T) cfItem {
	t.Helper()
	for len(s.pending) == 0 {
		s.read(t, "")
	}
	it := s.pending[0]
	s.pending = s.pending[1:]
	return it
}

func (s *cfWS) close() { s.c.conn.Close() }

// cfSSE reads an SSE subscription of one or several channels.
type cfSSE struct {
	c        *sseClient
	channels []string
}

func openCfSSE(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub {
	t.Helper()
	q := append(channelQuery(channels), "presence", "1", "conflate", conflate)
	return &cfSSE{c: openSSE(t, e.url("/v1/subscribe", q...), http.Header{"Last-Event-ID": {since}}), channels: channels}
}

func (s *cfSSE) arm(*testing.T) {}

func (s *cfSSE) next(t *testing.T) cfItem {
	t.Helper()
	ev := s.c.next()
	switch {
	case ev.Event == "join" || ev.Event == "leave":
		var o cfObject
		if err := json.Unmarshal([]byte(ev.Data), &o); err != nil || o.Member == nil {
			t.Fatalf("presence event %+v: %v", ev, err)
		}
		return cfItem{channel: o.Channel, event: ev.Event, info: o.Member.Info}
	case ev.Event != "":
		t.Fatalf("unexpected event %+v", ev)
	case len(s.channels) > 1:
		var o cfObject
		if err := json.Unmarshal([]byte(ev.Data), &o); err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		c, err := resume.ParseCursor(ev.ID, s.channels)
		if id, _ := c.Get(o.Channel); err != nil || id.String() != o.ID {
			t.Fatalf("event %+v: its id does not place %s at %s", ev, o.Channel, o.ID)
		}
		return o.item()
	}
	return cfItem{channel: s.channels[0], id: ev.ID, data: ev.Data}
}

func (s *cfSSE) close() { s.c.close() }

// cfPoll chains long-polls.
type cfPoll struct {
	e        *testEdge
	channels []string
	conflate string
	pos      string
	ctx      context.Context
	cancel   func()
	answer   <-chan presencePoll // the poll in flight, nil when none
	pending  []cfItem
}

func openCfPoll(t *testing.T, e *testEdge, channels []string, since, conflate string) cfSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &cfPoll{e: e, channels: channels, conflate: conflate, pos: since, ctx: ctx, cancel: cancel}
	t.Cleanup(p.close)
	return p
}

// arm starts a poll, unless one is in flight, and waits until the edge
// holds it (or it answered).
func (p *cfPoll) arm(t *testing.T) {
	t.Helper()
	if p.answer != nil {
		return
	}
	q := append(channelQuery(p.channels), "since", p.pos, "presence", "1", "conflate", p.conflate)
	p.answer = startHeldPoll(t, p.ctx, p.e, q)
}

func (p *cfPoll) next(t *testing.T) cfItem {
	t.Helper()
	for len(p.pending) == 0 {
		p.arm(t)
		var r presencePoll
		select {
		case r = <-p.answer:
			p.answer = nil
		case <-time.After(arrival):
			t.Fatalf("no poll answer within %v", arrival)
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		var a struct {
			Messages []cfObject `json:"messages"`
			Presence []cfObject `json:"presence"`
			Cursor   string     `json:"cursor"`
		}
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatalf("poll answer %s: %v", r.body, err)
		}
		for _, o := range slices.Concat(a.Presence, a.Messages) {
			p.pending = append(p.pending, o.item())
		}
		if n := len(a.Messages); n > 0 && !strings.Contains(a.Cursor, ".") && a.Cursor != a.Messages[n-1].ID {
			t.Fatalf("poll answer %s: the cursor is not the newest message", r.body)
		}
		p.pos = a.Cursor
	}
	it := p.pending[0]
	p.pending = p.pending[1:]
	return it
}

// close ends the poll in flight, if any, and waits for it.
func (p *cfPoll) close() {
	p.cancel()
	if p.answer != nil {
		<-p.answer
		p.answer = nil
	}
}

// TestConflateRefused: a hostile conflate= gets the JSON 400 on every
// transport, and a subscribe op's "conflate" an error frame that keeps
// the connection.
func TestConflateRefused(t *testing.T) {
	e := startEdge(t, transports.Config{})
	for _, tc := range []struct {
		name   string
		values []string
		msg    string
	}{
		{"garbage", []string{"soon"}, `conflate="soon" is not a duration`},
		{"empty", []string{""}, `conflate="" is not a duration`},
		{"no unit", []string{"1"}, `conflate="1" is not a duration`},
		{"negative", []string{"-1s"}, "conflate=-1s is out of range; use 50ms to 1m0s, or 0 for none"},
		{"too short", []string{"49ms"}, "conflate=49ms is out of range"},
		{"too long", []string{"61s"}, "conflate=61s is out of range"},
		{"overflow", []string{"9999999999h"}, "is not a duration"},
		{"long", []string{strings.Repeat("9", 1000) + "s"}, "is not a duration"},
		{"repeated", []string{"1s", "2s"}, "conflate= is given 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := []string{"channel", "c"}
			for _, v := range tc.values {
				q = append(q, "conflate", v)
			}
			for _, tr := range []string{"ws", "sse", "poll"} {
				var ans errorAnswer
				var st int
				u := e.url("/v1/subscribe", append(q, "transport", tr)...)
				switch tr {
				case "ws":
					_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(u, "http"), nil)
					if err == nil || resp == nil {
						t.Fatalf("ws: dial succeeded (%v)", err)
					}
					st = resp.StatusCode
					decodeJSON(t, resp, &ans)
					resp.Body.Close()
				default:
					st = getJSON(t, u, http.Header{"Accept": {"text/event-stream"}}, &ans)
				}
				if st != http.StatusBadRequest || ans.Error.Code != "bad_request" || !strings.Contains(ans.Error.Message, tc.msg) || len(ans.Error.Message) > 300 {
					t.Fatalf("%s: %d %+v, want 400 bad_request saying %q", tr, st, ans.Error, tc.msg)
				}
			}
			if len(tc.values) > 1 {
				return
			}
			c := dialWS(t, e.wsURL())
			c.send(map[string]any{"op": "subscribe", "channel": "c", "conflate": tc.values[0], "ref": 7})
			if f := c.readControl("error"); f.Error.Code != "bad_request" || !strings.Contains(f.Error.Message, tc.msg) || string(f.Ref) != "7" {
				t.Fatalf("op: %+v, want a bad_request error frame saying %q", f, tc.msg)
			}
			c.send(map[string]any{"op": "subscribe", "channel": "c", "ref": 8})
			if f := c.readControl("subscribed"); string(f.Ref) != "8" {
				t.Fatalf("after the error: %+v", f)
			}
		})
	}
	t.Run("op fields", func(t *testing.T) {
		c := dialWS(t, e.wsURL())
		for _, op := range []map[string]any{
			{"op": "subscribe", "channel": "c", "conflate": 1},
			{"op": "subscribe", "channel": "c", "conflate": true},
			{"op": "publish", "channel": "c", "data": "x", "conflate": "1s"},
			{"op": "unsubscribe", "channel": "c", "conflate": "1s"},
		} {
			c.send(op)
			if f := c.readControl("error"); f.Error.Code != "bad_request" || !strings.Contains(f.Error.Message, "conflate") {
				t.Fatalf("%v: %+v, want a bad_request error frame about conflate", op, f)
			}
		}
	})
	for _, v := range []string{"0", "0s", "50ms", "60s"} {
		t.Run("accepts "+v, func(t *testing.T) {
			var a pollAnswer
			if st := getJSON(t, e.url("/v1/subscribe", "channel", "c", "conflate", v, "timeout", "0"), nil, &a); st != http.StatusOK {
				t.Fatalf("conflate=%s: %d", v, st)
			}
		})
	}
}

// TestConflateCatchUpGap: a conflating resume from a cursor whose
// history is partly lost gets the gap signal, then the newest of each key
// that history still has, on every transport.
func TestConflateCatchUpGap(t *testing.T) {
	e := startEdgeWith(t, transports.Config{}, resume.NewMemory(resume.MemoryConfig{HistorySize: 20}))
	first := e.publish("g", "first")
	publishBurst(t, e, "g", 50)
	hist := historyMessages(t, e, "g")
	a, b := newestOf(hist, "a#"), newestOf(hist, "b#")
	want := []string{"gap", a.ID + " " + a.Data, b.ID + " " + b.Data}
	for _, tc := range []struct {
		name string
		read func(t *testing.T) []string
	}{
		{"ws", func(t *testing.T) []string {
			c := dialWS(t, e.wsURL("channel", "g", "since", first, "conflate", "1s"))
			var got []string
			for {
				f := c.read()
				switch f.Type {
				case "gap":
					got = append(got, "gap")
				case "subscribed":
					return got
				case "":
					for _, m := range f.messages {
						got = append(got, m.ID+" "+m.Data)
					}
				default:
					t.Fatalf("unexpected frame %+v", f)
				}
			}
		}},
		{"sse", func(t *testing.T) []string {
			c := openSSE(t, e.url("/v1/subscribe", "channel", "g", "conflate", "1s"), http.Header{"Last-Event-ID": {first}})
			var got []string
			for {
				ev := c.nextAny()
				switch {
				case ev.Event == "gap":
					got = append(got, "gap")
				case ev.HasID && ev.Data == "":
					return got
				case ev.Data != "":
					got = append(got, ev.ID+" "+ev.Data)
				}
			}
		}},
		{"poll", func(t *testing.T) []string {
			var p pollAnswer
			getJSON(t, e.url("/v1/subscribe", "channel", "g", "since", first, "conflate", "1s"), nil, &p)
			var got []string
			if p.Gap {
				got = append(got, "gap")
			}
			for _, m := range p.Messages {
				got = append(got, m.ID+" "+m.Data)
			}
			return got
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.read(t); !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}
