// Package metrics holds the edge's operator metrics: OpenTelemetry
// instruments, exported in the Prometheus text format from a registry of
// their own, so that several servers in one process never clash.
//
// Attributes are low-cardinality only (transport, source): never a channel
// name or a client id. Every attribute set is built once, in New, so that
// recording on a hot path is an otel Add or Record with no allocation of
// its own.
package metrics
