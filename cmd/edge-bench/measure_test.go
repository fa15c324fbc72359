package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingProxy forwards TCP connections to an edge and counts the bytes
// it passed each way, as the wire carried them.
type countingProxy struct {
	ln                 net.Listener
	target             string
	toClient, toServer atomic.Int64
	conns              sync.WaitGroup // the forwarding goroutines
}

// startProxy starts a counting proxy to target (host:port) and returns
// it; it stops when the test ends.
func startProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	var accepting sync.WaitGroup
	accepting.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		accepting.Wait()
		p.conns.Wait()
	})
	return p
}

// url returns the proxy's URL.
func (p *countingProxy) url() *url.URL { return &url.URL{Scheme: "http", Host: p.ln.Addr().String()} }

// accept forwards every connection until the listener closes.
func (p *countingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.conns.Go(func() { p.copy(server, client, &p.toServer) })
		p.conns.Go(func() { p.copy(client, server, &p.toClient) })
	}
}

// copy forwards src to dst, counting into n, and closes both when src
// ends (which ends the other direction too).
func (p *countingProxy) copy(dst, src net.Conn, n *atomic.Int64) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			n.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// waitIdle returns once every forwarded connection ended, or fails t
// after a deadline.
func (p *countingProxy) waitIdle(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		p.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy's connections did not end")
	}
}

