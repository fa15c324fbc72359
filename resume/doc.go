// Package resume holds what lets a subscriber continue exactly where it
// stopped: cursors (a position in each subscribed channel, encoded for
// Last-Event-ID and since=) and the history stores that implement
// edge.Broker — the embedded in-memory store (Memory) used when no Redis
// is configured.
package resume
