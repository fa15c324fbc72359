package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// publishTimeout bounds one publish.
const publishTimeout = 10 * time.Second

// publisher stores one message in a channel of the run: over HTTP, to
// any of the nodes of --url, or straight into Redis. It is safe for
// concurrent use.
type publisher struct {
	http  *http.Client
	nodes []publishNode // one per --url, for publishing over HTTP
	rdb   *redis.Client
	keys  []string // stream key per channel
	nchan bool     // urls are Nchan's publishers
	// centrifugoKey is the server API key when urls are Centrifugo's
	// publish endpoint (see sub_centrifugo.go), "" otherwise.
	centrifugoKey string
	// keyCount is --key-count: publishes carry the conflation key of
	// their sequence number (see conflationKey), 0 for none. routes is
	// how many URLs each channel has: one, or with keys one per key
	// (channel ch, key k at ch*routes+k).
	keyCount, routes int
}

// publishNode is where a publisher posts to one node of --url.
type publishNode struct {
	urls  []string // POST URL per channel
	batch string   // POST URL of batches
	// raw publishes the single messages of the edge and Nchan when urls
	// are http (not https), instead of http; nil otherwise (see
	// publish_raw.go).
	raw *rawPublisher
}

// newPublisher returns the publisher c asks for.
func newPublisher(c config) (*publisher, error) {
	p := &publisher{nchan: c.Target == targetNchan, keyCount: c.KeyCount, routes: max(c.KeyCount, 1)}
	if c.Publish == "redis" {
		opts, err := redis.ParseURL(c.Redis)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		opts.PoolSize = c.Publishers
		p.rdb = redis.NewClient(opts)
		for i := range c.Channels {
			p.keys = append(p.keys, "edge:{"+channelName(i)+"}")
		}
		return p, nil
	}
	// The publishers' connections, spread over the nodes.
	conns := ceilDiv(c.Publishers, len(c.URLs))
	p.http = &http.Client{
		Timeout: publishTimeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
	}
	if c.Target == targetCentrifugo {
		p.centrifugoKey = c.CentrifugoKey
	}
	for _, base := range c.URLs {
		var n publishNode
		var uris []*url.URL
		for r := range c.Channels * p.routes {
			i := r / p.routes
			u := *base
			u.Path = "/v1/publish"
			q := url.Values{"channel": {channelName(i)}}
			if c.KeyCount > 0 {
				q.Set("key", conflationKey(uint64(r%p.routes), c.KeyCount))
			}
			u.RawQuery = q.Encode()
			if c.Target == targetNchan {
				u.Path, u.RawQuery = nchanPublishPath(channelName(i)), ""
			}
			if c.Target == targetCentrifugo {
				u.Path, u.RawQuery = centrifugoPublishPath, ""
			}
			n.urls = append(n.urls, u.String())
			uris = append(uris, &u)
		}
		if c.Target != targetCentrifugo && base.Scheme == "http" {
			n.raw = newRawPublisher(base.Host, uris, conns, p.accepted)
		}
		batch := *base
		batch.Path = "/v1/publish/batch"
		n.batch = batch.String()
		p.nodes = append(p.nodes, n)
	}
	return p, nil
}

// close releases the publisher's connections.
func (p *publisher) close() {
	if p.rdb != nil {
		p.rdb.Close()
	}
	if p.http != nil {
		p.http.CloseIdleConnections()
	}
	for _, n := range p.nodes {
		if n.raw != nil {
			n.raw.close()
		}
	}
}

// conflationKey returns the conflation key of the message with sequence
// number seq of a channel, round-robin over keys keys: "k0" … "k<keys-1>".
func conflationKey(seq uint64, keys int) string {
	return "k" + strconv.FormatUint(seq%uint64(keys), 10)
}

