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
//
// Presence: for the channels Config.Presence names, a Broker that
// implements Presence keeps who subscribes, fleet-wide. A Session that
// SetMember identified is a member of each such channel while it
// subscribes it; the hub sends the joins and leaves to the store off the
// fan-out path, in order per member, and fans the store's announcements
// out as presence frames (no id, not history) to the sessions that
// HearPresence asked for.
//
// Deltas: a Session that SetDelta asked for them gets a live message as
// a Fossil patch against the previous message of its channel and key,
// when its client holds that message (see delta.go). The hub keeps the
// previous message of each key per channel while the node has a delta
// subscriber of it, gives each new message its base, and makes the patch
// once (Frame.Delta), shared by every delta subscriber.
package edge
