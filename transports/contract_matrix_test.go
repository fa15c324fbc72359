package transports_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
	"github.com/edgeworks/edge/transports"
)

// TestContract proves the cursor and resume contract of DESIGN.md on every
// backend (rows) over every transport (columns), each property a subtest:
// TestContract/<backend>/<transport>/<property>. A property proven on one
// backend only is not proven: Redis once lost messages at join while every
// embedded-store test passed.
//
// Each backend's servers start once and serve all its cells. Edges on one
// Redis follow the fleet's settings in Redis (edge:settings, which each
// property sets for its edges as an operator changes them), so a backend's
// properties run one after another, each on edges started for it; only a
// property's own iterations run in parallel.
func TestContract(t *testing.T) {
	for _, b := range contractBackends {
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range contractColumns {
				t.Run(col.name, func(t *testing.T) {
					c := cell{use: use, col: col}
					t.Run("join-race", c.joinRace)
					t.Run("resume-seam", c.resumeSeam)
					t.Run("gap", c.gap)
					t.Run("future-cursor", c.futureCursor)
					t.Run("malformed-cursor", c.malformedCursor)
				})
			}
		})
	}
}

const (
	// raceIterations is how often join-race subscribes and publishes at
	// once per cell, split over raceWorkers parallel subtests with an
	// edge each.
	raceIterations = 300
	raceWorkers    = 4
	// arrival bounds how long a message that is due may take to arrive.
	arrival = 5 * time.Second
	// aheadID is a well-formed id ahead of any channel's last id.
	aheadID = "9999999999999-0"
)

// contractBackends are the rows. start starts the backend's servers for
// t and returns what points a Redis store's config at them, nil for the
// embedded store.
var contractBackends = []struct {
	name  string
	start func(t *testing.T) func(*resume.RedisConfig)
}{
	{"memory", func(*testing.T) func(*resume.RedisConfig) {
		return nil
	}},
	{"redis", func(t *testing.T) func(*resume.RedisConfig) {
		url := redistest.Start(t).URL()
		return func(cfg *resume.RedisConfig) { cfg.URLs = []string{url} }
	}},
	{"redis-cluster", func(t *testing.T) func(*resume.RedisConfig) {
		urls := strings.Split(redistest.StartCluster(t, 3).URLs(), ",")
		return func(cfg *resume.RedisConfig) { cfg.URLs, cfg.Cluster = urls, true }
	}},
	{"redis-sentinel", func(t *testing.T) func(*resume.RedisConfig) {
		url := redistest.StartSentinel(t, redistest.Start(t), "contract").URL()
		return func(cfg *resume.RedisConfig) { cfg.URLs, cfg.SentinelMaster = []string{url}, "contract" }
	}},
}

// column is one way to subscribe. open subscribes to channels (from
// cursor unless it is "") and returns once the client can observe the
// subscription; refuse asserts that cursor is refused as bad_cursor.
type column struct {
	name   string
	multi  bool // two channels on one connection
	open   func(t *testing.T, e *testEdge, channels []string, cursor string) subscriber
	refuse func(t *testing.T, e *testEdge, channels []string, cursor string)
}

var contractColumns = []column{
	{name: "ws-url", open: openWSURL, refuse: refuseWSURL},
	{name: "ws-op", open: openWSOp, refuse: refuseWSOp},
	{name: "sse", open: openSSESub, refuse: refuseSSE},
	{name: "sse-multi", multi: true, open: openSSESub, refuse: refuseSSE},
	{name: "poll", open: openPoll, refuse: refusePoll},
}

// cell is one backend and one transport.
type cell struct {
	use func(*resume.RedisConfig) // nil: the embedded store
	col column
}