// publish stores payload in channel ch, over HTTP through node (an index
// of --url) with an Idempotency-Key header of key unless key is empty,
// and returns once it is acknowledged. With --key-count it carries the
// conflation key of the payload's sequence number seq (round-robin);
// otherwise seq is not used.
func (p *publisher) publish(ctx context.Context, node, ch int, seq uint64, key, payload []byte) error {
	if p.rdb != nil {
		ctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		args := []any{"FCALL", "edge_publish", 1, p.keys[ch], "", payload}
		if p.keyCount > 0 {
			args = append(args, "key", conflationKey(seq, p.keyCount))
		}
		if err := p.rdb.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("FCALL edge_publish: %w", err)
		}
		return nil
	}
	if p.centrifugoKey != "" {
		return p.publishCentrifugo(ctx, node, ch, payload)
	}
	route := ch*p.routes + int(seq%uint64(p.routes))
	if n := p.nodes[node]; n.raw != nil {
		return n.raw.publish(ctx, route, key, payload)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.nodes[node].urls[route], bytes.NewReader(payload))
	if err != nil {
		return err
	}
	if len(key) > 0 {
		req.Header.Set("Idempotency-Key", string(key))
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !p.accepted(resp.StatusCode) {
		return fmt.Errorf("POST %s: %s: %s", req.URL.Path, resp.Status, clip(body))
	}
	return nil
}

// batchMessage is one message of a batch: a payload for a channel, with
// a conflation key unless key is empty.
type batchMessage struct {
	ch      int
	payload []byte
	key     string
}

// publishBatch stores msgs with one batch publish through node and
// returns how many of them were stored, per channel in stored, and the
// first error.
func (p *publisher) publishBatch(ctx context.Context, node int, msgs []batchMessage, stored []int64) error {
	body := []byte(`{"messages":[`)
	for i, m := range msgs {
		if i > 0 {
			body = append(body, ',')
		}
		// Channel names need no escaping, payloads at most their quotes
		// (appendPayload, appendDashboard).
		body = append(body, `{"channel":"`...)
		body = append(body, channelName(m.ch)...)
		body = append(body, `","data":"`...)
		for _, b := range m.payload {
			if b == '"' || b == '\\' {
				body = append(body, '\\')
			}
			body = append(body, b)
		}
		body = append(body, '"')
		if m.key != "" {
			body = append(body, `,"key":"`...)
			body = append(body, m.key...) // k<digits>: no escaping
			body = append(body, '"')
		}
		body = append(body, '}')
	}
	body = append(body, `]}`...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.nodes[node].batch, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len(msgs))*256+4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", req.URL.Path, resp.Status, clip(answer))
	}
	var out struct {
		Results []struct {
			ID    string
			Error *struct{ Code, Message string }
		}
	}
	if err := json.Unmarshal(answer, &out); err != nil || len(out.Results) != len(msgs) {
		return fmt.Errorf("POST %s: %d results for %d messages (%v): %s", req.URL.Path, len(out.Results), len(msgs), err, clip(answer))
	}
	var first error
	for i, r := range out.Results {
		if r.Error != nil {
			if first == nil {
				first = fmt.Errorf("POST %s: message %d: %s: %s", req.URL.Path, i, r.Error.Code, r.Error.Message)
			}
			continue
		}
		stored[msgs[i].ch]++
	}
	return first
}

// accepted reports whether an answer of status acknowledges a publish:
// 200 from the edge; from Nchan 201 (delivered to subscribers) or 202
// (stored, nobody subscribed).
func (p *publisher) accepted(status int) bool {
	if p.nchan {
		return status == http.StatusCreated || status == http.StatusAccepted
	}
	return status == http.StatusOK
}

// pace calls send(m) for every m in [0, total) from workers goroutines,
// message m not before start + m/rate (at once when behind), and returns
// when all were sent or ctx is done. Workers take the next m from one
// counter, so messages go out nearly in order even when some workers are
// slower than others.
func pace(ctx context.Context, start time.Time, rate float64, total int64, workers int, send func(m int64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for m := next.Add(1) - 1; m < total; m = next.Add(1) - 1 {
				due := start.Add(time.Duration(float64(m) / rate * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				if ctx.Err() != nil {
					return
				}
				send(m)
			}
		})
	}
	wg.Wait()
}

// loop calls send(m) for m = 0, 1, 2, … from workers goroutines, each
// taking the next m as soon as its last send returned, until deadline has
// passed or ctx is done; a send under way then finishes. Every m taken is
// sent, so the messages sent are exactly [0, number taken).
func loop(ctx context.Context, deadline time.Time, workers int, send func(m int64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				send(next.Add(1) - 1)
			}
		})
	}
	wg.Wait()
}

// publishCounts is what the publishers of a run did.
type publishCounts struct {
	perChannel []atomic.Int64 // acknowledged messages per channel
	errors     atomic.Int64
	retries    atomic.Int64 // tries after a message's first (--reconnect)
	firstErr   firstError
}

