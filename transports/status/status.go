package status

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/transports/metrics"
)

const (
	// DefaultInterval is how often Run samples unless WithInterval says
	// otherwise.
	DefaultInterval = time.Second
	// DefaultHeartbeat is the longest an event stream stays silent unless
	// WithHeartbeat says otherwise: proxies close idle connections.
	DefaultHeartbeat = 15 * time.Second
	// Points is how many samples the ring keeps: five minutes at the
	// default interval.
	Points = 300
	// MaxViewers bounds the event streams served at once; one more is
	// answered 429.
	MaxViewers = 32

	// viewerBuffer is how many samples a viewer may fall behind before it
	// is dropped.
	viewerBuffer = 8
	// writeTimeout bounds each write to a viewer.
	writeTimeout = 10 * time.Second
	// retryAfter is the Retry-After of a refused viewer, in seconds.
	retryAfter = 5
	// retryMillis is the reconnection delay the stream asks EventSource for.
	retryMillis = 2000
)

// Reading is one reading of the server, which Run takes every interval.
type Reading struct {
	metrics.Snapshot
	Sessions int64  // open hub sessions
	Store    string // "memory" or "redis"
	StoreErr string // "" when the store is ready, else why not
}

// Point is one sample, as ServeEvents sends it in JSON.
type Point struct {
	Time        int64            `json:"t"`           // when it was read, in Unix milliseconds
	Connections map[string]int64 `json:"connections"` // open subscriber connections by transport: ws, sse, poll
	Sessions    int64            `json:"sessions"`    // open hub sessions
	Published   float64          `json:"published"`   // messages published per second since the sample before
	Delivered   float64          `json:"delivered"`   // messages delivered per second since the sample before
	// Latency is the publish-to-deliver latency of the writes since the
	// sample before; null when there were none.
	Latency  *Percentiles `json:"latency"`
	Store    string       `json:"store"`                 // "memory" or "redis"
	StoreErr string       `json:"store_error,omitempty"` // absent when the store is ready
}

// Percentiles are latency percentiles in milliseconds, estimated from
// histogram buckets.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Status samples the server for the status page and serves the page and
// its event stream. Create it with New and sample with Run; its methods
// are safe for concurrent use.
type Status struct {
	read      func(context.Context) Reading
	log       *slog.Logger
	interval  time.Duration
	heartbeat time.Duration
	done      chan struct{} // closed when Run returns

	// mu guards ring, head, n, viewers and stopped.
	mu      sync.Mutex
	ring    [Points][]byte // samples in JSON, oldest at head
	head, n int
	viewers map[chan []byte]struct{} // each open stream's buffer of samples in JSON
	stopped bool                     // Run returned
}

// Option changes a default of New.
type Option func(*Status)

// WithInterval makes Run sample every d instead of every DefaultInterval.
// The ring keeps Points samples whatever d, and the page places them by
// their time on at most five minutes, so a shorter d is for tests.
func WithInterval(d time.Duration) Option {
	return func(s *Status) {
		if d > 0 {
			s.interval = d
		}
	}
}

// WithHeartbeat makes event streams send a heartbeat comment after d of
// silence instead of DefaultHeartbeat.
func WithHeartbeat(d time.Duration) Option {
	return func(s *Status) {
		if d > 0 {
			s.heartbeat = d
		}
	}
}

