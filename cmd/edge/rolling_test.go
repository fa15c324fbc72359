package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

const (
	// rollingDrain is each node's --drain-timeout.
	rollingDrain = 5 * time.Second
	// rollingExit bounds how long a node may take to exit after SIGTERM.
	rollingExit = rollingDrain + 5*time.Second
	// publishEvery is the steady publishing rate.
	publishEvery = 5 * time.Millisecond
	// publishesBetween is how many acknowledged publishes the test waits
	// for before the first restart, between restarts and after the last.
	publishesBetween = 40
	// reconnectBackoff is a subscriber's pause before its next connection.
	reconnectBackoff = 20 * time.Millisecond
	// pollHold is a long-poll's timeout= once the subscriber is live.
	pollHold = "10s"
)

// TestRollingRestart runs three edge nodes on one Redis and restarts them
// one by one (SIGTERM, clean exit, start again on the same address) while
// a publisher publishes steadily and subscribers of every transport follow
// their channel from node to node. Every subscriber must end up with
// exactly the channel's stored history: every message once, in order, and
// every acknowledged publish among them.
func TestRollingRestart(t *testing.T) {
	rdb := redistest.Start(t)
	bin := buildEdge(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	var nodes []*fleetNode
	for i := range 3 {
		nodes = append(nodes, startFleetNode(ctx, t, client, bin, fmt.Sprintf("node%d", i),
			"--redis", rdb.URL(), "--drain-timeout", rollingDrain.String(), "--history-size", "100000"))
	}

	// Every channel has a subscriber of each transport, and every node
	// starts with one of each.
	channels := []string{"rolling-a", "rolling-b", "rolling-c"}
	var subs []*subscriber
	for _, s := range []struct {
		transport, channel string
		first              int
	}{
		{"ws", "rolling-a", 0}, {"sse", "rolling-a", 1}, {"poll", "rolling-a", 2},
		{"ws", "rolling-b", 1}, {"sse", "rolling-b", 2}, {"poll", "rolling-b", 0},
		{"ws", "rolling-c", 2}, {"sse", "rolling-c", 0}, {"poll", "rolling-c", 1},
	} {
		subs = append(subs, newSubscriber(s.transport, s.channel, s.first))
	}
	subCtx, stopSubs := context.WithCancel(ctx)
	var subsDone sync.WaitGroup
	defer func() { stopSubs(); subsDone.Wait() }()
	for _, s := range subs {
		subsDone.Go(func() { s.run(subCtx, client, nodes) })
	}
	for _, s := range subs {
		select {
		case <-s.live:
		case <-ctx.Done():
			t.Fatalf("%s never went live:\n%s", s, s.report())
		}
	}

	pub := &publisher{client: client, nodes: nodes, channels: channels}
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	defer func() { stopPub(); <-pubDone }()
	go func() { defer close(pubDone); pub.run(pubCtx) }()
	awaitPublishes := func(what string) {
		t.Helper()
		want := pub.acked() + publishesBetween
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if !waitFor(waitCtx, func() bool { return pub.acked() >= want }) {
			t.Fatalf("publishing stalled %s: %d acknowledged; failed attempts: %s", what, pub.acked(), pub.failureReport())
		}
	}

	awaitPublishes("before the first restart")
	for _, n := range nodes {
		n.restart(ctx, t, client)
		awaitPublishes("after restarting " + n.name)
	}
	stopPub()
	<-pubDone

	stored := make(map[string][]message)
	for _, ch := range channels {
		h, err := readHistory(ctx, client, nodes[0].base(), ch)
		if err != nil {
			t.Fatal(err)
		}
		stored[ch] = h
	}
	caughtUp := func() bool {
		for _, s := range subs {
			if h := stored[s.channel]; len(h) > 0 && s.lastID() != h[len(h)-1].ID {
				return false
			}
		}
		return true
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
	if !waitFor(waitCtx, caughtUp) {
		t.Errorf("subscribers did not catch up with the stored history within 15s")
	}
	stopSubs()
	subsDone.Wait()

	checkHistory(t, stored, pub.acks())
	for _, s := range subs {
		d := mismatch(s.messages(), stored[s.channel])
		if d != "" || len(s.problemList()) > 0 {
			t.Errorf("%s: %s\nconnections:\n%s", s, cmp.Or(d, "messages match the history"), s.report())
		}
	}
	t.Logf("%d acknowledged publishes; failed attempts: %s", len(pub.acks()), pub.failureReport())
	for _, s := range subs {
		t.Logf("%s: %d messages over %d connections", s, len(s.messages()), s.connectionCount())
	}
}

// message is one message as a subscriber or the history sees it.
type message struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Data    string `json:"data"`
}

func (m message) String() string { return m.ID + "=" + m.Data }

// waitFor polls cond until it holds or ctx ends, and reports whether it
// held.
func waitFor(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// fleetNode is one edge process of a test fleet. It keeps its address
// across restarts, so that clients find a restarted node where it was.
// Only the test goroutine calls its methods except base.
type fleetNode struct {
	name string
	addr string   // "127.0.0.1:PORT"
	bin  string   // the edge binary
	args []string // its arguments after --listen
	out  syncBuffer
	proc *nodeProc // the running process, nil when stopped
	runs int       // how many times it was started
}

// nodeProc is one run of a node.
type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait has returned
	err  error         // cmd.Wait's result; read it only after done is closed
}

// startFleetNode starts a node on a fixed free port and waits until it is
// ready. At cleanup the node is killed if it still runs, and its output
// is shown if the test failed.
func startFleetNode(ctx context.Context, t *testing.T, client *http.Client, bin, name string, args ...string) *fleetNode {
	t.Helper()
	n := &fleetNode{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(fixedPort(t))), bin: bin, args: args}
	t.Cleanup(func() {
		if n.proc != nil {
			n.proc.kill()
		}
		if t.Failed() {
			t.Logf("%s (%s) output:\n%s", n.name, n.addr, n.out.String())
		}
	})
	n.start(ctx, t, client)
	return n
}

