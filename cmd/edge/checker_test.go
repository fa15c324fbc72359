package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeworks/edge/edge"
)

const (
	// publishEvery is the steady publishing rate.
	publishEvery = 5 * time.Millisecond
	// reconnectBackoff is a subscriber's pause before its next connection.
	reconnectBackoff = 20 * time.Millisecond
	// pollHold is a long-poll's timeout= once the subscriber is live.
	pollHold = "10s"
)

// message is one message as a subscriber or the history sees it.
type message struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Data    string `json:"data"`
}

func (m message) String() string { return m.ID + "=" + m.Data }

// publisher publishes "seq-NNNNNN" payloads, one per tick, round robin
// over channels and nodes. A failed request (refused, reset, 503) may or
// may not have stored its message; the publisher never sends that payload
// again but tries the tick's channel on the next node at once with the
// next number. So every
// payload is published at most once, to one channel, and the numbers of
// one channel's payloads grow in the order they were published.
type publisher struct {
	client   *http.Client
	nodes    []*fleetNode
	channels []string
	paused   atomic.Bool // skip ticks while set

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
	for ticks := 0; ; ticks++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p.paused.Load() {
			continue
		}
		channel := p.channels[ticks%len(p.channels)]
		for range p.nodes {
			seq++
			n := p.nodes[next%len(p.nodes)]
			next++
			m := message{Channel: channel, Data: fmt.Sprintf("seq-%06d", seq)}
			// Recorded even when ctx ended meanwhile: an attempt cut
			// short may have been stored.
			id, err := publishOnce(ctx, p.client, n.base(), m.Channel, m.Data)
			p.mu.Lock()
			if err == nil {
				m.ID = id
				p.ok = append(p.ok, m)
			} else {
				p.failures = append(p.failures, publishFailure{n.name, m.Data, err})
			}
			p.mu.Unlock()
			if err == nil || ctx.Err() != nil {
				break
			}
		}
	}
}

// ackedPerChannel returns how many publishes to each channel were
// acknowledged.
func (p *publisher) ackedPerChannel() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := make(map[string]int)
	for _, m := range p.ok {
		n[m.Channel]++
	}
	return n
}

func (p *publisher) acks() []message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ok)
}

func (p *publisher) failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.failures)
}

// unacked returns the payloads of the failed attempts: each may or may not
// have been stored.
func (p *publisher) unacked() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	maybe := make(map[string]bool)
	for _, f := range p.failures {
		maybe[f.data] = true
	}
	return maybe
}

// failureReport counts the failed attempts: refused ones, which stored
// nothing, and the others, which may have, with a few examples.
func (p *publisher) failureReport() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	refused := 0
	var others []string
	for _, f := range p.failures {
		if errors.Is(f.err, syscall.ECONNREFUSED) {
			refused++
			continue
		}
		others = append(others, fmt.Sprintf("\n  %s %s: %v", f.node, f.data, f.err))
	}
	report := fmt.Sprintf("%d refused, %d others", refused, len(others))
	if len(others) > 5 {
		report += " (the first 3 and the last 2)"
		others = slices.Concat(others[:3], others[len(others)-2:])
	}
	return report + strings.Join(others, "")
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
// sooner it is back, the harder the seam is tested. It records every
// message and every gap signal, in the order they came.
type subscriber struct {
	transport string // "ws", "sse" or "poll"
	channel   string
	first     int // index of the node it connects to first

	live     chan struct{} // closed once the edge told it its position
	liveOnce sync.Once

	mu       sync.Mutex   // guards the fields below
	pos      string       // position to resume from; "" until live
	got      []message    // every message received, in order
	gaps     []int        // for each gap signal, len(got) when it came
	conns    []connection // every connection, in order
	problems []string     // error frames, foreign messages, bad frames

	cut  func()        // ends the current connection
	away chan struct{} // while not nil, the subscriber stays offline (leave) until it is closed (back)
}