// runFleet runs the subscribers of c in this process (from c.URLs)
// while publishing c's messages through pubURL, and returns the fleet
// after finish, with what it tallied.
func runFleet(t *testing.T, c config, pubURL *url.URL) (*fleet, tallyFigures) {
	t.Helper()
	f := newFleet(t.Context(), c, 0, 1)
	defer f.close()
	r, err := f.ramp()
	if err != nil || r.Connected != c.Subs {
		t.Fatalf("ramp: %d of %d connected (%s), %v", r.Connected, c.Subs, r.FirstConnectError, err)
	}
	pc := c
	pc.URLs = []*url.URL{pubURL}
	pub, err := newPublisher(pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	counts := &publishCounts{perChannel: make([]atomic.Int64, c.Channels)}
	publishAll(t.Context(), pc, pub, counts)
	if err := counts.firstErr.get(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	published := make([]int64, c.Channels)
	for ch := range published {
		published[ch] = counts.perChannel[ch].Load()
	}
	if err := f.drain(published); err != nil {
		t.Fatal(err)
	}
	tally, err := f.finish()
	if err != nil {
		t.Fatal(err)
	}
	return f, tally
}

// Every byte the proxy passed between the subscribers and the edge is
// one the subscribers' meters counted: headers, framing and payloads.
func TestBytesMatchTheWire(t *testing.T) {
	edgeURL := startEdge(t)
	for _, tr := range []string{transportWS, transportSSE, transportPoll} {
		for _, payload := range []string{payloadPlain, payloadDashboard} {
			t.Run(tr+"/"+payload, func(t *testing.T) {
				proxy := startProxy(t, edgeURL.Host)
				c := parse(t, "run", "--url", proxy.url().String(), "--transport", tr, "--subs", "3",
					"--rate", "50", "--duration", "400ms", "--payload", payload, "--drain", "5s")
				f, tally := runFleet(t, c, edgeURL)
				proxy.waitIdle(t)
				var received, sent int64
				for _, s := range f.subs {
					m := s.meter.counts()
					received += m.received
					sent += m.sent
				}
				if !near(received, proxy.toClient.Load(), 0.005) || sent != proxy.toServer.Load() {
					t.Errorf("meters counted %d received, %d sent; the proxy passed %d to them, %d from them",
						received, sent, proxy.toClient.Load(), proxy.toServer.Load())
				}
				// The window (ramp end to drain end) holds the 20
				// messages of each subscriber, and not the handshakes.
				minBytes := int64(c.Subs) * c.total() * int64(c.Size)
				if tally.BytesReceived < minBytes || tally.BytesReceived >= received {
					t.Errorf("window received %d bytes: want at least the %d bytes of the payloads, and less than all %d", tally.BytesReceived, minBytes, received)
				}
				if tally.Delivered != int64(c.Subs)*c.total() || tally.Lost != 0 || tally.Unparsed != 0 {
					t.Errorf("delivered %d lost %d unparsed %d, want %d delivered", tally.Delivered, tally.Lost, tally.Unparsed, int64(c.Subs)*c.total())
				}
			})
		}
	}
}

// near reports whether got is within frac of want.
func near(got, want int64, frac float64) bool {
	d := float64(got - want)
	return d >= -frac*float64(want) && d <= frac*float64(want)
}

func TestMeterWakeups(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	tests := []struct {
		name       string
		gap        time.Duration
		perRequest bool
		reads      []time.Time
		requestsAt map[int]bool // a request is written before read i
		want       int64
	}{
		{"one read", 10 * time.Millisecond, false, at(0), nil, 1},
		{"a burst is one", 10 * time.Millisecond, false, at(0, 1, 2, 9, 18), nil, 1},
		{"reads a gap apart", 10 * time.Millisecond, false, at(0, 10, 20, 30), nil, 4},
		{"20 a second", 10 * time.Millisecond, false, at(0, 50, 100, 150, 200), nil, 5},
		{"20 a second under a wide gap", time.Second, false, at(0, 50, 100, 150, 200), nil, 1},
		{"bursts", 10 * time.Millisecond, false, at(0, 2, 100, 101, 103, 500), nil, 3},
		{"every poll answer", time.Second, true, at(0, 1, 50, 51, 100), map[int]bool{0: true, 2: true, 4: true}, 3},
		{"writes without perRequest", time.Second, false, at(0, 50, 100), map[int]bool{1: true, 2: true}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &meter{gap: tt.gap, perRequest: tt.perRequest}
			for i, ts := range tt.reads {
				if tt.requestsAt[i] {
					m.wrote(100)
				}
				m.read(10, ts)
			}
			m.read(0, t0.Add(time.Hour)) // an empty read is no wake-up
			got := m.counts()
			if got.wakeups != tt.want || got.received != int64(10*len(tt.reads)) {
				t.Errorf("wake-ups %d, received %d; want %d and %d", got.wakeups, got.received, tt.want, 10*len(tt.reads))
			}
		})
	}
}

// At 20 messages a second, 50 ms apart, each message wakes a subscriber
// up once under a 10 ms gap; under a gap wider than the run none does
// (the connection was busy in the ramp), except on long-poll, where every
// answer counts.
func TestWakeupsOfAPublishSchedule(t *testing.T) {
	u := startEdge(t)
	tests := []struct {
		transport string
		gap       string
		min, max  int64 // wake-ups per subscriber in the window
	}{
		{transportWS, "10ms", 8, 10},
		{transportSSE, "10ms", 8, 10},
		{transportPoll, "10ms", 8, 10},
		{transportWS, "1m", 0, 0}, // the read of the ramp was less than 1m before
		{transportSSE, "1m", 0, 0},
		{transportPoll, "1m", 5, 10},
	}
	for _, tt := range tests {
		t.Run(tt.transport+"/"+tt.gap, func(t *testing.T) {
			c := parse(t, "run", "--url", u.String(), "--transport", tt.transport, "--subs", "2",
				"--rate", "20", "--duration", "500ms", "--wake-gap", tt.gap)
			_, tally := runFleet(t, c, u)
			if tally.Delivered != 20 {
				t.Fatalf("delivered %d, want 20", tally.Delivered)
			}
			// Two subscribers: a late publish can merge two messages into
			// one wake-up, never add one.
			if w := tally.Wakeups; w < 2*tt.min || w > 2*tt.max {
				t.Errorf("%d wake-ups for 2 subscribers of 10 messages, want %d to %d each", w, tt.min, tt.max)
			}
		})
	}
}

func TestDashboardPayload(t *testing.T) {
	for _, size := range []int{256, 1024, 4096} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			var prev map[string]any
			changed := 0
			const updates = 64
			for seq := range uint64(updates) {
				p := appendDashboard(nil, seq, 1732270000123456789+int64(seq), size)
				if len(p) != size {
					t.Fatalf("update %d has %d bytes, want %d", seq, len(p), size)
				}
				var state map[string]any
				if err := json.Unmarshal(p, &state); err != nil {
					t.Fatalf("update %d is not JSON: %v: %s", seq, err, p)
				}
				if size == 1024 && (len(state) < 36 || len(state) > 44) {
					t.Errorf("%d fields in a 1 KiB state, want about 40", len(state))
				}
				// As published (SSE) and as a JSON string in a frame.
				quoted, _ := json.Marshal(string(p))
				for _, form := range [][]byte{p, quoted[1 : len(quoted)-1]} {
					got, sent, ok := parsePayload(form)
					if !ok || got != seq || sent != 1732270000123456789+int64(seq) {
						t.Errorf("parsePayload(%.60s…) = %d, %d, %v", form, got, sent, ok)
					}
				}
				if prev != nil {
					for k, v := range state {
						if k != "seq" && k != "t" && prev[k] != v {
							changed++
						}
					}
				}
				prev = state
			}
			// A few fields change per update besides seq and t (about two
			// in 1 KiB, fewer in a smaller state), so that compression and
			// deltas have something to gain.
			perUpdate := float64(changed) / (updates - 1)
			if perUpdate < 0.2 || perUpdate > 4 {
				t.Errorf("%.2f fields change per update, want a few", perUpdate)
			}
		})
	}
}

