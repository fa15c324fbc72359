package transports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

// presenceBroker returns a broker of the backend whose config use sets
// (nil: the embedded store).
func presenceBroker(t *testing.T, use func(*resume.RedisConfig)) edge.Broker {
	t.Helper()
	if use == nil {
		return resume.NewMemory(resume.MemoryConfig{})
	}
	cfg := resume.RedisConfig{Presence: func(ch string) bool { return auth.MatchAny(presencePatterns, ch) }, PresenceTTL: time.Second}
	use(&cfg)
	setFleetSettings(t, cfg.WithDefaults())
	r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// presencePatterns are the channels that keep presence in these tests.
var presencePatterns = []string{"room.*"}

// presenceEdge starts an edge named node on broker that keeps presence
// on the channels "room.*", listing at most maxMembers (zero: the
// default).
func presenceEdge(t *testing.T, broker edge.Broker, node string, maxMembers int) *testEdge {
	t.Helper()
	return presenceEdgeWith(t, broker, transports.Config{PresenceMaxMembers: maxMembers, Hub: edge.Config{Node: node}})
}

// presenceEdgeWith starts an edge on broker with cfg that keeps presence
// on the channels "room.*"; a long-poll member's grace is a second
// unless cfg sets one.
func presenceEdgeWith(t *testing.T, broker edge.Broker, cfg transports.Config) *testEdge {
	t.Helper()
	cfg.Presence = presencePatterns
	if cfg.PollMemberGrace == 0 {
		cfg.PollMemberGrace = time.Second
	}
	e := startEdgeWith(t, cfg, broker)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	return e
}

// presenceAnswer is the body of GET /v1/presence.
type presenceAnswer struct {
	Channel   string        `json:"channel"`
	Count     int           `json:"count"`
	Members   []edge.Member `json:"members"`
	Truncated bool          `json:"truncated"`
}

// getPresence asks e for channel's members.
func getPresence(t *testing.T, e *testEdge, channel string) presenceAnswer {
	t.Helper()
	var a presenceAnswer
	if st := getJSON(t, e.url("/v1/presence", "channel", channel), nil, &a); st != http.StatusOK {
		t.Fatalf("GET /v1/presence?channel=%s: %d", channel, st)
	}
	return a
}

// waitMembers waits until e lists count members of channel, and returns
// them.
func waitMembers(t *testing.T, e *testEdge, channel string, count int) presenceAnswer {
	t.Helper()
	deadline := time.Now().Add(arrival)
	tick := time.NewTicker(5 * time.Millisecond) // the store is polled: it tells no one
	defer tick.Stop()
	for {
		a := getPresence(t, e, channel)
		if a.Count == count {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d members (%+v), want %d", channel, a.Count, a.Members, count)
		}
		<-tick.C
	}
}

// heard is a join, a leave or a message a presence subscriber received.
type heard struct {
	channel, event string
	member         edge.Member // of a join or leave
	id             string      // of a message
}

// presenceSub is a subscription with presence=1. arm makes sure that
// what happens next is heard (a long-poll must be waiting: events between
// polls are not kept); next returns the next thing heard; cursor is where
// the subscription would resume.
type presenceSub interface {
	arm(t *testing.T)
	next(t *testing.T) heard
	cursor() string
	close()
}

// presenceColumns are the transports, as the contract matrix has them.
var presenceColumns = []struct {
	name   string
	multi  bool
	member bool // the subscriber is a member itself
	open   func(t *testing.T, e *testEdge, channels []string, query ...string) presenceSub
}{
	{"ws-url", false, true, openPresenceWSURL},
	{"ws-op", false, true, openPresenceWSOp},
	{"sse", false, true, openPresenceSSE},
	{"sse-multi", true, true, openPresenceSSE},
	{"poll", false, true, openPresencePoll},
}

// TestPresence proves presence on every backend over every transport: a
// subscriber with presence=1 hears a member join and leave, with the
// member GET /v1/presence lists; the events carry no id and do not move
// its cursor, so that a resume from it after them gets the next message
// once and no gap.
func TestPresence(t *testing.T) {
	for _, b := range contractBackends {
		if !presenceOn(b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range presenceColumns {
				t.Run(col.name, func(t *testing.T) {
					e := presenceEdge(t, presenceBroker(t, use), "n1", 0)
					channels := []string{"room." + col.name}
					if col.multi {
						channels = append(channels, "room."+col.name+".b")
					}
					room := channels[0]
					first := e.publish(room, "before")
					s := col.open(t, e, channels, "presence", "1", "info", "listener")
					base := 0
					if col.member {
						base = 1
					}
					s.arm(t) // a long-poll is a member from its first poll
					waitMembers(t, e, room, base)
					if col.name == "poll" {
						// Its own join answers it: poll again, so that
						// what follows is heard.
						if h := s.next(t); h.event != "join" || h.member.Info != "listener" || !strings.HasPrefix(h.member.Conn, "poll-") {
							t.Fatalf("heard %+v, want the long-poll's own join", h)
						}
						s.arm(t)
					}

					m := openSSE(t, e.url("/v1/subscribe", "channel", room, "info", `{"name":"Mia"}`), nil)
					m.lastID()
					joined := nextHeard(t, s, func(h heard) bool { return h.member.Info != "listener" })
					if joined.event != "join" || joined.channel != room || joined.member.Info != `{"name":"Mia"}` ||
						joined.member.Node != "n1" || !strings.HasPrefix(joined.member.Conn, "n1-") || joined.member.Sub != "" {
						t.Fatalf("heard %+v, want Mia's join of %s on n1", joined, room)
					}
					a := waitMembers(t, e, room, base+1)
					if !slices.Contains(a.Members, joined.member) || a.Truncated || a.Channel != room {
						t.Fatalf("GET lists %+v, want it to hold %+v", a, joined.member)
					}

					s.arm(t)
					msg := e.publish(room, "hello")
					if h := nextHeard(t, s, func(h heard) bool { return h.event == "" }); h.id != msg {
						t.Fatalf("heard %+v, want message %s", h, msg)
					}
					s.arm(t)
					m.close()
					left := nextHeard(t, s, func(h heard) bool { return h.member.Info != "listener" })
					if left.event != "leave" || left.member != joined.member {
						t.Fatalf("heard %+v, want the leave of %+v", left, joined.member)
					}
					waitMembers(t, e, room, base)

					// The events moved no cursor: a resume from the
					// subscriber's gets the next message, once, no gap.
					cursor := s.cursor()
					s.close()
					waitMembers(t, e, room, 0)
					next := e.publish(room, "after")
					c, err := resume.ParseCursor(cursor, channels)
					if pos, _ := c.Get(room); err != nil || pos.String() != msg {
						t.Fatalf("cursor %q (%v) places %s at %v, want %s (first %s)", cursor, err, room, pos, msg, first)
					}
					want := map[string][]item{room: {{channel: room, id: next}}}
					var sub subscriber
					switch {
					case strings.HasPrefix(col.name, "ws"):
						sub = openWSURL(t, e, channels, cursor)
					case strings.HasPrefix(col.name, "sse"):
						sub = openSSESub(t, e, channels, cursor)
					default:
						sub = openPoll(t, e, channels, cursor)
					}
					expect(t, "resumed after presence events", sub, want)
					sub.close()
				})
			}
		})
	}
}

