// Package resume holds what lets a subscriber continue exactly where it
// stopped: cursors (a position in each subscribed channel, encoded for
// Last-Event-ID and since=) and the two history stores that implement
// edge.Broker.
//
// Memory (NewMemory) is the embedded store of a single node, used when no
// Redis is configured: a ring of recent messages per channel, bounded by
// count, age and total bytes, relayed to the node's own hub.
//
// Redis (NewRedis) is the store of a fleet: each channel's history is a
// Redis Stream, trimmed by count and age, and new messages reach every
// node through sharded pub/sub, with one subscriber connection per node
// (per master on a cluster) that subscribes only the channels with local
// subscribers. A Redis Function stores and relays a message in one atomic
// step, so backends can publish with one FCALL, without the edge. It
// works with a single Redis, Redis Cluster (a channel's keys share a hash
// tag, so one slot; the relay follows a channel's slot to its new master
// after a failover or a resharding, and fills the channel from its
// stream) and Sentinel (the master and its successor after a failover). Optionally it ingests plain PUBLISH traffic on channels
// matching a pattern: the node holding a lease in Redis stores each such
// message, which then has an id and history like any other.
//
// The live relay payload that the function publishes on a channel's shard
// channel edge:{CHANNEL}:live is, in version 2,
//
//	0<id>[ name=value]...\n<event>\n<data>
//
// The leading zero marks the version (a node of the release before it,
// whose payload was "<id>\n<event>\n<data>", reads the same id). The
// attributes on the id line are separated by single spaces; a node
// ignores those it does not know, so that a release can add one that the
// release before it relays unharmed during a rolling upgrade. The one
// defined is tp, the W3C traceparent of a traced publish (version 00, 55
// bytes): the function writes it when the publish passes the option
// traceparent, which the nodes do for a sampled span only, and the relay
// delivers the message with it as the remote parent of the hub's fan-out
// span. The relay reads at most 1,024 bytes and 16 attributes, ignores a
// malformed tp (the message is still delivered), and the stream entry
// keeps no trace.
//
// Both stores implement edge.Presence, who subscribes to a channel. The
// embedded store knows its own node's members; the Redis store keeps the
// fleet's in the channel's slot, each member refreshed by its node and
// expiring when the node dies, and relays joins and leaves on a shard
// channel of their own (see presence_redis.go).
//
// Both stores use ids of the Redis Stream form (<ms>-<seq>), strictly
// increasing per channel, and both detect lost history: a cursor behind
// what is retained gets a gap, a cursor ahead of the channel's last id
// (after a flush or failover) gets a gap and the position to continue
// from, never a silent skip. When a Redis relay finds messages it
// delivered gone (a failover to a lagging replica), it records the loss in
// the stream, so that older cursors get the gap too.
package resume