// edge starts an edge on the cell's backend, whose channels retain
// historySize messages (zero: the default).
func (c cell) edge(t *testing.T, historySize int) *testEdge {
	t.Helper()
	var broker edge.Broker
	if c.use == nil {
		broker = resume.NewMemory(resume.MemoryConfig{HistorySize: historySize})
	} else {
		cfg := resume.RedisConfig{HistorySize: historySize}
		c.use(&cfg)
		setFleetSettings(t, cfg.WithDefaults())
		r, err := resume.NewRedis(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		broker = r
	}
	e := startEdgeWith(t, transports.Config{}, broker)
	// Before the edge stops: a keep-alive connection that a long-poll gave
	// back and that the client keeps idle holds up the edge's drain for 5s
	// (net/http waits that long for a new connection's first request).
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	return e
}

// setFleetSettings makes cfg's retention the fleet's, as an operator
// changes it: in the hash edge:settings, which edges read at start and
// follow (see resume's redis_settings.go).
func setFleetSettings(t *testing.T, cfg resume.RedisConfig) {
	t.Helper()
	var addrs []string
	for _, u := range cfg.URLs {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, opt.Addr)
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, MasterName: cfg.SentinelMaster})
	defer rdb.Close()
	err := rdb.HSet(context.Background(), "edge:settings", "history-size", cfg.HistorySize,
		"history-ttl-ms", cfg.HistoryTTL.Milliseconds(), "max-payload", cfg.MaxPayload).Err()
	if err != nil {
		t.Fatal(err)
	}
}

// channels names the channels of one subscription, fresh on the backend.
func (c cell) channels(property string, i int) []string {
	base := fmt.Sprintf("%s.%s.%d", property, c.col.name, i)
	if c.col.multi {
		return []string{base + ".a", base + ".b"}
	}
	return []string{base}
}

// joinRace: without a cursor, a subscriber gets both messages published
// the instant its subscription is observable, in order, exactly once.
func (c cell) joinRace(t *testing.T) {
	for w := range raceWorkers {
		t.Run(fmt.Sprintf("w%d", w), func(t *testing.T) {
			t.Parallel()
			e := c.edge(t, 0)
			for i := w; i < raceIterations; i += raceWorkers {
				channels := c.channels("race", i)
				s := c.col.open(t, e, channels, "")
				want := map[string][]item{}
				for j, data := range []string{"first", "second"} {
					ch := channels[j%len(channels)]
					want[ch] = append(want[ch], item{channel: ch, id: e.publish(ch, data)})
				}
				label := fmt.Sprintf("iteration %d", i)
				expect(t, label, s, want)
				// Whatever comes between the second message and the fence
				// came twice.
				expect(t, label+", fence", s, map[string][]item{channels[0]: {{channel: channels[0], id: e.publish(channels[0], "fence")}}})
				s.close()
			}
		})
	}
}