// presenceOn says which contract backends presence is tested on.
func presenceOn(backend string) bool { return backend != "redis-sentinel" }

// nextHeard returns the next thing s heard that keep selects, skipping
// the others (the subscriber's own join, say).
func nextHeard(t *testing.T, s presenceSub, keep func(heard) bool) heard {
	t.Helper()
	for {
		if h := s.next(t); keep(h) {
			return h
		}
	}
}

// checkPresenceObject checks a WebSocket or long-poll presence object:
// channel, event and member, and no id or data.
func checkPresenceObject(raw []byte) (heard, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return heard{}, err
	}
	var h heard
	if err := json.Unmarshal(raw, &struct {
		Channel *string      `json:"channel"`
		Event   *string      `json:"event"`
		Member  *edge.Member `json:"member"`
	}{&h.channel, &h.event, &h.member}); err != nil {
		return h, err
	}
	for _, k := range []string{"id", "data", "type"} {
		if _, ok := fields[k]; ok {
			return h, fmt.Errorf("presence object %s has %q", raw, k)
		}
	}
	if len(fields) != 3 || (h.event != "join" && h.event != "leave") {
		return h, fmt.Errorf("presence object %s: want channel, event (join or leave) and member", raw)
	}
	return h, nil
}

// wsPresence reads a WebSocket subscription.
type wsPresence struct {
	c        *wsClient
	channels []string
	pending  []heard
	pos      resume.Cursor
}

