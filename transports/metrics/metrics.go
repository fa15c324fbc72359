package metrics

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgeworks/edge/edge"
)

// Transport is the transport attribute of connection and delivery metrics.
type Transport uint8

// The transports, as their "transport" attribute says.
const (
	WS Transport = iota
	SSE
	Poll
	NumTransports
)

var transportNames = [NumTransports]string{WS: "ws", SSE: "sse", Poll: "poll"}

// String returns the transport's attribute value: ws, sse or poll.
func (t Transport) String() string { return transportNames[t] }

// Source is where a published message came from.
type Source uint8

// The publish sources, as their "source" attribute says.
const (
	HTTP      Source = iota // POST /v1/publish
	WebSocket               // a WebSocket publish op
	numSources
)

var sourceNames = [numSources]string{HTTP: "http", WebSocket: "ws"}

// String returns the source's attribute value: http or ws.
func (s Source) String() string { return sourceNames[s] }

// Observed reads values that the server already keeps; the exporter calls
// them at each collection. A nil func reports nothing.
type Observed struct {
	Sessions      func() int64                            // open hub sessions (edge_sessions)
	SlowConsumers func() int64                            // sessions closed as slow consumers since start
	AuthRefusals  func() int64                            // refused credentials since start
	Presence      func() int64                            // presence joins and leaves that did not reach the store since start
	Hub           func() [NumTransports]edge.SessionStats // sessions, subscriptions and queues, by transport
	CertExpiry    func() (time.Time, bool)                // the earliest expiry of the certificates served; false: no TLS
	Compressed    func() int64                            // open compressed streams: gzip SSE, deflate WebSocket
}

// LatencyBuckets are the upper bounds, in seconds, of the buckets of
// edge_publish_to_deliver_seconds and of Snapshot.Latency.
var LatencyBuckets = [numBuckets]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

const numBuckets = 15

// Snapshot is a reading of the totals a Metrics keeps beside its
// instruments, for the status page.
type Snapshot struct {
	Connections [NumTransports]int64 // open now
	Published   uint64               // since start
	Delivered   uint64               // since start
	// Latency counts publish-to-deliver samples since start by bucket:
	// Latency[i] those ≤ LatencyBuckets[i] (and above the bound before),
	// the last those above every bound.
	Latency [numBuckets + 1]uint64
}

// Metrics records the edge's metrics. Its methods are safe for concurrent
// use and cheap enough for the delivery path.
type Metrics struct {
	latency    metric.Float64Histogram
	resumes    metric.Int64Counter
	gaps       metric.Int64Counter
	redisCalls metric.Int64Counter
	redisTime  metric.Float64Histogram

	// The attribute sets, built once: recording allocates nothing (a
	// variadic call with a stored slice copies nothing).
	byTransport     [NumTransports]metric.MeasurementOption
	addTransport    [NumTransports][]metric.AddOption
	recordTransport [NumTransports][]metric.RecordOption
	bySource        [numSources]metric.MeasurementOption
	redisOutcome    [3]metric.MeasurementOption // ok, error_reply, failed

	// The counts behind edge.connections, edge.messages.published and
	// edge.messages.delivered, which the exporter observes, and Snapshot
	// reads: one atomic add on the hot path.
	open      [NumTransports]atomic.Int64
	published [numSources]atomic.Int64
	delivered [NumTransports]atomic.Int64
	buckets   [numBuckets + 1]atomic.Uint64
}