// publishAll publishes c's messages: message m goes to channel m % C with
// sequence number m / C, through node m % U of the U --url nodes; with
// --batch, messages [bN, bN+N) go in batch b, through node b % U.
// At a fixed --rate, message (or batch) m is due at start + m/rate; with
// --rate max each publisher sends the next one as soon as its last was
// answered, until --duration has passed.
func publishAll(ctx context.Context, c config, p *publisher, counts *publishCounts) {
	start := time.Now()
	channels, nodes := int64(c.Channels), int64(len(c.URLs))
	n, end := int64(c.Batch), c.total() // end: first message not sent
	if c.ClosedLoop {
		end = math.MaxInt64
	}
	run := runID()
	sendOne := func(m int64) {
		ch, seq := int(m%channels), uint64(m/channels)
		payload := appendMessage(make([]byte, 0, c.Size), c.Payload, seq, time.Now().UnixNano(), c.Size)
		var err error
		if c.Reconnect {
			err = publishRetrying(ctx, p, int(m%nodes), len(c.URLs), ch, seq, publishKey(run, m), payload, &counts.retries)
		} else {
			err = p.publish(ctx, int(m%nodes), ch, seq, nil, payload)
		}
		if err != nil {
			counts.errors.Add(1)
			counts.firstErr.set(err)
			return
		}
		counts.perChannel[ch].Add(1)
	}
	sendBatch := func(b int64) {
		msgs := make([]batchMessage, 0, n)
		for m := b * n; m < min((b+1)*n, end); m++ {
			seq := uint64(m / channels)
			msg := batchMessage{ch: int(m % channels), payload: appendMessage(make([]byte, 0, c.Size), c.Payload, seq, time.Now().UnixNano(), c.Size)}
			if c.KeyCount > 0 {
				msg.key = conflationKey(seq, c.KeyCount)
			}
			msgs = append(msgs, msg)
		}
		stored := make([]int64, c.Channels)
		err := p.publishBatch(ctx, int(b%nodes), msgs, stored)
		sum := int64(0)
		for ch, k := range stored {
			if k > 0 {
				counts.perChannel[ch].Add(k)
				sum += k
			}
		}
		if err != nil {
			counts.errors.Add(int64(len(msgs)) - sum)
			counts.firstErr.set(err)
		}
	}
	send := sendOne
	if n > 1 {
		send = sendBatch
	}
	switch {
	case c.ClosedLoop:
		loop(ctx, start.Add(c.Duration), c.Publishers, send)
	case n > 1:
		pace(ctx, start, c.Rate/float64(n), (end+n-1)/n, c.Publishers, send)
	default:
		pace(ctx, start, c.Rate, end, c.Publishers, send)
	}
}

// publishRounds is how many times a publish of --reconnect tries every
// node before it counts as failed; publishRoundPause is the pause before
// each round after the first.
const (
	publishRounds     = 3
	publishRoundPause = 250 * time.Millisecond
)

// publishRetrying publishes payload to channel ch as publisher.publish
// does, first through node of nodes and, after each failure, through the
// next node, with the same Idempotency-Key header key on every try: a try
// that stored the message but whose answer was lost (a node killed under
// it) is answered by the next with the first's id and stores nothing.
// It counts every try after the first in retries, and returns the last
// try's error when every try failed.
func publishRetrying(ctx context.Context, p *publisher, node, nodes, ch int, seq uint64, key, payload []byte, retries *atomic.Int64) error {
	var err error
	for try := range publishRounds * nodes {
		if try > 0 {
			retries.Add(1)
		}
		if try > 0 && try%nodes == 0 {
			pause := time.NewTimer(publishRoundPause)
			select {
			case <-ctx.Done():
				pause.Stop()
				return err
			case <-pause.C:
			}
		}
		if err = p.publish(ctx, (node+try)%nodes, ch, seq, key, payload); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// runID returns a random name for one run's idempotency keys, so that
// the keys of two runs on one Redis never meet.
func runID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publishKey returns the idempotency key of message m of run.
func publishKey(run string, m int64) []byte {
	return strconv.AppendInt([]byte("edge-bench-"+run+"-"), m, 10)
}

// firstError keeps the first error it is given. The zero value is ready;
// it is safe for concurrent use.
type firstError struct {
	mu  sync.Mutex // guards err
	err error
}

// set keeps err if it is the first.
func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// get returns the first error, or nil.
func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