func openPresenceWSURL(t *testing.T, e *testEdge, channels []string, query ...string) presenceSub {
	t.Helper()
	return &wsPresence{c: dialWS(t, e.wsURL(append(channelQuery(channels), query...)...)), channels: channels}
}

func openPresenceWSOp(t *testing.T, e *testEdge, channels []string, query ...string) presenceSub {
	t.Helper()
	// presence=1 is the op's field here; info= stays in the URL.
	var q []string
	for i := 0; i+1 < len(query); i += 2 {
		if query[i] != "presence" {
			q = append(q, query[i], query[i+1])
		}
	}
	s := &wsPresence{c: dialWS(t, e.wsURL(q...)), channels: channels}
	for _, ch := range channels {
		s.c.send(map[string]any{"op": "subscribe", "channel": ch, "presence": true})
		for {
			if f := s.read(t); f.Type == "subscribed" {
				id, _ := edge.ParseID(f.ID)
				s.pos.Set(ch, id)
				break
			}
		}
	}
	return s
}

// read reads a frame, keeping what it carries for next.
func (s *wsPresence) read(t *testing.T) wsFrame {
	t.Helper()
	s.c.conn.SetReadDeadline(time.Now().Add(arrival))
	_, b, err := s.c.conn.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	var objects []json.RawMessage
	if b[0] == '[' {
		if err := json.Unmarshal(b, &objects); err != nil {
			t.Fatal(err)
		}
	} else {
		objects = []json.RawMessage{b}
	}
	var f wsFrame
	for _, o := range objects {
		if bytes.Contains(o, []byte(`"member":`)) {
			h, err := checkPresenceObject(o)
			if err != nil {
				t.Fatal(err)
			}
			s.pending = append(s.pending, h)
			continue
		}
		if f, err = decodeWSFrame(o); err != nil {
			t.Fatal(err)
		}
		for _, m := range f.messages {
			s.pending = append(s.pending, heard{channel: m.Channel, id: m.ID})
			id, _ := edge.ParseID(m.ID)
			s.pos.Set(m.Channel, id)
		}
	}
	return f
}

func (s *wsPresence) arm(*testing.T) {}

func (s *wsPresence) next(t *testing.T) heard {
	t.Helper()
	for len(s.pending) == 0 {
		s.read(t)
	}
	h := s.pending[0]
	s.pending = s.pending[1:]
	return h
}

func (s *wsPresence) cursor() string {
	if len(s.channels) == 1 {
		id, _ := s.pos.Get(s.channels[0])
		return id.String()
	}
	return s.pos.String()
}

func (s *wsPresence) close() { s.c.conn.Close() }

// ssePresence reads an SSE subscription; its cursor is EventSource's
// lastEventId: the id of the last event that had one.
type ssePresence struct {
	c    *sseClient
	last string
}

func openPresenceSSE(t *testing.T, e *testEdge, channels []string, query ...string) presenceSub {
	t.Helper()
	s := &ssePresence{c: openSSE(t, e.url("/v1/subscribe", append(channelQuery(channels), query...)...), nil)}
	s.last = s.c.lastID()
	return s
}

func (s *ssePresence) arm(*testing.T) {}