// New returns a Status that takes its readings with read, which must
// return soon (within a second or so) and when its context is done. A nil
// log logs nothing.
func New(read func(context.Context) Reading, log *slog.Logger, opts ...Option) *Status {
	if read == nil {
		panic("status: New with a nil read func")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Status{
		read:      read,
		log:       log,
		interval:  DefaultInterval,
		heartbeat: DefaultHeartbeat,
		done:      make(chan struct{}),
		viewers:   make(map[chan []byte]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run samples every interval until ctx is done; then it ends every event
// stream and returns. Call it once.
func (s *Status) Run(ctx context.Context) {
	defer s.stop()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	last, lastAt := s.read(ctx), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := time.Now()
		r := s.read(ctx)
		if ctx.Err() != nil {
			return // a reading cut short says nothing
		}
		s.add(newPoint(last, r, at.Sub(lastAt), at))
		last, lastAt = r, at
	}
}

// stop refuses new viewers and ends the streams of those there are.
func (s *Status) stop() {
	s.mu.Lock()
	s.stopped = true
	clear(s.viewers)
	s.mu.Unlock()
	close(s.done)
}

// add appends p to the ring, dropping the oldest when full, and hands it
// to every viewer, dropping those whose buffer is full.
func (s *Status) add(p Point) {
	b, err := json.Marshal(p)
	if err != nil {
		s.log.Error("status: cannot encode a sample", "err", err)
		return
	}
	dropped := 0
	s.mu.Lock()
	if s.n < Points {
		s.ring[(s.head+s.n)%Points] = b
		s.n++
	} else {
		s.ring[s.head] = b
		s.head = (s.head + 1) % Points
	}
	for ch := range s.viewers {
		select {
		case ch <- b:
		default:
			delete(s.viewers, ch)
			close(ch)
			dropped++
		}
	}
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Debug("status: dropped viewers that fell behind", "viewers", dropped)
	}
}

// historyLocked returns the ring's samples, oldest first, as a JSON array.
func (s *Status) historyLocked() []byte {
	size := 2
	for i := range s.n {
		size += len(s.ring[(s.head+i)%Points]) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i := range s.n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.ring[(s.head+i)%Points]...)
	}
	return append(b, ']')
}

// join registers a viewer and returns its buffer and the history it
// continues: every sample added later goes to the buffer.
func (s *Status) join() (chan []byte, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return nil, nil, fmt.Errorf("%w: the status page stopped sampling", edge.ErrShuttingDown)
	case len(s.viewers) >= MaxViewers:
		return nil, nil, fmt.Errorf("%w: the status page has %d viewers already; retry in %d s", edge.ErrRateLimited, MaxViewers, retryAfter)
	}
	ch := make(chan []byte, viewerBuffer)
	s.viewers[ch] = struct{}{}
	return ch, s.historyLocked(), nil
}

// leave unregisters a viewer, unless add dropped it already.
func (s *Status) leave(ch chan []byte) {
	s.mu.Lock()
	delete(s.viewers, ch)
	s.mu.Unlock()
}

// ServeEvents streams the samples to the page: "retry: 2000", an event
// "history" with the ring's samples as a JSON array of Points, then an
// event "sample" with each new Point, and a ": heartbeat" comment after
// the heartbeat interval of silence. The stream ends when the client
// leaves, when it falls behind and when Run returns. Beyond MaxViewers
// streams it answers 429. It answers GET; the caller refuses other
// methods.
func (s *Status) ServeEvents(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method == http.MethodHead {
		setStreamHeaders(h)
		w.WriteHeader(http.StatusOK)
		return
	}
	ch, history, err := s.join()
	if err != nil {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
		writeError(w, err)
		return
	}
	defer s.leave(ch)
	setStreamHeaders(h)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(parts ...[]byte) bool {
		// Without deadlines (a wrapper that hides them), Shutdown's
		// Close ends a stuck write instead.
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: "+strconv.Itoa(retryMillis)+"\n\nevent: history\ndata: "), history, []byte("\n\n")) {
		return
	}
	idle := time.NewTimer(s.heartbeat)
	defer idle.Stop()
	for {
		var ok bool
		select {
		case b, open := <-ch:
			if !open {
				return // fell behind: EventSource reconnects and gets the history
			}
			ok = write(sampleHead, b, eventEnd)
		case <-idle.C:
			ok = write(heartbeat)
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
		if !ok {
			return
		}
		idle.Reset(s.heartbeat)
	}
}

var (
	sampleHead = []byte("event: sample\ndata: ")
	eventEnd   = []byte("\n\n")
	heartbeat  = []byte(": heartbeat\n\n")
)

func setStreamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
}

