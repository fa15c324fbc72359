package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/edgeworks/edge/edge"
)

// Transport is the transport attribute of connection and delivery metrics.
type Transport uint8

// The transports, as their "transport" attribute says.
const (
	WS Transport = iota
	SSE
	Poll
	numTransports
)

var transportNames = [numTransports]string{WS: "ws", SSE: "sse", Poll: "poll"}

// Source is where a published message came from.
type Source uint8

// The publish sources, as their "source" attribute says.
const (
	HTTP      Source = iota // POST /v1/publish
	WebSocket               // a WebSocket publish op
	numSources
)

var sourceNames = [numSources]string{HTTP: "http", WebSocket: "ws"}

// Observed reads values that the server already keeps; the exporter calls
// them at each scrape. A nil func reports nothing.
type Observed struct {
	Sessions      func() int64 // open hub sessions (edge_sessions)
	SlowConsumers func() int64 // sessions closed as slow consumers since start
	AuthRefusals  func() int64 // refused credentials since start
}

// latencyBuckets are the bounds, in seconds, of edge_publish_to_deliver_seconds.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics records the edge's metrics. Its methods are safe for concurrent
// use and cheap enough for the delivery path.
type Metrics struct {
	connections metric.Int64UpDownCounter
	published   metric.Int64Counter
	delivered   metric.Int64Counter
	latency     metric.Float64Histogram
	resumes     metric.Int64Counter
	gaps        metric.Int64Counter

	byTransport    [numTransports][]metric.AddOption
	latencyOptions [numTransports][]metric.RecordOption
	bySource       [numSources][]metric.AddOption
}

// New returns metrics backed by an OpenTelemetry SDK meter provider of
// their own, and the handler that serves them in the Prometheus text
// format. The provider has a pull reader only: it starts no goroutine and
// needs no shutdown.
func New(obs Observed) (*Metrics, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m, err := newMetrics(provider.Meter("github.com/edgeworks/edge/transports"), obs)
	if err != nil {
		return nil, nil, err
	}
	return m, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// newMetrics creates the instruments on meter, through the OTel API only.
func newMetrics(meter metric.Meter, obs Observed) (*Metrics, error) {
	m := &Metrics{}
	var err error
	if m.connections, err = meter.Int64UpDownCounter("edge.connections",
		metric.WithDescription("Open subscriber connections (long-polls while they wait), by transport."),
		metric.WithUnit("{connection}")); err != nil {
		return nil, err
	}
	if m.published, err = meter.Int64Counter("edge.messages.published",
		metric.WithDescription("Messages stored for publishing, by source."),
		metric.WithUnit("{message}")); err != nil {
		return nil, err
	}
	if m.delivered, err = meter.Int64Counter("edge.messages.delivered",
		metric.WithDescription("Messages written to subscribers (live and history), by transport."),
		metric.WithUnit("{message}")); err != nil {
		return nil, err
	}
	if m.latency, err = meter.Float64Histogram("edge.publish_to_deliver",
		metric.WithDescription("Time from a message's id timestamp to its write to a subscriber; sampled once per write, from its oldest live message (for long-polls, its newest), by transport."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if m.resumes, err = meter.Int64Counter("edge.resumes",
		metric.WithDescription("Subscriptions that gave a cursor (since=, Last-Event-ID or a WebSocket subscribe with since), by transport; every long-poll after the first gives one."),
		metric.WithUnit("{subscription}")); err != nil {
		return nil, err
	}
	if m.gaps, err = meter.Int64Counter("edge.gaps",
		metric.WithDescription("Gaps signalled to subscribers: history after their cursor was no longer retained."),
		metric.WithUnit("{gap}")); err != nil {
		return nil, err
	}
	if err := observe(meter, "edge.sessions", "Open hub sessions, all transports.", "{session}", obs.Sessions, true); err != nil {
		return nil, err
	}
	if err := observe(meter, "edge.slow_consumer_disconnects", "Sessions closed for falling behind (slow consumers).", "{session}", obs.SlowConsumers, false); err != nil {
		return nil, err
	}
	if err := observe(meter, "edge.auth_refusals", "Refused credentials (missing, invalid or expired tokens and keys).", "{refusal}", obs.AuthRefusals, false); err != nil {
		return nil, err
	}
	for t := range numTransports {
		set := attribute.NewSet(attribute.String("transport", transportNames[t]))
		m.byTransport[t] = []metric.AddOption{metric.WithAttributeSet(set)}
		m.latencyOptions[t] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}
	for s := range numSources {
		set := attribute.NewSet(attribute.String("source", sourceNames[s]))
		m.bySource[s] = []metric.AddOption{metric.WithAttributeSet(set)}
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

// Connected counts a subscriber connection of transport t opening (delta
// 1) or closing (delta -1).
func (m *Metrics) Connected(t Transport, delta int64) {
	m.connections.Add(context.Background(), delta, m.byTransport[t]...)
}

// Published counts one message stored for publishing from s.
func (m *Metrics) Published(s Source) {
	m.published.Add(context.Background(), 1, m.bySource[s]...)
}

// Delivered counts n messages written to one subscriber over t.
func (m *Metrics) Delivered(t Transport, n int) {
	if n > 0 {
		m.delivered.Add(context.Background(), int64(n), m.byTransport[t]...)
	}
}

// Latency records the time from id's timestamp to now for a write over t.
// Clocks of different nodes may disagree: a negative latency counts as 0.
func (m *Metrics) Latency(t Transport, id edge.ID, now time.Time) {
	d := max(now.UnixMilli()-int64(id.Ms), 0)
	m.latency.Record(context.Background(), float64(d)/1e3, m.latencyOptions[t]...)
}

// Resumed counts a subscription over t that gave a cursor.
func (m *Metrics) Resumed(t Transport) { m.resumes.Add(context.Background(), 1, m.byTransport[t]...) }

// Gap counts a gap signalled to a subscriber.
func (m *Metrics) Gap() { m.gaps.Add(context.Background(), 1) }