// New creates the edge's instruments on provider's meter, through the
// OpenTelemetry API only: cmd/edge installs the SDK and its exporters. A
// nil provider means otel.GetMeterProvider().
func New(provider metric.MeterProvider, obs Observed) (*Metrics, error) {
	if provider == nil {
		provider = otel.GetMeterProvider()
	}
	meter := provider.Meter("github.com/edgeworks/edge/transports")
	m := &Metrics{}
	for t := range NumTransports {
		m.byTransport[t] = metric.WithAttributeSet(attribute.NewSet(attribute.String("transport", transportNames[t])))
		m.addTransport[t] = []metric.AddOption{m.byTransport[t]}
		m.recordTransport[t] = []metric.RecordOption{m.byTransport[t]}
	}
	for s := range numSources {
		m.bySource[s] = metric.WithAttributeSet(attribute.NewSet(attribute.String("source", sourceNames[s])))
	}
	for i, outcome := range []string{"ok", "error_reply", "failed"} {
		m.redisOutcome[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", outcome)))
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	add(m.observeCounts(meter))
	m.latency, err = meter.Float64Histogram("edge.publish_to_deliver",
		metric.WithDescription("Time from a message's id timestamp to its write to a subscriber, by transport; sampled from a write's oldest live message (for long-polls, its newest): every long-poll answer and, under fan-out, one SSE or WebSocket write in each batch of up to 16."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(LatencyBuckets[:]...))
	add(err)
	m.resumes, err = meter.Int64Counter("edge.resumes",
		metric.WithDescription("Subscriptions that gave a cursor (since=, Last-Event-ID or a WebSocket subscribe with since), by transport; every long-poll after the first gives one."),
		metric.WithUnit("{subscription}"))
	add(err)
	m.gaps, err = meter.Int64Counter("edge.gaps",
		metric.WithDescription("Gaps signalled to subscribers: history after their cursor was no longer retained."),
		metric.WithUnit("{gap}"))
	add(err)
	m.redisCalls, err = meter.Int64Counter("edge.redis.commands",
		metric.WithDescription("Round-trips to Redis (a pipeline counts once), by outcome: ok, error_reply (Redis answered with an error, some expected, such as a missing stream) or failed (no answer: connection lost, timeout)."),
		metric.WithUnit("{roundtrip}"))
	add(err)
	m.redisTime, err = meter.Float64Histogram("edge.redis.duration",
		metric.WithDescription("Duration of round-trips to Redis, by outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
	add(err)
	add(observe(meter, "edge.sessions", "Open hub sessions, all transports.", "{session}", obs.Sessions, true))
	add(observe(meter, "edge.slow_consumer_disconnects", "Sessions closed for falling behind (slow consumers).", "{session}", obs.SlowConsumers, false))
	add(observe(meter, "edge.auth_refusals", "Refused credentials (missing, invalid or expired tokens and keys).", "{refusal}", obs.AuthRefusals, false))
	add(observe(meter, "edge.presence_failures", "Presence joins and leaves that did not reach the store (it failed, or too many waited for it, or a node kept the most long-poll members it may); a failed join leaves its subscription working but unlisted.", "{change}", obs.Presence, false))
	add(observe(meter, "edge.compressed_streams", "Open compressed subscriber streams: gzip SSE streams and WebSocket connections that negotiated permessage-deflate (--compress).", "{connection}", obs.Compressed, true))
	add(m.observeHub(meter, obs.Hub))
	add(observeExpiry(meter, obs.CertExpiry))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// observe registers an observable gauge (or, when !gauge, a counter) that
// reports read; a nil read registers nothing.
func observe(meter metric.Meter, name, desc, unit string, read func() int64, gauge bool) error {
	if read == nil {
		return nil
	}
	cb := metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(read())
		return nil
	})
	var err error
	if gauge {
		_, err = meter.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit), cb)
	} else {
		_, err = meter.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit), cb)
	}
	return err
}

// observeCounts registers the instruments that report the atomic counts.
func (m *Metrics) observeCounts(meter metric.Meter) error {
	connections, err1 := meter.Int64ObservableUpDownCounter("edge.connections",
		metric.WithDescription("Open subscriber connections (long-polls while they wait), by transport."),
		metric.WithUnit("{connection}"))
	published, err2 := meter.Int64ObservableCounter("edge.messages.published",
		metric.WithDescription("Messages stored for publishing, by source."),
		metric.WithUnit("{message}"))
	delivered, err3 := meter.Int64ObservableCounter("edge.messages.delivered",
		metric.WithDescription("Messages written to subscribers (live and history), by transport."),
		metric.WithUnit("{message}"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for t := range NumTransports {
			o.ObserveInt64(connections, m.open[t].Load(), m.byTransport[t])
			o.ObserveInt64(delivered, m.delivered[t].Load(), m.byTransport[t])
		}
		for s := range numSources {
			o.ObserveInt64(published, m.published[s].Load(), m.bySource[s])
		}
		return nil
	}, connections, published, delivered)
	return err
}