// writeError answers {"error":{"code","message"}} with the status of the
// edge.Error that err wraps, as the edge does everywhere.
func writeError(w http.ResponseWriter, err error) {
	code, status, msg := edge.Classify(err)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	b, _ := json.Marshal(body) // strings always encode
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// newPoint returns the sample of cur, read at at, elapsed after prev.
func newPoint(prev, cur Reading, elapsed time.Duration, at time.Time) Point {
	p := Point{
		Time:        at.UnixMilli(),
		Connections: make(map[string]int64, metrics.NumTransports),
		Sessions:    cur.Sessions,
		Published:   rate(prev.Published, cur.Published, elapsed),
		Delivered:   rate(prev.Delivered, cur.Delivered, elapsed),
		Store:       cur.Store,
		StoreErr:    cur.StoreErr,
	}
	for t := range metrics.NumTransports {
		p.Connections[t.String()] = cur.Connections[t]
	}
	var delta [len(cur.Latency)]uint64
	for i := range delta {
		delta[i] = sub(prev.Latency[i], cur.Latency[i])
	}
	p.Latency = percentiles(delta)
	return p
}

// sub returns cur-prev, or 0 when the total went down.
func sub(prev, cur uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

// rate returns the growth of a total per second over elapsed, rounded to
// hundredths.
func rate(prev, cur uint64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return round(float64(sub(prev, cur))/elapsed.Seconds(), 100)
}

// percentiles estimates p50, p90 and p99 from counts per bucket of
// metrics.LatencyBuckets; nil when there are no counts.
func percentiles(counts [len(metrics.LatencyBuckets) + 1]uint64) *Percentiles {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return nil
	}
	return &Percentiles{
		P50: quantile(counts, total, 0.5),
		P90: quantile(counts, total, 0.9),
		P99: quantile(counts, total, 0.99),
	}
}

// quantile estimates the q-quantile, in milliseconds rounded to
// thousandths, of total samples counted by bucket, interpolating linearly
// within the bucket it falls in (the first bucket starts at 0). In the
// bucket above every bound it is that bound, as Prometheus's
// histogram_quantile says.
func quantile(counts [len(metrics.LatencyBuckets) + 1]uint64, total uint64, q float64) float64 {
	rank := q * float64(total)
	var below uint64
	for i, c := range counts {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		if i == len(metrics.LatencyBuckets) {
			break
		}
		lower := 0.0
		if i > 0 {
			lower = metrics.LatencyBuckets[i-1]
		}
		upper := metrics.LatencyBuckets[i]
		s := lower + (upper-lower)*(rank-float64(below))/float64(c)
		return round(s*1e3, 1000)
	}
	return metrics.LatencyBuckets[len(metrics.LatencyBuckets)-1] * 1e3
}

func round(v, per float64) float64 { return math.Round(v*per) / per }

//go:embed page.html
var pageHTML []byte

// page is the status page with its headers, built once.
var page = newPage(pageHTML)

type pageFile struct {
	body []byte
	etag string
	csp  string
}

// newPage prepares body for serving: its ETag, and a Content-Security-
// Policy that allows its inline script and style by their hashes, its
// stream, and nothing else.
func newPage(body []byte) pageFile {
	sum := sha256.Sum256(body)
	return pageFile{
		body: body,
		etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		csp: "default-src 'none'; script-src " + inlineHash(body, "script") +
			"; style-src " + inlineHash(body, "style") +
			"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
}

// inlineHash returns the CSP source of the content of body's only <tag>
// element.
func inlineHash(body []byte, tag string) string {
	_, rest, ok := bytes.Cut(body, []byte("<"+tag+">"))
	content, _, ok2 := bytes.Cut(rest, []byte("</"+tag+">"))
	if !ok || !ok2 || bytes.Contains(rest[len(content):], []byte("<"+tag)) {
		panic("status: page.html must have exactly one plain <" + tag + "> element")
	}
	sum := sha256.Sum256(content)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// ServePage serves the status page, which opens the event stream at its
// own path plus "/events" (so it works behind a path prefix too). It
// answers GET and HEAD; the caller refuses other methods.
func (s *Status) ServePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", page.csp)
	h.Set("ETag", page.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page.body))
}
