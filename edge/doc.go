// Package edge is the hub of the edge fan-out server: the channel registry,
// subscriber sessions with bounded queues, fan-out, limits, configuration,
// errors and the Broker interface that stores and relays messages.
//
// Package edge imports nothing else from this repository. Brokers (the
// embedded memory store, Redis) live in package resume; the HTTP surface
// (WebSocket, SSE, long-polling) lives in package transports.
//
// Data flow: Broker.Publish stores a message and relays it to every node;
// the Hub receives it once, wraps it in a Frame (whose wire encodings are
// built once and shared by every subscriber) and enqueues the Frame on each
// local Session's bounded queue. A Session that falls too far behind is
// closed as a slow consumer; its client resumes from history.
package edge