// resumeSeam: subscribers that resume while messages are being published
// get every message after their cursor exactly once, in order, with no gap
// at the seam between history and live.
func (c cell) resumeSeam(t *testing.T) {
	e := c.edge(t, 0)
	channels := c.channels("seam", 0)
	const before, k, during, publishers, joins, back = 20, 7, 200, 2, 4, 5
	type published struct{ channel, id string }
	var order []published // as the publishes answered
	for i := range before {
		ch := channels[i%len(channels)]
		order = append(order, published{ch, e.publish(ch, fmt.Sprint(i))})
	}
	ids := make(chan published, during)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < during; i += publishers {
				ch := channels[i%len(channels)]
				id, err := e.tryPublish(ch, "", fmt.Sprint(before+i))
				if err != nil {
					errs <- err
					return
				}
				ids <- published{ch, id}
			}
		})
	}
	go func() { wg.Wait(); close(ids) }()
	type joined struct {
		s    subscriber
		from map[string]string
	}
	var subs []joined
	// join resumes after the first n publishes: from the newest id of each
	// channel among them.
	join := func(n int) {
		from := map[string]string{}
		for _, p := range order[:n] {
			from[p.channel] = p.id
		}
		subs = append(subs, joined{c.col.open(t, e, channels, cursorFor(t, channels, from)), from})
	}
	// The first resumes from message k, the others from a few messages
	// back whenever another share of the live ones has been published.
	join(k)
	for p := range ids {
		order = append(order, p)
		if n := len(order) - before; n%(during/joins) == 0 && n < during {
			join(len(order) - back)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := map[string][]string{}
	for _, ch := range channels {
		all[ch] = historyIDs(t, e, ch)
	}
	for i, sub := range subs {
		want := map[string][]item{}
		for _, ch := range channels {
			n := slices.Index(all[ch], sub.from[ch])
			if n < 0 {
				t.Fatalf("history of %s lacks %s", ch, sub.from[ch])
			}
			for _, id := range all[ch][n+1:] {
				want[ch] = append(want[ch], item{channel: ch, id: id})
			}
		}
		expect(t, fmt.Sprintf("subscriber %d from %v", i, sub.from), sub.s, want)
	}
	fence := map[string][]item{channels[0]: {{channel: channels[0], id: e.publish(channels[0], "fence")}}}
	for i, sub := range subs {
		expect(t, fmt.Sprintf("subscriber %d, fence", i), sub.s, fence)
	}
}

// gap: a cursor into trimmed history gets the gap signal, then the
// retained messages, then live ones.
func (c cell) gap(t *testing.T) {
	e := c.edge(t, 5)
	channels := c.channels("gap", 0)
	first := map[string]string{}
	for _, ch := range channels {
		first[ch] = e.publish(ch, "first")
		// Redis trims whole nodes of a stream (100 entries by default),
		// so publish until the first message is gone.
		for n := 0; historyIDs(t, e, ch)[0] == first[ch]; n += 20 {
			if n == 1000 {
				t.Fatalf("%s still retains its first message after %d more with history size 5", ch, n)
			}
			for range 20 {
				e.publish(ch, "more")
			}
		}
	}
	want := map[string][]item{}
	for _, ch := range channels {
		want[ch] = []item{{gap: true, channel: ch}}
		for _, id := range historyIDs(t, e, ch) {
			want[ch] = append(want[ch], item{channel: ch, id: id})
		}
	}
	s := c.col.open(t, e, channels, cursorFor(t, channels, first))
	expect(t, "resumed from the first message", s, want)
	expectLive(t, e, s, channels)
}

// futureCursor: a well-formed cursor ahead of the channel gets the gap
// signal and continues from the channel's current position.
func (c cell) futureCursor(t *testing.T) {
	e := c.edge(t, 0)
	channels := c.channels("future", 0)
	ahead := map[string]string{}
	want := map[string][]item{}
	for _, ch := range channels {
		e.publish(ch, "before")
		ahead[ch] = aheadID
		want[ch] = []item{{gap: true, channel: ch}}
	}
	s := c.col.open(t, e, channels, cursorFor(t, channels, ahead))
	expect(t, "resumed ahead of the channel", s, want)
	expectLive(t, e, s, channels)
}

// malformedCursor: a cursor that is not one is refused as bad_cursor.
func (c cell) malformedCursor(t *testing.T) {
	c.col.refuse(t, c.edge(t, 0), c.channels("malformed", 0), "garbage")
}

// expectLive publishes a message to each channel and expects s to get
// them.
func expectLive(t *testing.T, e *testEdge, s subscriber, channels []string) {
	t.Helper()
	want := map[string][]item{}
	for _, ch := range channels {
		want[ch] = []item{{channel: ch, id: e.publish(ch, "live")}}
	}
	expect(t, "live", s, want)
}

// cursorFor is the cursor a subscriber to channels holds at the positions
// from: the bare id for one channel, the composite cursor for several.
func cursorFor(t *testing.T, channels []string, from map[string]string) string {
	t.Helper()
	if len(channels) == 1 {
		return from[channels[0]]
	}
	var c resume.Cursor
	for _, ch := range channels {
		id, err := edge.ParseID(from[ch])
		if err != nil {
			t.Fatal(err)
		}
		c.Set(ch, id)
	}
	return c.String()
}

// item is what a subscriber received: a message, or a gap signal.
type item struct {
	channel, id string
	gap         bool
}

func (it item) String() string {
	if it.gap {
		return "gap:" + it.channel
	}
	return it.channel + "=" + it.id
}

// subscriber is an open subscription. next returns the next message or
// gap signal, or an error when none came within the given time or the
// stream failed.
type subscriber interface {
	next(within time.Duration) (item, error)
	close()
}

// expect reads from s until each channel got exactly the items want names
// for it, in order (channels may interleave), and fails with what arrived
// at the first item out of place or when the rest is late.
func expect(t *testing.T, label string, s subscriber, want map[string][]item) {
	t.Helper()
	got := map[string]int{}
	var arrived []item
	due := func() string {
		var b strings.Builder
		for _, ch := range slices.Sorted(maps.Keys(want)) {
			if rest := want[ch][got[ch]:]; len(rest) > 0 {
				fmt.Fprintf(&b, " %s", brief(rest))
			}
		}
		return b.String()
	}
	pending := 0
	for _, w := range want {
		pending += len(w)
	}
	for ; pending > 0; pending-- {
		it, err := s.next(arrival)
		if err != nil {
			t.Fatalf("%s: %v; arrived %s; still due%s", label, err, brief(arrived), due())
		}
		w, n := want[it.channel], got[it.channel]
		if n == len(w) || w[n] != it {
			t.Fatalf("%s: %v out of place; arrived %s before it; still due%s", label, it, brief(arrived), due())
		}
		arrived = append(arrived, it)
		got[it.channel]++
	}
}

// brief lists items, the middle of a long list left out.
func brief(items []item) string {
	const ends = 4
	if len(items) <= 2*ends+1 {
		return fmt.Sprint(items)
	}
	return fmt.Sprintf("%v … %d more … %v", items[:ends], len(items)-2*ends, items[len(items)-ends:])
}

// wsSub reads a WebSocket subscription.
type wsSub struct {
	conn    *websocket.Conn
	pending []item
}

// openWSURL subscribes with channel= in the URL: observable at the 101.
func openWSURL(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	q := []string{"channel", channels[0]}
	if cursor != "" {
		q = append(q, "since", cursor)
	}
	return &wsSub{conn: dialWS(t, e.wsURL(q...)).conn}
}

// openWSOp subscribes with a subscribe op: observable at its ack.
func openWSOp(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	c := dialWS(t, e.wsURL())
	op := map[string]any{"op": "subscribe", "channel": channels[0], "ref": 1}
	if cursor != "" {
		op["since"] = cursor
	}
	c.send(op)
	s := &wsSub{conn: c.conn}
	for {
		f, err := s.read(arrival)
		if err != nil {
			t.Fatalf("subscribe %s: %v", channels[0], err)
		}
		if f.Type == "subscribed" {
			return s
		}
	}
}

func (s *wsSub) next(within time.Duration) (item, error) {
	for len(s.pending) == 0 {
		if _, err := s.read(within); err != nil {
			return item{}, err
		}
	}
	it := s.pending[0]
	s.pending = s.pending[1:]
	return it, nil
}

// read reads a frame, keeping its messages and gap signal for next.
func (s *wsSub) read(within time.Duration) (wsFrame, error) {
	s.conn.SetReadDeadline(time.Now().Add(within))
	kind, b, err := s.conn.ReadMessage()
	if err != nil {
		return wsFrame{}, err
	}
	if kind != websocket.TextMessage {
		return wsFrame{}, fmt.Errorf("frame kind %d", kind)
	}
	f, err := decodeWSFrame(b)
	if err != nil {
		return f, err
	}
	switch f.Type {
	case "":
		for _, m := range f.messages {
			s.pending = append(s.pending, item{channel: m.Channel, id: m.ID})
		}
	case "gap":
		s.pending = append(s.pending, item{gap: true, channel: f.Channel})
	case "subscribed":
	default:
		return f, fmt.Errorf("frame %s", b)
	}
	return f, nil
}

func (s *wsSub) close() { s.conn.Close() }

func refuseWSURL(t *testing.T, e *testEdge, channels []string, cursor string) {
	conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL("channel", channels[0], "since", cursor), nil)
	if err == nil {
		conn.Close()
		t.Fatalf("since=%s: upgraded", cursor)
	}
	if resp == nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans errorAnswer
	decodeJSON(t, resp, &ans)
	if resp.StatusCode != http.StatusBadRequest || ans.Error.Code != "bad_cursor" {
		t.Fatalf("since=%s: %d %+v, want 400 bad_cursor", cursor, resp.StatusCode, ans)
	}
}