func (s *ssePresence) next(t *testing.T) heard {
	t.Helper()
	for {
		ev := s.c.next()
		if ev.HasID {
			s.last = ev.ID
		}
		switch ev.Event {
		case "join", "leave":
			if ev.HasID {
				t.Fatalf("presence event with id %q", ev.ID)
			}
			var d struct {
				Channel string       `json:"channel"`
				Member  *edge.Member `json:"member"`
			}
			dec := json.NewDecoder(strings.NewReader(ev.Data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil || d.Member == nil {
				t.Fatalf("presence event data %s: %v", ev.Data, err)
			}
			return heard{channel: d.Channel, event: ev.Event, member: *d.Member}
		case "":
			var m wireMessage
			if json.Unmarshal([]byte(ev.Data), &m) == nil && m.ID != "" {
				return heard{channel: m.Channel, id: m.ID} // several channels: the message object
			}
			return heard{id: ev.ID}
		}
		t.Fatalf("unexpected event %+v", ev)
	}
}

func (s *ssePresence) cursor() string { return s.last }

func (s *ssePresence) close() { s.c.close() }

// pollPresence chains long-polls with presence=1.
type pollPresence struct {
	e        *testEdge
	channels []string
	query    []string
	pos      string
	member   string // the member token of the last answer
	ctx      context.Context
	cancel   func()
	answer   <-chan presencePoll // the poll in flight, nil when none
	pending  []heard
}

type presencePoll struct {
	body []byte
	err  error
}

func openPresencePoll(t *testing.T, e *testEdge, channels []string, query ...string) presenceSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pollPresence{e: e, channels: channels, query: query, ctx: ctx, cancel: cancel}
	t.Cleanup(p.close)
	// A first poll that answers at once gives the member token (and the
	// start position), as client.js's does: the polls that send it back
	// are a member.
	a := pollMemberToken(t, e, channels)
	p.member, p.pos = a.Member, a.Cursor
	return p
}

// arm starts a poll, unless one is in flight, and waits until the edge
// holds it.
func (p *pollPresence) arm(t *testing.T) {
	t.Helper()
	if p.answer != nil {
		return
	}
	q := append(channelQuery(p.channels), p.query...)
	if p.pos != "" {
		q = append(q, "since", p.pos)
	}
	if p.member != "" {
		q = append(q, "member", p.member)
	}
	p.answer = startHeldPoll(t, p.ctx, p.e, q)
}

// startHeldPoll sends a long-poll of the subscribe query q and returns
// the channel its answer comes on, once the edge holds the poll (or it
// answered).
func startHeldPoll(t *testing.T, ctx context.Context, e *testEdge, q []string) <-chan presencePoll {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/v1/subscribe", q...), nil)
	answer := make(chan presencePoll, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answer <- presencePoll{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, b.Bytes())
		}
		answer <- presencePoll{b.Bytes(), err}
	}()
	deadline := time.Now().Add(arrival)
	for {
		if n, _ := value(scrape(t, e), "edge_connections", "transport", "poll"); n > 0 || len(answer) > 0 {
			return answer
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge holds no poll within %v", arrival)
		}
	}
}

func (p *pollPresence) next(t *testing.T) heard {
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
			Messages []wireMessage     `json:"messages"`
			Cursor   string            `json:"cursor"`
			Presence []json.RawMessage `json:"presence"`
			Member   string            `json:"member"`
		}
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatalf("poll answer %s: %v", r.body, err)
		}
		if p.member != "" && a.Member != p.member {
			t.Fatalf("poll answer %s: member %q, want the token sent, %q", r.body, a.Member, p.member)
		}
		p.member = a.Member
		if a.Presence != nil && len(a.Presence) == 0 {
			t.Fatalf("poll answer %s: an empty presence is left out", r.body)
		}
		for _, o := range a.Presence {
			h, err := checkPresenceObject(o)
			if err != nil {
				t.Fatal(err)
			}
			p.pending = append(p.pending, h)
		}
		for _, m := range a.Messages {
			p.pending = append(p.pending, heard{channel: m.Channel, id: m.ID})
		}
		p.pos = a.Cursor
	}
	h := p.pending[0]
	p.pending = p.pending[1:]
	return h
}

func (p *pollPresence) cursor() string { return p.pos }

// close ends the poll in flight, if any, and waits for it.
func (p *pollPresence) close() {
	p.cancel()
	if p.answer != nil {
		<-p.answer
		p.answer = nil
	}
}