// fixedPort returns a loopback port that is free now. It picks one below
// the kernel's ephemeral range when it can: no outgoing connection of the
// test can then take the port while its node is down.
func fixedPort(t *testing.T) int {
	t.Helper()
	low := 32768 // Linux's default; below macOS's and Windows' ranges too
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	for range 100 {
		port := 0 // any free port, when the range leaves no room below it
		if low > 11000 {
			port = 10000 + rand.IntN(low-10000)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port")
	return 0
}

// base returns the node's base URL.
func (n *fleetNode) base() string { return "http://" + n.addr }

// start runs the node and waits until GET /readyz answers 200.
func (n *fleetNode) start(ctx context.Context, t *testing.T, client *http.Client) {
	t.Helper()
	n.runs++
	fmt.Fprintf(&n.out, "--- run %d\n", n.runs)
	cmd := exec.Command(n.bin, append([]string{"--listen", n.addr}, n.args...)...)
	cmd.Stdout, cmd.Stderr = &n.out, &n.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.proc = p
	ready := func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		probe, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(probe, http.MethodGet, n.base()+"/readyz", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !waitFor(ctx, ready) {
		t.Fatalf("%s not ready: %v", n.name, ctx.Err())
	}
	select {
	case <-p.done:
		t.Fatalf("%s exited at start: %v", n.name, p.err)
	default:
	}
}

// restart sends SIGTERM, requires a clean exit (code 0) within
// rollingExit, and starts the node again on the same address.
func (n *fleetNode) restart(ctx context.Context, t *testing.T, client *http.Client) {
	t.Helper()
	p := n.proc
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.name, err)
	}
	timer := time.NewTimer(rollingExit)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Fatalf("%s still running %v after SIGTERM", n.name, rollingExit)
	}
	if p.err != nil {
		t.Fatalf("%s exited after SIGTERM with %v, want code 0", n.name, p.err)
	}
	n.proc = nil
	drained := time.Since(began)
	n.start(ctx, t, client)
	t.Logf("%s drained in %v, ready again %v later", n.name, drained.Round(time.Millisecond), (time.Since(began) - drained).Round(time.Millisecond))
}