// connection records one connection of a subscriber, for failure reports.
type connection struct {
	node  string
	since string // the position it resumed from
	from  int    // index in got of its first message
	gaps  int    // gap signals on it
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
		if away := s.away; away != nil {
			s.mu.Unlock()
			select {
			case <-away:
			case <-ctx.Done():
			}
			continue
		}
		connCtx, cut := context.WithCancel(ctx)
		s.cut = cut
		s.conns = append(s.conns, connection{node: n.name, since: s.pos, from: len(s.got)})
		s.mu.Unlock()
		var err error
		switch s.transport {
		case "ws":
			err = s.followWS(connCtx, n.base())
		case "sse":
			err = s.followSSE(connCtx, client, n.base())
		default:
			err = s.followPoll(connCtx, client, n.base())
		}
		cut()
		s.mu.Lock()
		s.conns[len(s.conns)-1].end = err.Error()
		s.mu.Unlock()
		pause(ctx, reconnectBackoff)
	}
}

// leave ends the subscriber's connection, as a client that goes offline,
// and keeps it away until back: it then resumes from its last position.
func (s *subscriber) leave() {
	s.mu.Lock()
	s.away = make(chan struct{})
	cut := s.cut
	s.mu.Unlock()
	if cut != nil {
		cut()
	}
}

// back lets a subscriber that left connect again.
func (s *subscriber) back() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.away != nil {
		close(s.away)
		s.away = nil
	}
}

// followWS subscribes over WebSocket and reads until the connection ends,
// or until the edge refuses the subscription as unavailable (Redis is
// down), as a client would then try again.
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
			case "gap":
				s.gap()
			case "disconnect":
				disconnect = fmt.Sprintf("disconnect %d %s (cursor %s); ", f.Code, f.Reason, f.Cursor)
			case "error":
				if f.Error != nil && f.Error.Code == edge.ErrUnavailable.Code {
					return fmt.Errorf("error frame %s", b)
				}
				s.problem("WebSocket error frame %s", b)
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
	Error  *struct {
		Code string `json:"code"`
	} `json:"error"`
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
			case event == "gap":
				s.gap()
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
		if a.Gap { // the gap lies before the answer's messages
			s.gap()
		}
		for _, m := range a.Messages {
			s.receive(m)
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

// gap records a gap signal: messages may be missing before the next one.
func (s *subscriber) gap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaps = append(s.gaps, len(s.got))
	s.conns[len(s.conns)-1].gaps++
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

// received returns what the subscriber has received so far.
func (s *subscriber) received() delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return delivery{got: slices.Clone(s.got), gaps: slices.Clone(s.gaps)}
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
// messages, its gaps, and how it ended) and its problems.
func (s *subscriber) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, c := range s.conns {
		end := c.end
		if end == "" {
			end = "(open)"
		}
		fmt.Fprintf(&b, "  %s since %q from message %d, %d gaps: %s\n", c.node, c.since, c.from, c.gaps, end)
	}
	for _, p := range s.problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	return b.String()
}

// delivery is what one subscriber received: its messages in order, and
// where the edge signalled gaps among them.
type delivery struct {
	got  []message
	gaps []int // for each gap signal, how many messages had come before it
}

// gapRule says what a fault allows of gap signals.
type gapRule int

const (
	// gapsNever: the fault loses nothing, so the edge must deliver every
	// message without signalling a gap.
	gapsNever gapRule = iota
	// gapsAllowed: messages may be lost, behind a gap signal.
	gapsAllowed
	// gapsRequired: history is lost, so each subscriber must get a gap
	// signal, and messages after it.
	gapsRequired
)