// TestPresenceRefusals: GET /v1/presence is refused as history is, and
// a bad info= or presence= as a bad request.
func TestPresenceRefusals(t *testing.T) {
	e := startEdge(t, transports.Config{Presence: []string{"room.*", "open.*"}, JWTSecret: testSecret, Anonymous: []string{"open.*"}})
	bearer := http.Header{"Authorization": {"Bearer " + token(t, "alice", []string{"room.a"}, nil, time.Hour)}}
	all := http.Header{"Authorization": {"Bearer " + token(t, "bob", []string{"*"}, nil, time.Hour)}}
	tests := []struct {
		name   string
		path   string
		query  []string
		header http.Header
		status int
		code   string
	}{
		{"no token", "/v1/presence", []string{"channel", "room.a"}, nil, 401, "unauthorized"},
		{"token without the channel", "/v1/presence", []string{"channel", "room.b"}, bearer, 403, "forbidden"},
		{"bad channel", "/v1/presence", []string{"channel", "room a"}, bearer, 400, "bad_channel"},
		{"no channel", "/v1/presence", nil, bearer, 400, "bad_channel"},
		{"no presence", "/v1/presence", []string{"channel", "news"}, all, 404, "presence_off"},
		{"anonymous channel", "/v1/presence", []string{"channel", "open.x"}, nil, 200, ""},
		{"token with the channel", "/v1/presence", []string{"channel", "room.a"}, bearer, 200, ""},
		{"info too long", "/v1/subscribe", []string{"channel", "open.x", "info", strings.Repeat("x", edge.MaxPresenceInfoLen+1)}, nil, 400, "bad_request"},
		{"info with a control character", "/v1/subscribe", []string{"channel", "open.x", "info", "a\nb"}, nil, 400, "bad_request"},
		{"bad presence=", "/v1/subscribe", []string{"channel", "open.x", "presence", "yes"}, nil, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a struct {
				errorAnswer
				presenceAnswer
			}
			st := getJSON(t, e.url(tt.path, tt.query...), tt.header, &a)
			if st != tt.status || a.Error.Code != tt.code {
				t.Fatalf("%d %+v, want %d %q", st, a, tt.status, tt.code)
			}
			// History refuses the same requests the same way.
			if tt.path == "/v1/presence" && tt.code != "presence_off" {
				var h errorAnswer
				if hs := getJSON(t, e.url("/v1/history", tt.query...), tt.header, &h); hs != st || h.Error.Code != tt.code {
					t.Fatalf("history answers %d %q, presence %d %q", hs, h.Error.Code, st, tt.code)
				}
			}
		})
	}
	if a := getPresence(t, startEdge(t, transports.Config{Presence: []string{"*"}}), "x"); a.Count != 0 || a.Members == nil {
		t.Fatalf("an empty channel: %+v, want no member and an empty list", a)
	}
}

// TestPresenceCap: GET lists at most --presence-max-members members, and
// the exact count.
func TestPresenceCap(t *testing.T) {
	e := presenceEdge(t, resume.NewMemory(resume.MemoryConfig{}), "n1", 3)
	for i := range 5 {
		openSSE(t, e.url("/v1/subscribe", "channel", "room.cap", "info", fmt.Sprint(i)), nil).lastID()
	}
	a := waitMembers(t, e, "room.cap", 5)
	if len(a.Members) != 3 || !a.Truncated {
		t.Fatalf("%+v, want 3 members of 5, truncated", a)
	}
}

// TestPresenceOffChannel: presence=1 on a channel that keeps no presence
// is no error; the subscription gets its messages and no presence.
func TestPresenceOffChannel(t *testing.T) {
	e := presenceEdge(t, resume.NewMemory(resume.MemoryConfig{}), "n1", 0)
	s := openPresenceSSE(t, e, []string{"news"}, "presence", "1")
	openSSE(t, e.url("/v1/subscribe", "channel", "news"), nil).lastID()
	id := e.publish("news", "x")
	if h := s.next(t); h.id != id || h.event != "" {
		t.Fatalf("heard %+v, want message %s alone", h, id)
	}
}

// TestPresenceNeedsStore: a store without presence cannot serve it.
func TestPresenceNeedsStore(t *testing.T) {
	_, err := transports.New(transports.Config{Presence: []string{"*"}}, noPresence{resume.NewMemory(resume.MemoryConfig{})}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "presence") {
		t.Fatalf("New = %v, want an error about presence", err)
	}
}

// noPresence is a broker without presence.
type noPresence struct{ edge.Broker }