func refuseWSOp(t *testing.T, e *testEdge, channels []string, cursor string) {
	c := dialWS(t, e.wsURL())
	c.send(map[string]any{"op": "subscribe", "channel": channels[0], "since": cursor, "ref": 1})
	if f := c.readControl("error"); f.Error == nil || f.Error.Code != "bad_cursor" || string(f.Ref) != "1" {
		t.Fatalf("since %s: %+v, want a bad_cursor error frame", cursor, f)
	}
}

// sseSub reads an SSE subscription.
type sseSub struct {
	c        *sseClient
	channels []string
}

// openSSESub subscribes with EventSource's Last-Event-ID: observable at
// the response headers.
func openSSESub(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	h := http.Header{}
	if cursor != "" {
		h.Set("Last-Event-ID", cursor)
	}
	return &sseSub{c: openSSE(t, e.url("/v1/subscribe", channelQuery(channels)...), h), channels: channels}
}

func (s *sseSub) next(within time.Duration) (item, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		var ev sseEvent
		select {
		case e, ok := <-s.c.events:
			if !ok {
				return item{}, errors.New("SSE stream ended")
			}
			ev = e
		case <-timer.C:
			return item{}, fmt.Errorf("nothing within %v", within)
		}
		var m wireMessage
		switch {
		case ev.Comment != "" || ev.Data == "" && ev.Event == "":
			continue // heartbeat, or the id-only event (the matrix publishes no empty payload)
		case ev.Event == "gap":
			err := json.Unmarshal([]byte(ev.Data), &m)
			return item{gap: true, channel: m.Channel}, err
		case ev.Event != "":
			return item{}, fmt.Errorf("event %q: %s", ev.Event, ev.Data)
		case len(s.channels) == 1:
			return item{channel: s.channels[0], id: ev.ID}, nil
		}
		// Several channels: data is the message object, and the id the
		// cursor that EventSource will send back, which must place every
		// channel, the message's at the message.
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			return item{}, err
		}
		c, err := resume.ParseCursor(ev.ID, s.channels)
		if pos, _ := c.Get(m.Channel); err != nil || pos.String() != m.ID || c.Len() != len(s.channels) {
			return item{}, fmt.Errorf("event id %q for %s=%s does not place every channel: %v", ev.ID, m.Channel, m.ID, err)
		}
		return item{channel: m.Channel, id: m.ID}, nil
	}
}