// verify is the exactly-once checker. It checks what a subscriber of a
// channel received against the publishes: acked are the acknowledged
// publishes to the channel in the order they were published, unacked the
// payloads of failed publish attempts (to any channel), which may or may
// not have been stored. It returns every violation of these rules:
//
//   - every message received is an acknowledged publish to the channel
//     with the id it was acknowledged with, or an unacknowledged one;
//   - no payload is received twice;
//   - messages come in the order they were published, with growing ids;
//   - every acknowledged publish was received, or a gap signal came
//     exactly where it is missing: after the messages published before it
//     and before those published after it (no silent hole);
//   - gap signals obey rule.
func verify(d delivery, acked []message, unacked map[string]bool, rule gapRule) []string {
	var problems []string
	ackedID := make(map[string]string, len(acked))
	for _, m := range acked {
		ackedID[m.Data] = m.ID
	}
	seen := make(map[string]int, len(d.got))
	prevSeq := -1
	var prevID edge.ID
	for i, m := range d.got {
		if j, dup := seen[m.Data]; dup {
			problems = append(problems, fmt.Sprintf("duplicate: %s received at %d and again at %d as %s", m.Data, j, i, m.ID))
			continue
		}
		seen[m.Data] = i
		switch id, ok := ackedID[m.Data]; {
		case ok && id != m.ID:
			problems = append(problems, fmt.Sprintf("%s received as %s, acknowledged as %s", m.Data, m.ID, id))
		case !ok && !unacked[m.Data]:
			problems = append(problems, fmt.Sprintf("%s received at %d was never published to this channel", m, i))
		}
		seq := payloadSeq(m.Data)
		id, err := edge.ParseID(m.ID)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s received at %d: %v", m, i, err))
		case i > 0 && (seq <= prevSeq || !prevID.Less(id)):
			problems = append(problems, fmt.Sprintf("out of order: %s at %d after %s", m, i, d.got[i-1]))
		}
		prevSeq, prevID = max(prevSeq, seq), id
	}
	gapAt := make(map[int]bool, len(d.gaps))
	for _, k := range d.gaps {
		gapAt[k] = true
	}
	for _, a := range acked {
		if _, ok := seen[a.Data]; ok {
			continue
		}
		// It belongs before the first message published after it.
		seq := payloadSeq(a.Data)
		k := slices.IndexFunc(d.got, func(m message) bool { return payloadSeq(m.Data) > seq })
		switch {
		case k < 0:
			problems = append(problems, fmt.Sprintf("lost: acknowledged %s never arrived (all %d received were published before it)", a, len(d.got)))
		case !gapAt[k]:
			before := "the start"
			if k > 0 {
				before = d.got[k-1].String()
			}
			problems = append(problems, fmt.Sprintf("silent hole: acknowledged %s missing between %s and %s without a gap signal", a, before, d.got[k]))
		}
	}
	switch {
	case rule == gapsNever && len(d.gaps) > 0:
		problems = append(problems, fmt.Sprintf("%d gap signals (before messages %v) where nothing was lost", len(d.gaps), d.gaps))
	case rule == gapsRequired && len(d.gaps) == 0:
		problems = append(problems, "no gap signal, although the history was lost")
	case rule == gapsRequired && d.gaps[len(d.gaps)-1] == len(d.got):
		problems = append(problems, "no message after the last gap signal")
	}
	return problems
}

// payloadSeq returns the publisher's number in a "seq-NNNNNN" payload, or
// -1.
func payloadSeq(data string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(data, "seq-"))
	if err != nil || !strings.HasPrefix(data, "seq-") {
		return -1
	}
	return n
}

// checkRun is one run of the exactly-once checker on a fleet: on every
// channel one subscriber of each transport follows it from node to node,
// while a publisher publishes steadily to every channel through every
// node. A test starts it, injects its faults between awaitPublishes calls,
// and ends it with finish. Only the test goroutine calls its methods.
type checkRun struct {
	t        *testing.T
	ctx      context.Context
	client   *http.Client
	nodes    []*fleetNode
	channels []string
	subs     []*subscriber
	pub      *publisher

	stopSubs, stopPub context.CancelFunc
	subsDone          sync.WaitGroup
	pubDone           chan struct{}
}

