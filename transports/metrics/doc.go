// Package metrics holds the edge's operator metrics as OpenTelemetry
// instruments, created through the OTel API only: whoever runs the server
// installs the SDK and its exporters (cmd/edge does it through package
// transports/telemetry: Prometheus at GET /metrics, OTLP when configured).
//
// Attributes are low-cardinality only (transport, source, outcome): never a
// channel name or a client id. Every attribute set is built once, in New,
// so that recording on a hot path is an otel Add or Record with no
// allocation of its own. Beside the instruments, Metrics keeps a few
// totals (Snapshot) that the status page reads.
package metrics
