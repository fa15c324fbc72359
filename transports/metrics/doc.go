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
//
// # The metrics
//
// As GET /metrics names them (OpenTelemetry's Prometheus exporter turns
// edge.messages.delivered into edge_messages_delivered_total, a unit of
// seconds into a _seconds suffix); the labels are transport (ws, sse,
// poll), source (http, ws) and outcome:
//
//	edge_connections{transport}                 open subscriber connections (a long-poll while it waits)
//	edge_sessions                               sessions on the hub
//	edge_compressed_streams                     open compressed streams: gzip SSE, WebSocket with
//	                                            permessage-deflate (see --compress)
//	edge_subscriptions{transport}               channels subscribed by open sessions
//	edge_queue_messages{transport}              messages waiting in outgoing queues
//	edge_queue_bytes{transport}                 bytes waiting in outgoing queues
//	edge_queue_max_bytes{transport}             the fullest queue; at --queue-bytes its client is dropped
//	                                            as a slow consumer
//	edge_messages_published_total{source}       messages published (HTTP or a WebSocket op)
//	edge_messages_delivered_total{transport}    messages written to subscribers (live and history)
//	edge_publish_to_deliver_seconds{transport}  histogram from the message id's time to the write,
//	                                            sampled from its oldest live message (for a long-poll,
//	                                            its newest): every long-poll answer, and every SSE or
//	                                            WebSocket write while writes are few; under fan-out, one
//	                                            write, at random, of each batch of up to 16 a writer runs
//	edge_resumes_total{transport}               subscribes with a cursor (every long-poll after the first
//	                                            is one)
//	edge_gaps_total                             gaps reported: history after a cursor was already trimmed
//	edge_slow_consumer_disconnects_total        clients dropped for falling behind
//	edge_auth_refusals_total                    refused credentials
//	edge_presence_failures_total                presence joins and leaves that did not reach the store
//	                                            (it failed, or too many waited), and long-poll members
//	                                            refused past --max-conns; the subscription works
//	edge_redis_commands_total{outcome}          round-trips to Redis (a pipeline counts once): ok,
//	                                            error_reply (Redis answered an error, some expected) or
//	                                            failed (no answer: connection lost, timeout)
//	edge_redis_duration_seconds{outcome}        histogram of those round-trips
//	edge_tls_certificate_expiry_seconds         seconds until the earliest served certificate expires
//	                                            (configured names, not on-demand ones; absent without TLS)
//
// Alert on edge_redis_commands_total{outcome="failed"} rising,
// edge_tls_certificate_expiry_seconds < 7*86400 (renewal normally happens
// with a third of the lifetime left), edge_slow_consumer_disconnects_total
// rising fast, and the p99 of edge_publish_to_deliver_seconds.
package metrics