// TestPresenceWSOpBadField: a subscribe op's presence must be a boolean.
func TestPresenceWSOpBadField(t *testing.T) {
	e := presenceEdge(t, resume.NewMemory(resume.MemoryConfig{}), "n1", 0)
	c := dialWS(t, e.wsURL())
	c.send(map[string]any{"op": "subscribe", "channel": "room.x", "presence": "yes", "ref": 7})
	if f := c.readControl("error"); f.Error == nil || f.Error.Code != "bad_request" || string(f.Ref) != "7" {
		t.Fatalf("%+v, want a bad_request error frame", f)
	}
}

// TestPresenceFleet: on Redis (and a Redis Cluster), a member on node A
// is listed by node B, a subscriber on B hears A's joins and leaves, and
// the members of a node that dies vanish once their entries expire.
func TestPresenceFleet(t *testing.T) {
	for _, b := range contractBackends {
		if b.name != "redis" && b.name != "redis-cluster" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			a := presenceEdge(t, presenceBroker(t, use), "node-a", 0)
			bn := presenceEdge(t, presenceBroker(t, use), "node-b", 0)
			const room = "room.fleet"
			listener := openPresenceSSE(t, bn, []string{room}, "presence", "1", "info", "listener")
			waitMembers(t, a, room, 1)

			m := openSSE(t, a.url("/v1/subscribe", "channel", room, "info", "on-a"), nil)
			m.lastID()
			joined := nextHeard(t, listener, func(h heard) bool { return h.member.Info != "listener" })
			if joined.event != "join" || joined.member.Node != "node-a" || !strings.HasPrefix(joined.member.Conn, "node-a-") {
				t.Fatalf("node B heard %+v, want a join on node-a", joined)
			}
			if l := waitMembers(t, bn, room, 2); !slices.Contains(l.Members, joined.member) {
				t.Fatalf("node B lists %+v, want it to hold %+v", l.Members, joined.member)
			}
			m.close()
			if left := nextHeard(t, listener, func(h heard) bool { return h.member.Info != "listener" }); left.event != "leave" || left.member != joined.member {
				t.Fatalf("node B heard %+v, want the leave of %+v", left, joined.member)
			}
			waitMembers(t, bn, room, 1)

			// Node A dies without a word: its member lapses within the
			// TTL (a second here) and a sweep.
			m = openSSE(t, a.url("/v1/subscribe", "channel", room, "info", "dies"), nil)
			m.lastID()
			waitMembers(t, bn, room, 2)
			a.srv.Hub().StopPresence(context.Background()) // the leave is never sent
			m.close()
			a.stop()
			if h := nextHeard(t, listener, func(h heard) bool { return h.member.Info == "dies" }); h.event != "join" {
				t.Fatalf("heard %+v, want the join of the member that dies first", h)
			}
			if left := nextHeard(t, listener, func(h heard) bool { return h.member.Info == "dies" }); left.event != "leave" {
				t.Fatalf("heard %+v, want its leave once it expired", left)
			}
			waitMembers(t, bn, room, 1)
		})
	}
}

// TestPresenceDrain: a node that drains sends its members' leaves before
// it stops, so the other nodes list them no longer at once, not when
// their entries would expire (a minute here).
func TestPresenceDrain(t *testing.T) {
	url := redistest.Start(t).URL()
	broker := func() edge.Broker {
		return presenceBroker(t, func(cfg *resume.RedisConfig) { cfg.URLs, cfg.PresenceTTL = []string{url}, time.Minute })
	}
	a := presenceEdge(t, broker(), "node-a", 0)
	b := presenceEdge(t, broker(), "node-b", 0)
	listener := openPresenceSSE(t, b, []string{"room.drain"}, "presence", "1", "info", "listener")
	for i := range 3 {
		openSSE(t, a.url("/v1/subscribe", "channel", "room.drain", "info", fmt.Sprint(i)), nil).lastID()
	}
	waitMembers(t, b, "room.drain", 4)
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, b, "room.drain", 1) // within seconds, where expiry would take a minute
	for left := 0; left < 3; {
		if h := listener.next(t); h.event == "leave" && h.member.Node == "node-a" {
			left++
		}
	}
}