// startCheck starts the subscribers (the one of transport j on channel i
// first on node (i+j) mod len(nodes), so that each node starts with
// several), waits until all are live, and starts the publisher. They are
// stopped when the test ends, if finish did not stop them.
func startCheck(ctx context.Context, t *testing.T, client *http.Client, nodes []*fleetNode, channels []string) *checkRun {
	t.Helper()
	r := &checkRun{t: t, ctx: ctx, client: client, nodes: nodes, channels: channels, pubDone: make(chan struct{})}
	for i, ch := range channels {
		for j, transport := range []string{"ws", "sse", "poll"} {
			r.subs = append(r.subs, newSubscriber(transport, ch, (i+j)%len(nodes)))
		}
	}
	var subCtx context.Context
	subCtx, r.stopSubs = context.WithCancel(ctx)
	t.Cleanup(func() { r.stopSubs(); r.subsDone.Wait() })
	for _, s := range r.subs {
		r.subsDone.Go(func() { s.run(subCtx, client, nodes) })
	}
	for _, s := range r.subs {
		select {
		case <-s.live:
		case <-ctx.Done():
			t.Fatalf("%s never went live:\n%s", s, s.report())
		}
	}
	r.pub = &publisher{client: client, nodes: nodes, channels: channels}
	var pubCtx context.Context
	pubCtx, r.stopPub = context.WithCancel(ctx)
	t.Cleanup(func() { r.stopPub(); <-r.pubDone })
	go func() { defer close(r.pubDone); r.pub.run(pubCtx) }()
	return r
}

// awaitPublishes waits up to 15s until every channel has n more
// acknowledged publishes.
func (r *checkRun) awaitPublishes(what string, n int) {
	r.t.Helper()
	want := r.pub.ackedPerChannel()
	for _, ch := range r.channels {
		want[ch] += n
	}
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	enough := func() bool {
		got := r.pub.ackedPerChannel()
		for ch, n := range want {
			if got[ch] < n {
				return false
			}
		}
		return true
	}
	if !waitFor(ctx, enough) {
		r.t.Fatalf("publishing stalled %s: acknowledged %v, want %v; failed attempts: %s", what, r.pub.ackedPerChannel(), want, r.pub.failureReport())
	}
}