func TestScanObjects(t *testing.T) {
	type obj struct {
		id, data string
		delta    bool
	}
	tests := []struct {
		name  string
		frame string
		want  []obj
	}{
		{"full", `{"channel":"a","id":"1-0","event":"","data":"seq=1 t=2 "}`, []obj{{"1-0", "seq=1 t=2 ", false}}},
		{"delta before data", `{"channel":"a","id":"1-1","event":"","delta":"1-0","data":"4\n3:ab\\\"c"}`, []obj{{"1-1", `4\n3:ab\\\"c`, true}}},
		{"delta after data", `{"channel":"a","id":"1-1","event":"","data":"x","delta":"1-0"}`, []obj{{"1-1", "x", true}}},
		{"array of both", `{"messages":[{"channel":"a","id":"1-2","event":"","data":"{\"seq\":2}"},{"channel":"a","id":"1-3","event":"","delta":"1-2","data":"d"}],"cursor":"1-3"}`,
			[]obj{{"1-2", `{\"seq\":2}`, false}, {"1-3", "d", true}}},
		{"subscribed", `{"type":"subscribed","channel":"a","id":"1-0"}`, nil},
		{"truncated", `{"channel":"a","id":"1-0","data":"seq=1`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []obj
			n := scanObjects([]byte(tt.frame), func(id, data []byte, delta bool) { got = append(got, obj{string(id), string(data), delta}) })
			if n != len(got) || len(got) != len(tt.want) {
				t.Fatalf("scanObjects = %d, %+v; want %+v", n, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("object %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestIDTracker(t *testing.T) {
	var tr idTracker
	for _, step := range []struct {
		id          string
		first, ok   bool
		unique, dup int64
	}{
		{"5-0", true, true, 1, 0},
		{"5-1", true, true, 2, 0},
		{"5-1", false, true, 2, 1},
		{"4-9", false, true, 2, 2},
		{"6", true, true, 3, 2},
		{"6-x", false, false, 3, 2},
		{"", false, false, 3, 2},
		{"7-1-2", false, false, 3, 2},
	} {
		_, first, ok := tr.observe([]byte(step.id))
		if first != step.first || ok != step.ok || tr.unique != step.unique || tr.dups != step.dup {
			t.Errorf("observe(%q) = %v, %v with %d unique, %d dups; want %v, %v, %d, %d",
				step.id, first, ok, tr.unique, tr.dups, step.first, step.ok, step.unique, step.dup)
		}
	}
}

func TestMissedLast(t *testing.T) {
	tests := []struct {
		name      string
		seen      []uint64
		published int64
		keys      int
		want      int64
	}{
		{"last of one key", []uint64{0, 5, 9}, 10, 1, 0},
		{"last missing", []uint64{0, 5, 8}, 10, 1, 1},
		{"last of each of 3 keys", []uint64{2, 7, 8, 9}, 10, 3, 0},
		{"one key's last missing", []uint64{3, 7, 9}, 10, 3, 1},
		{"more keys than messages", []uint64{0, 1}, 2, 5, 0},
		{"nothing published", nil, 0, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			for _, n := range tt.seen {
				tr.observe(n)
			}
			if got := tr.missedLast(tt.published, tt.keys); got != tt.want {
				t.Errorf("missedLast(%d, %d) = %d, want %d", tt.published, tt.keys, got, tt.want)
			}
		})
	}
}

// The subscribe options reach every transport's request, and --key-count
// the publish URLs.
func TestOptionURLs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantQuery string // what every subscribe request carries
		wantKeys  []string
	}{
		{"none", nil, "", nil},
		{"conflate", []string{"--conflate", "1s"}, "&conflate=1s", nil},
		{"delta", []string{"--delta", "fossil"}, "&delta=fossil", nil},
		{"compress", []string{"--compress"}, "&compress=1", nil},
		{"conflate and compress", []string{"--conflate", "250ms", "--compress"}, "&conflate=250ms&compress=1", nil},
		{"keys", []string{"--conflate", "1s", "--key-count", "3"}, "&conflate=1s", []string{"k0", "k1", "k2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parse(t, "run", append([]string{"--url", "http://127.0.0.1:9", "--channels", "2"}, tt.args...)...)
			e := newClientEnv(c)
			if e.query != tt.wantQuery {
				t.Errorf("query %q, want %q", e.query, tt.wantQuery)
			}
			ws, err := url.Parse(e.subscribeURL(0, "ws", "bench-1", "since", "1-0"))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := url.ParseQuery("channel=bench-1&since=1-0" + tt.wantQuery)
			if ws.Scheme != "ws" || ws.Path != "/v1/subscribe" || ws.Query().Encode() != want.Encode() {
				t.Errorf("ws URL %s, want the query %s", ws, want.Encode())
			}
			if e.ws[0].EnableCompression != c.Compress {
				t.Errorf("ws dialer offers compression: %v, want %v", e.ws[0].EnableCompression, c.Compress)
			}
			p, err := newPublisher(c)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			urls := p.nodes[0].urls
			if len(urls) != c.Channels*max(len(tt.wantKeys), 1) {
				t.Fatalf("%d publish URLs: %q", len(urls), urls)
			}
			for i, raw := range urls {
				pu, _ := url.Parse(raw)
				ch, key := i/max(len(tt.wantKeys), 1), ""
				if tt.wantKeys != nil {
					key = tt.wantKeys[i%len(tt.wantKeys)]
				}
				if pu.Query().Get("channel") != channelName(ch) || pu.Query().Get("key") != key {
					t.Errorf("publish URL %d is %s, want channel %s and key %q", i, raw, channelName(ch), key)
				}
			}
		})
	}
}

func TestMeasureFlagsRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown payload", []string{"--payload", "xml"}, "use plain or dashboard"},
		{"dashboard to nchan", []string{"--payload", "dashboard", "--target", "nchan"}, "--target edge"},
		{"conflate too short", []string{"--conflate", "10ms"}, "give 50ms to 1m0s"},
		{"conflate with reconnect", []string{"--conflate", "1s", "--reconnect"}, "drop --reconnect"},
		{"unknown delta", []string{"--delta", "vcdiff"}, "use fossil"},
		{"delta and conflate", []string{"--delta", "fossil", "--conflate", "1s"}, "one of them"},
		{"compress on nchan", []string{"--compress", "--target", "nchan"}, "--target edge"},
		{"keys to nchan", []string{"--key-count", "4", "--target", "nchan"}, "--target edge"},
		{"too many keys", []string{"--key-count", "5000"}, "give 0 to 1000"},
		{"no wake gap", []string{"--wake-gap", "0s"}, "--wake-gap"},
		{"conflate with publishers", []string{"--conflate", "1s", "--publishers", "4"}, "use --publishers 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("run", tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
	if c := parse(t, "run", "--payload", "dashboard"); c.Size != dashboardSize {
		t.Errorf("--payload dashboard without --size: size %d, want %d", c.Size, dashboardSize)
	}
	if c := parse(t, "run", "--payload", "dashboard", "--size", "300"); c.Size != 300 {
		t.Errorf("--payload dashboard --size 300: size %d", c.Size)
	}
	if c := parse(t, "run", "--conflate", "1s"); c.Publishers != 1 {
		t.Errorf("--conflate without --publishers: %d publishers, want 1", c.Publishers)
	}
}

// A run reports the bytes and wake-ups per subscriber and hour, in the
// table and the JSON line, and passes its options on to worker
// processes.
func TestReportPerSubscriberHour(t *testing.T) {
	u := startEdge(t)
	c := parse(t, "run", "--url", u.String(), "--transport", "mix", "--subs", "3", "--rate", "20", "--duration", "500ms",
		"--payload", "dashboard")
	rep, err := runBench(t.Context(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkExactRun(t, c, rep)
	// 20 messages/s of 1 KiB: 72,000 messages and more than 70 MiB an hour.
	if rep.DeliveredPerSubHour < 60_000 || rep.DeliveredPerSubHour > 80_000 ||
		rep.BytesReceivedPerSubHour < 72_000*1024 || rep.BytesReceivedMaxPerSubHour < rep.BytesReceivedPerSubHour ||
		rep.WakeupsPerSubHour < 36_000 || rep.WakeupsPerSubHour > 80_000 || rep.BytesSentPerSubHour <= 0 {
		t.Errorf("per subscriber and hour: %+v", rep)
	}
	var table strings.Builder
	if err := rep.write(&table, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"options             payload dashboard", "bytes/sub/hour", "wake-ups/sub/hour", "delivered/sub/hour"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table without %q:\n%s", want, table.String())
		}
	}
	var line strings.Builder
	if err := rep.write(&line, true); err != nil || !strings.Contains(line.String(), `"bytes_received_per_sub_hour":`) ||
		!strings.Contains(line.String(), `"wakeups_per_sub_hour":`) {
		t.Errorf("JSON line %q, %v", line.String(), err)
	}
	args := strings.Join(workerArgs(parse(t, "run", "--payload", "dashboard", "--conflate", "1s", "--compress", "--key-count", "4",
		"--wake-gap", "20ms"), 0), " ")
	if !strings.Contains(args, "--payload dashboard --wake-gap 20ms --conflate 1s --compress --key-count 4") {
		t.Errorf("worker args %q do not carry the options", args)
	}
}

// With --key-count, each message of a batch carries its conflation key,
// and a dashboard payload travels as a JSON string.
func TestBatchCarriesKeys(t *testing.T) {
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
		io.WriteString(w, `{"results":[{"id":"1-0"},{"id":"1-1"},{"id":"1-2"}]}`)
	}))
	t.Cleanup(srv.Close)
	c := parse(t, "run", "--url", srv.URL, "--key-count", "2", "--batch", "3", "--payload", "dashboard", "--size", "256")
	p, err := newPublisher(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var msgs []batchMessage
	for seq := range uint64(3) {
		msgs = append(msgs, batchMessage{ch: 0, payload: appendDashboard(nil, seq, 1, 256), key: conflationKey(seq, c.KeyCount)})
	}
	stored := make([]int64, 1)
	if err := p.publishBatch(t.Context(), 0, msgs, stored); err != nil || stored[0] != 3 {
		t.Fatalf("publishBatch: %d stored, %v", stored[0], err)
	}
	var got struct {
		Messages []struct{ Channel, Data, Key string }
	}
	if err := json.Unmarshal(<-bodies, &got); err != nil {
		t.Fatalf("batch body: %v", err)
	}
	for i, m := range got.Messages {
		if m.Channel != "bench-0" || m.Data != string(msgs[i].payload) || m.Key != []string{"k0", "k1", "k0"}[i] {
			t.Errorf("message %d: %+v", i, m)
		}
	}
}
