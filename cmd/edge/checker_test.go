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
	"strings"
	"sync"
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