func (s *sseSub) close() { s.c.close() }

func refuseSSE(t *testing.T, e *testEdge, channels []string, cursor string) {
	for _, tc := range []struct {
		query  []string
		header http.Header
	}{
		{append(channelQuery(channels), "since", cursor), http.Header{"Accept": {"text/event-stream"}}},
		{channelQuery(channels), http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {cursor}}},
	} {
		var ans errorAnswer
		if st := getJSON(t, e.url("/v1/subscribe", tc.query...), tc.header, &ans); st != http.StatusBadRequest || ans.Error.Code != "bad_cursor" {
			t.Fatalf("%v %v: %d %+v, want 400 bad_cursor", tc.query, tc.header, st, ans)
		}
	}
}

// pollSub chains long-polls, each from the cursor of the answer before.
type pollSub struct {
	e        *testEdge
	channels []string
	cursor   string
	ctx      context.Context
	cancel   func()
	answer   chan pollResult // the poll in flight, nil when none
	pending  []item
	gzip     bool // polls with compress=1 and Accept-Encoding: gzip, and needs every answer gzip-encoded
}

type pollResult struct {
	a   pollAnswer
	err error
}

// openPoll starts a long-poll. Its client cannot observe when the poll
// starts; without a cursor openPoll returns once the edge counts the poll
// among its waiting ones (edge_connections{transport="poll"}, "long-polls
// while they wait"), by which time it must have fixed where the poll
// starts.
func openPoll(t *testing.T, e *testEdge, channels []string, cursor string) subscriber {
	t.Helper()
	return openPollWith(t, e, channels, cursor, false)
}