// kill ends p at once, by its pid, and waits for it.
func (p *nodeProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// publisher publishes "seq-NNNNNN" payloads, one per tick, round robin
// over channels and nodes. A failed request (refused, reset, 503) may or
// may not have stored its message; the publisher never sends that payload
// again but tries the next node at once with the next number.
type publisher struct {
	client   *http.Client
	nodes    []*fleetNode
	channels []string

	mu       sync.Mutex       // guards ok, failures
	ok       []message        // acknowledged publishes
	failures []publishFailure // failed attempts
}

// publishFailure is a failed publish attempt.
type publishFailure struct {
	node, data string
	err        error
}

// run publishes until ctx is done.
func (p *publisher) run(ctx context.Context) {
	tick := time.NewTicker(publishEvery)
	defer tick.Stop()
	seq, next := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range p.nodes {
			seq++
			n := p.nodes[next%len(p.nodes)]
			next++
			m := message{Channel: p.channels[seq%len(p.channels)], Data: fmt.Sprintf("seq-%06d", seq)}
			id, err := publishOnce(ctx, p.client, n.base(), m.Channel, m.Data)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			if err == nil {
				m.ID = id
				p.ok = append(p.ok, m)
			} else {
				p.failures = append(p.failures, publishFailure{n.name, m.Data, err})
			}
			p.mu.Unlock()
			if err == nil {
				break
			}
		}
	}
}

func (p *publisher) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ok)
}

func (p *publisher) acks() []message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ok)
}

// failureReport counts the refused attempts, which stored nothing, and
// lists the others, which may have.
func (p *publisher) failureReport() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	refused := 0
	var b strings.Builder
	for _, f := range p.failures {
		if errors.Is(f.err, syscall.ECONNREFUSED) {
			refused++
			continue
		}
		fmt.Fprintf(&b, "\n  %s %s: %v", f.node, f.data, f.err)
	}
	return fmt.Sprintf("%d refused%s", refused, b.String())
}

// publishOnce publishes data to channel on the node at base and returns
// the stored message's id.
func publishOnce(ctx context.Context, client *http.Client, base, channel, data string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/publish?channel="+url.QueryEscape(channel), strings.NewReader(data))
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", statusError(resp)
	}
	var ack message
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		return "", fmt.Errorf("acknowledgement: %w", err)
	}
	if ack.Channel != channel || ack.ID == "" {
		return "", fmt.Errorf("acknowledgement %+v for channel %q", ack, channel)
	}
	return ack.ID, nil
}

// statusError describes a response that is not a 200.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
}

// readHistory reads every retained message of channel, page by page.
func readHistory(ctx context.Context, client *http.Client, base, channel string) ([]message, error) {
	var all []message
	since := ""
	for {
		u := base + "/v1/history?limit=1000&channel=" + url.QueryEscape(channel)
		if since != "" {
			u += "&since=" + url.QueryEscape(since)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", channel, err)
		}
		var page struct {
			Messages []message `json:"messages"`
			Cursor   string    `json:"cursor"`
			Gap      bool      `json:"gap"`
			More     bool      `json:"more"`
		}
		if resp.StatusCode != http.StatusOK {
			err = statusError(resp)
		} else {
			err = json.NewDecoder(resp.Body).Decode(&page)
		}
		resp.Body.Close()
		switch {
		case err != nil:
			return nil, fmt.Errorf("history of %s: %w", channel, err)
		case page.Gap:
			return nil, fmt.Errorf("history of %s: gap after %q", channel, since)
		}
		all = append(all, page.Messages...)
		if !page.More {
			return all, nil
		}
		since = page.Cursor
	}
}

// checkHistory checks the ground truth itself: in each channel ids strictly
// increase and no payload is stored twice, and every acknowledged publish
// is stored under its id.
func checkHistory(t *testing.T, stored map[string][]message, acks []message) {
	t.Helper()
	all := make(map[message]bool)
	for ch, h := range stored {
		payloads := make(map[string]string)
		var prev edge.ID
		for i, m := range h {
			id, err := edge.ParseID(m.ID)
			if err != nil || (i > 0 && !prev.Less(id)) {
				t.Errorf("%s: stored id %q at %d does not follow %v (%v)", ch, m.ID, i, prev, err)
			}
			prev = id
			if first, dup := payloads[m.Data]; dup {
				t.Errorf("%s: payload %s stored twice, as %s and %s", ch, m.Data, first, m.ID)
			}
			payloads[m.Data] = m.ID
			all[m] = true
		}
	}
	for _, a := range acks {
		if !all[a] {
			t.Errorf("acknowledged publish %s to %s is not stored", a, a.Channel)
		}
	}
}