// awaitDelivery waits up to 15s until every subscriber has received its
// channel's last publish acknowledged so far: the fleet relays every
// channel from where it is now, not only after a later fault undid this
// one.
func (r *checkRun) awaitDelivery(what string) {
	r.t.Helper()
	lastSeq := make(map[string]int)
	for _, m := range r.pub.acks() {
		lastSeq[m.Channel] = payloadSeq(m.Data)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	all := func() bool {
		for _, s := range r.subs {
			got := s.received().got
			if len(got) == 0 || payloadSeq(got[len(got)-1].Data) < lastSeq[s.channel] {
				return false
			}
		}
		return true
	}
	if !waitFor(ctx, all) {
		for _, s := range r.subs {
			r.t.Logf("%s:\n%s", s, s.report())
		}
		r.t.Fatalf("not every subscriber received its channel's last acknowledged publish %s", what)
	}
}

// awaitFailure waits up to 15s until a publish fails: the fleet noticed
// the fault.
func (r *checkRun) awaitFailure(what string) {
	r.t.Helper()
	before := r.pub.failed()
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	if !waitFor(ctx, func() bool { return r.pub.failed() > before }) {
		r.t.Fatalf("no publish failed %s", what)
	}
}

// awaitGaps waits up to 15s until every subscriber (of subs, if any are
// given) has a gap signal.
func (r *checkRun) awaitGaps(what string, subs ...*subscriber) {
	r.t.Helper()
	if len(subs) == 0 {
		subs = r.subs
	}
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	all := func() bool {
		for _, s := range subs {
			if len(s.received().gaps) == 0 {
				return false
			}
		}
		return true
	}
	if !waitFor(ctx, all) {
		for _, s := range subs {
			r.t.Logf("%s:\n%s", s, s.report())
		}
		r.t.Fatalf("not every subscriber got a gap signal %s", what)
	}
}

// historyRule says what a fault leaves of the channels' stored history.
type historyRule int

const (
	// historyLost: the history may be gone; it is not checked.
	historyLost historyRule = iota
	// historyAcked: the history holds every acknowledged publish.
	historyAcked
	// historyExact: the history holds every acknowledged publish, and
	// every subscriber received exactly the history, not missing even an
	// unacknowledged publish that was stored.
	historyExact
)

// finish stops the publisher and waits up to 15s until every subscriber
// has received its channel's last acknowledged publish (with historyExact,
// its last stored message), then stops the subscribers and checks each
// one's messages with verify and gaps, and the stored history with
// history.
func (r *checkRun) finish(gaps gapRule, history historyRule) {
	r.t.Helper()
	r.stopPub()
	<-r.pubDone
	acks := r.pub.acks()
	lastSeq := make(map[string]int)
	for _, m := range acks {
		lastSeq[m.Channel] = payloadSeq(m.Data)
	}
	var stored map[string][]message
	if history != historyLost {
		stored = r.readStored()
		checkHistory(r.t, stored, acks)
	}
	if history == historyExact {
		for ch, h := range stored {
			if len(h) > 0 {
				lastSeq[ch] = payloadSeq(h[len(h)-1].Data)
			}
		}
	}
	caughtUp := func() bool {
		for _, s := range r.subs {
			got := s.received().got
			if len(got) == 0 || payloadSeq(got[len(got)-1].Data) < lastSeq[s.channel] {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	if !waitFor(ctx, caughtUp) {
		r.t.Errorf("subscribers did not receive the last publishes within 15s")
	}
	r.stopSubs()
	r.subsDone.Wait()

	unacked := r.pub.unacked()
	if history == historyExact {
		// A publish the publisher gave up on may still have been stored
		// after the first read (its FCALL was under way): read again now
		// that the subscribers stopped, and leave out what was stored
		// after they did (unacknowledged publishes none of them got).
		stored = r.readStored()
	}
	for _, s := range r.subs {
		var acked []message
		for _, m := range acks {
			if m.Channel == s.channel {
				acked = append(acked, m)
			}
		}
		d := s.received()
		problems := slices.Concat(verify(d, acked, unacked, gaps), s.problemList())
		if history == historyExact {
			if m := mismatch(d.got, storedBefore(stored[s.channel], d.got, unacked)); m != "" {
				problems = append(problems, "not the stored history: "+m)
			}
		}
		if len(problems) > 0 {
			if len(problems) > 20 {
				problems = append(problems[:20], fmt.Sprintf("and %d more", len(problems)-20))
			}
			r.t.Errorf("%s: %d messages, %d gap signals:\n  %s\nconnections:\n%s", s, len(d.got), len(d.gaps), strings.Join(problems, "\n  "), s.report())
		}
	}
	r.t.Logf("%d acknowledged publishes; failed attempts: %s", len(acks), r.pub.failureReport())
	for _, s := range r.subs {
		d := s.received()
		r.t.Logf("%s: %d messages, %d gap signals, %d connections", s, len(d.got), len(d.gaps), s.connectionCount())
	}
}

// storedBefore returns history without its trailing unacknowledged
// messages newer than the last of got: messages stored after a subscriber
// stopped, which it could not have received.
func storedBefore(history, got []message, unacked map[string]bool) []message {
	last := -1
	if n := len(got); n > 0 {
		last = payloadSeq(got[n-1].Data)
	}
	for n := len(history); n > 0 && unacked[history[n-1].Data] && payloadSeq(history[n-1].Data) > last; n-- {
		history = history[:n-1]
	}
	return history
}

// readStored reads every channel's history from the first node that
// answers.
func (r *checkRun) readStored() map[string][]message {
	r.t.Helper()
	stored := make(map[string][]message)
	for _, ch := range r.channels {
		var err error
		for _, n := range r.nodes {
			if stored[ch], err = readHistory(r.ctx, r.client, n.base(), ch); err == nil {
				break
			}
		}
		if err != nil {
			r.t.Fatal(err)
		}
	}
	return stored
}

// TestVerify shows that the checker catches what it must: every way of
// losing, repeating or reordering a message, and gap signals against the
// rule.
func TestVerify(t *testing.T) {
	msg := func(seq int) message {
		return message{Channel: "c", ID: fmt.Sprintf("%d-0", seq), Data: fmt.Sprintf("seq-%06d", seq)}
	}
	msgs := func(seqs ...int) []message {
		var ms []message
		for _, n := range seqs {
			ms = append(ms, msg(n))
		}
		return ms
	}
	acked := msgs(1, 2, 3, 4, 5)
	unacked := map[string]bool{msg(6).Data: true}
	wrongID := msg(3)
	wrongID.ID = "3-1"
	tests := []struct {
		name string
		d    delivery
		rule gapRule
		want string // a problem it must report; "" for none
	}{
		{"exactly once", delivery{got: msgs(1, 2, 3, 4, 5)}, gapsNever, ""},
		{"unacknowledged once", delivery{got: msgs(1, 2, 3, 4, 5, 6)}, gapsNever, ""},
		{"unacknowledged twice", delivery{got: msgs(1, 2, 3, 4, 5, 6, 6)}, gapsNever, "duplicate: seq-000006"},
		{"duplicate", delivery{got: msgs(1, 2, 2, 3, 4, 5)}, gapsNever, "duplicate: seq-000002"},
		{"out of order", delivery{got: msgs(1, 3, 2, 4, 5)}, gapsNever, "out of order: 2-0=seq-000002"},
		{"silent hole", delivery{got: msgs(1, 2, 4, 5)}, gapsAllowed, "silent hole: acknowledged 3-0=seq-000003"},
		{"hole behind a gap", delivery{got: msgs(1, 2, 4, 5), gaps: []int{2}}, gapsAllowed, ""},
		{"gap after the hole", delivery{got: msgs(1, 2, 4, 5), gaps: []int{3}}, gapsAllowed, "silent hole"},
		{"hole at the start", delivery{got: msgs(2, 3, 4, 5)}, gapsAllowed, "between the start and"},
		{"lost at the end", delivery{got: msgs(1, 2, 3, 4)}, gapsAllowed, "lost: acknowledged 5-0=seq-000005"},
		{"another id", delivery{got: []message{msg(1), msg(2), wrongID, msg(4), msg(5)}}, gapsNever, "received as 3-1, acknowledged as 3-0"},
		{"never published", delivery{got: msgs(1, 2, 3, 4, 5, 7)}, gapsNever, "never published"},
		{"gap where nothing was lost", delivery{got: msgs(1, 2, 3, 4, 5), gaps: []int{3}}, gapsNever, "gap signals"},
		{"gap required", delivery{got: msgs(1, 2, 3, 4, 5)}, gapsRequired, "no gap signal"},
		{"gap required and given", delivery{got: msgs(1, 2, 3, 4, 5), gaps: []int{2}}, gapsRequired, ""},
		{"nothing after the gap", delivery{got: msgs(1, 2, 3, 4, 5), gaps: []int{5}}, gapsRequired, "no message after the last gap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problems := strings.Join(verify(tc.d, acked, unacked, tc.rule), "\n")
			if (tc.want == "" && problems != "") || !strings.Contains(problems, tc.want) {
				t.Errorf("verify reported %q, want %q", problems, tc.want)
			}
		})
	}
}