// openPollWith is openPoll, with compressed answers when gzip is set.
func openPollWith(t *testing.T, e *testEdge, channels []string, cursor string, gzip bool) subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pollSub{e: e, channels: channels, cursor: cursor, ctx: ctx, cancel: cancel, gzip: gzip}
	t.Cleanup(p.close)
	p.poll()
	deadline := time.Now().Add(arrival)
	// Each scrape is a round trip to the edge, which paces the loop.
	for cursor == "" && len(p.answer) == 0 {
		if n, _ := value(scrape(t, e), "edge_connections", "transport", "poll"); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("poll of %v: the edge does not count it within %v", channels, arrival)
		}
	}
	return p
}

// poll sends the next long-poll.
func (p *pollSub) poll() {
	q := channelQuery(p.channels)
	if p.cursor != "" {
		q = append(q, "since", p.cursor)
	}
	if p.gzip {
		q = append(q, "compress", "1")
	}
	req, _ := http.NewRequestWithContext(p.ctx, http.MethodGet, p.e.url("/v1/subscribe", q...), nil)
	if p.gzip {
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: net/http does not decode the answer
	}
	answer := make(chan pollResult, 1)
	p.answer = answer
	go func() {
		var r pollResult
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answer <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := decodedBody(resp, p.gzip)
		if err != nil {
			answer <- pollResult{err: err}
			return
		}
		if r.err = json.NewDecoder(body).Decode(&r.a); r.err == nil && resp.StatusCode != http.StatusOK {
			r.err = fmt.Errorf("status %d", resp.StatusCode)
		}
		answer <- r
	}()
}

func (p *pollSub) next(within time.Duration) (item, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(p.pending) == 0 {
		if p.answer == nil {
			p.poll()
		}
		var r pollResult
		select {
		case r = <-p.answer:
			p.answer = nil
		case <-timer.C:
			return item{}, fmt.Errorf("no poll answer with a message within %v (cursor %s)", within, p.cursor)
		}
		switch {
		case r.err != nil:
			return item{}, r.err
		case r.a.Disconnect != nil:
			return item{}, fmt.Errorf("disconnect %+v", *r.a.Disconnect)
		case r.a.Gap != (len(r.a.GapIn) > 0):
			return item{}, fmt.Errorf("gap %v with gap_channels %v", r.a.Gap, r.a.GapIn)
		}
		for _, ch := range r.a.GapIn {
			p.pending = append(p.pending, item{gap: true, channel: ch})
		}
		for _, m := range r.a.Messages {
			p.pending = append(p.pending, item{channel: m.Channel, id: m.ID})
		}
		p.cursor = r.a.Cursor
	}
	it := p.pending[0]
	p.pending = p.pending[1:]
	return it, nil
}

// close ends the poll in flight, if any, and waits for it.
func (p *pollSub) close() {
	p.cancel()
	if p.answer != nil {
		<-p.answer
		p.answer = nil
	}
}

func refusePoll(t *testing.T, e *testEdge, channels []string, cursor string) {
	var ans errorAnswer
	q := append(channelQuery(channels), "since", cursor)
	if st := getJSON(t, e.url("/v1/subscribe", q...), nil, &ans); st != http.StatusBadRequest || ans.Error.Code != "bad_cursor" {
		t.Fatalf("since=%s: %d %+v, want 400 bad_cursor", cursor, st, ans)
	}
}

// channelQuery is channel=A&channel=B… as url's query pairs.
func channelQuery(channels []string) []string {
	var q []string
	for _, ch := range channels {
		q = append(q, "channel", ch)
	}
	return q
}