// mismatch describes how got differs from want: the first differing index
// with the messages there, the counts, ids received twice, missing or
// unexpected. It returns "" when they are equal.
func mismatch(got, want []message) string {
	if slices.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	at := func(ms []message, i int) string {
		if i < len(ms) {
			return ms[i].String()
		}
		return "(end)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "received %d, stored %d; first difference at index %d: got %s, want %s",
		len(got), len(want), i, at(got, i), at(want, i))
	seen := make(map[string]int)
	var dups, unexpected, missing []string
	stored := make(map[string]bool)
	for _, m := range want {
		stored[m.ID] = true
	}
	for _, m := range got {
		if seen[m.ID]++; seen[m.ID] == 2 {
			dups = append(dups, m.ID)
		}
		if !stored[m.ID] {
			unexpected = append(unexpected, m.String())
		}
	}
	for _, m := range want {
		if seen[m.ID] == 0 {
			missing = append(missing, m.String())
		}
	}
	for _, l := range []struct {
		what string
		ids  []string
	}{{"duplicated", dups}, {"missing", missing}, {"unexpected", unexpected}} {
		if len(l.ids) > 0 {
			fmt.Fprintf(&b, "\n  %d %s: %s", len(l.ids), l.what, strings.Join(l.ids[:min(len(l.ids), 10)], " "))
		}
	}
	return b.String()
}

// subscriber is one client following one channel over one transport. It
// starts on nodes[first] without a cursor; whenever its connection ends,
// for whatever reason, it connects to the next node, resuming from the
// last position the edge gave it. It ignores the edge's retry hints: the
// sooner it is back, the harder the seam is tested.
type subscriber struct {
	transport string // "ws", "sse" or "poll"
	channel   string
	first     int // index of the node it connects to first

	live     chan struct{} // closed once the edge told it its position
	liveOnce sync.Once

	mu       sync.Mutex   // guards the fields below
	pos      string       // position to resume from; "" until live
	got      []message    // every message received, in order
	conns    []connection // every connection, in order
	problems []string     // gaps, error frames, foreign messages
}

// connection records one connection of a subscriber, for failure reports.
type connection struct {
	node  string
	since string // the position it resumed from
	from  int    // index in got of its first message
	end   string // why it ended
}

func newSubscriber(transport, channel string, first int) *subscriber {
	return &subscriber{transport: transport, channel: channel, first: first, live: make(chan struct{})}
}

func (s *subscriber) String() string {
	return fmt.Sprintf("%s subscriber of %s (started on node%d)", s.transport, s.channel, s.first)
}

// run follows the channel from node to node until ctx is done.
func (s *subscriber) run(ctx context.Context, client *http.Client, nodes []*fleetNode) {
	for i := s.first; ctx.Err() == nil; i = (i + 1) % len(nodes) {
		n := nodes[i]
		s.mu.Lock()
		s.conns = append(s.conns, connection{node: n.name, since: s.pos, from: len(s.got)})
		s.mu.Unlock()
		var err error
		switch s.transport {
		case "ws":
			err = s.followWS(ctx, n.base())
		case "sse":
			err = s.followSSE(ctx, client, n.base())
		default:
			err = s.followPoll(ctx, client, n.base())
		}
		s.mu.Lock()
		s.conns[len(s.conns)-1].end = err.Error()
		s.mu.Unlock()
		pause(ctx, reconnectBackoff)
	}
}

// followWS subscribes over WebSocket and reads until the connection ends.
func (s *subscriber) followWS(ctx context.Context, base string) error {
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/subscribe?transport=ws&channel=" + url.QueryEscape(s.channel)
	if pos := s.position(); pos != "" {
		u += "&since=" + url.QueryEscape(pos)
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := dialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%w: %v", err, statusError(resp))
		}
		return err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	var disconnect string // the disconnect frame, if one came
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s%w", disconnect, err)
		}
		frames, err := decodeWSFrames(b)
		if err != nil {
			s.problem("bad WebSocket frame %q: %v", b, err)
			continue
		}
		for _, f := range frames {
			switch f.Type {
			case "":
				s.receive(f.message)
			case "subscribed":
				s.at(f.ID)
			case "disconnect":
				disconnect = fmt.Sprintf("disconnect %d %s (cursor %s); ", f.Code, f.Reason, f.Cursor)
			default:
				s.problem("WebSocket %s frame %s", f.Type, b)
			}
		}
	}
}