// observeHub registers the gauges that read walks the hub's sessions for:
// subscriptions and queue depths by transport. It walks once per
// collection, however many gauges it reports.
func (m *Metrics) observeHub(meter metric.Meter, read func() [NumTransports]edge.SessionStats) error {
	if read == nil {
		return nil
	}
	subs, err1 := meter.Int64ObservableGauge("edge.subscriptions",
		metric.WithDescription("Channel subscriptions of open sessions, by transport."), metric.WithUnit("{subscription}"))
	frames, err2 := meter.Int64ObservableGauge("edge.queue.messages",
		metric.WithDescription("Messages waiting in sessions' outgoing queues, by transport."), metric.WithUnit("{message}"))
	bytes, err3 := meter.Int64ObservableGauge("edge.queue.bytes",
		metric.WithDescription("Bytes waiting in sessions' outgoing queues, by transport."), metric.WithUnit("By"))
	fullest, err4 := meter.Int64ObservableGauge("edge.queue.max_bytes",
		metric.WithDescription("Bytes waiting in the fullest session queue, by transport; a session is closed as a slow consumer above --queue-bytes."), metric.WithUnit("By"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		stats := read()
		for t, st := range stats {
			o.ObserveInt64(subs, int64(st.Subscriptions), m.byTransport[t])
			o.ObserveInt64(frames, int64(st.QueuedFrames), m.byTransport[t])
			o.ObserveInt64(bytes, int64(st.QueuedBytes), m.byTransport[t])
			o.ObserveInt64(fullest, int64(st.MaxQueuedBytes), m.byTransport[t])
		}
		return nil
	}, subs, frames, bytes, fullest)
	return err
}

// observeExpiry registers the gauge of seconds left until the earliest
// served certificate expires; a nil read registers nothing.
func observeExpiry(meter metric.Meter, read func() (time.Time, bool)) error {
	if read == nil {
		return nil
	}
	_, err := meter.Float64ObservableGauge("edge.tls.certificate_expiry",
		metric.WithDescription("Seconds until the earliest expiry among the TLS certificates the edge serves (negative once expired); absent without TLS."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if at, ok := read(); ok {
				o.Observe(time.Until(at).Seconds())
			}
			return nil
		}))
	return err
}

// Connected counts a subscriber connection of transport t opening (delta
// 1) or closing (delta -1).
func (m *Metrics) Connected(t Transport, delta int64) {
	m.open[t].Add(delta)
}

// Published counts one message stored for publishing from s.
func (m *Metrics) Published(s Source) {
	m.published[s].Add(1)
}

// Delivered counts n messages written to one subscriber over t.
func (m *Metrics) Delivered(t Transport, n int) {
	if n > 0 {
		m.delivered[t].Add(int64(n))
	}
}

// Latency records the time from id's timestamp to now for a write over t.
// Clocks of different nodes may disagree: a negative latency counts as 0.
func (m *Metrics) Latency(t Transport, id edge.ID, now time.Time) {
	s := float64(max(now.UnixMilli()-int64(id.Ms), 0)) / 1e3
	i := 0
	for i < numBuckets && s > LatencyBuckets[i] {
		i++
	}
	m.buckets[i].Add(1)
	m.latency.Record(context.Background(), s, m.recordTransport[t]...)
}

// Resumed counts a subscription over t that gave a cursor.
func (m *Metrics) Resumed(t Transport) { m.resumes.Add(context.Background(), 1, m.addTransport[t]...) }

// Gap counts a gap signalled to a subscriber.
func (m *Metrics) Gap() { m.gaps.Add(context.Background(), 1) }

// Snapshot returns the totals for the status page.
func (m *Metrics) Snapshot() Snapshot {
	var s Snapshot
	for t := range s.Connections {
		s.Connections[t] = m.open[t].Load()
	}
	for i := range m.published {
		s.Published += uint64(m.published[i].Load())
	}
	for i := range m.delivered {
		s.Delivered += uint64(m.delivered[i].Load())
	}
	for i := range s.Latency {
		s.Latency[i] = m.buckets[i].Load()
	}
	return s
}

// StoreRoundTrip counts and times one round trip to the broker's store
// (edge.redis.commands, edge.redis.duration) by outcome: ok when err is
// nil, failed when it wraps edge.ErrUnavailable (no answer), error_reply
// for another error (the store answered with one). It has the signature
// of the observer that transports.Store.OnRoundTrip takes.
func (m *Metrics) StoreRoundTrip(ctx context.Context, took time.Duration, err error) {
	outcome := m.redisOutcome[0]
	switch {
	case err == nil:
	case errors.Is(err, edge.ErrUnavailable):
		outcome = m.redisOutcome[2]
	default:
		outcome = m.redisOutcome[1]
	}
	m.redisCalls.Add(ctx, 1, outcome)
	m.redisTime.Record(ctx, took.Seconds(), outcome)
}