// wsFrame is a frame from the edge: a message (no type) or a control
// frame.
type wsFrame struct {
	Type string `json:"type"`
	message
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	Cursor string `json:"cursor"`
}

// decodeWSFrames decodes a frame holding one object or an array of them.
func decodeWSFrames(b []byte) ([]wsFrame, error) {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '[' {
		var fs []wsFrame
		err := json.Unmarshal(b, &fs)
		return fs, err
	}
	var f wsFrame
	err := json.Unmarshal(b, &f)
	return []wsFrame{f}, err
}

// followSSE subscribes over SSE (resuming with Last-Event-ID) and reads
// until the stream ends.
func (s *subscriber) followSSE(ctx context.Context, client *http.Client, base string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe?channel="+url.QueryEscape(s.channel), nil)
	req.Header.Set("Accept", "text/event-stream")
	if pos := s.position(); pos != "" {
		req.Header.Set("Last-Event-ID", pos)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	r := bufio.NewReader(resp.Body)
	var id, event string
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		field, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			data = append(data, value)
		case "": // the end of an event, or a comment
			if line != "\n" {
				continue
			}
			switch {
			case event == "disconnect":
				return fmt.Errorf("event: disconnect %s", strings.Join(data, "\n"))
			case event != "":
				s.problem("SSE event %q: %s", event, strings.Join(data, "\n"))
			case data != nil:
				s.receive(message{Channel: s.channel, ID: id, Data: strings.Join(data, "\n")})
			case id != "":
				s.at(id)
			}
			id, event, data = "", "", nil
		}
	}
}

// pollAnswer is a long-poll response.
type pollAnswer struct {
	Messages   []message `json:"messages"`
	Cursor     string    `json:"cursor"`
	Gap        bool      `json:"gap"`
	Disconnect *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"disconnect"`
}

// followPoll long-polls, sending each answer's cursor as since=, until a
// poll fails or the edge says it is draining. The first poll of all asks
// with timeout=0 only for the start position.
func (s *subscriber) followPoll(ctx context.Context, client *http.Client, base string) error {
	for {
		u := base + "/v1/subscribe?transport=poll&channel=" + url.QueryEscape(s.channel)
		if pos := s.position(); pos != "" {
			u += "&timeout=" + pollHold + "&since=" + url.QueryEscape(pos)
		} else {
			u += "&timeout=0"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var a pollAnswer
		if resp.StatusCode != http.StatusOK {
			err = statusError(resp)
		} else {
			err = json.NewDecoder(resp.Body).Decode(&a)
		}
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, m := range a.Messages {
			s.receive(m)
		}
		if a.Gap {
			s.problem("long-poll gap before %s", a.Cursor)
		}
		s.at(a.Cursor)
		if d := a.Disconnect; d != nil {
			return fmt.Errorf("disconnect %d %s", d.Code, d.Reason)
		}
	}
}

// receive records a message and moves the position to it.
func (s *subscriber) receive(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Channel != s.channel {
		s.problems = append(s.problems, "message of another channel: "+m.Channel+" "+m.String())
		return
	}
	s.got = append(s.got, m)
	s.pos = m.ID
}

// at records a position the edge gave without a message (SSE id-only
// event, WebSocket subscribed frame, long-poll cursor): the subscriber is
// live once it knows one.
func (s *subscriber) at(pos string) {
	s.mu.Lock()
	s.pos = pos
	s.mu.Unlock()
	s.liveOnce.Do(func() { close(s.live) })
}

func (s *subscriber) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *subscriber) position() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// lastID returns the id of the last message received, "" before the first.
func (s *subscriber) lastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return ""
	}
	return s.got[len(s.got)-1].ID
}

func (s *subscriber) messages() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *subscriber) problemList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

func (s *subscriber) connectionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// report lists the subscriber's connections (where each began in its
// messages, and how it ended) and its problems.
func (s *subscriber) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, c := range s.conns {
		end := c.end
		if end == "" {
			end = "(open)"
		}
		fmt.Fprintf(&b, "  %s since %q from message %d: %s\n", c.node, c.since, c.from, end)
	}
	for _, p := range s.problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	return b.String()
}
