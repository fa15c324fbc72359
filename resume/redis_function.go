package resume

import (
	_ "embed"
	"strings"
)

// Key layout in Redis. A channel's keys share the hash tag {channel}, so
// they live in one cluster slot:
//
//	edge:{CHANNEL}        the Stream of the channel's messages (fields e = event, d = data)
//	edge:{CHANNEL}:live   the shard channel (SPUBLISH) that relays new messages to every node
//	                      ("0<id>[ tp=TRACEPARENT]\n<event>\n<data>", see liveMessage)
//	edge:{CHANNEL}:once:KEY  a publish's idempotency key: "<id> <sha1 of event\ndata>",
//	                      expiring after the window (see PublishOnce)
//	edge:{CHANNEL}:members      presence: a sorted set of the members' connection ids,
//	                      scored by when they expire (ms, Redis's clock); expires after 2×TTL idle
//	edge:{CHANNEL}:member-info  presence: a hash of connection id to the member's JSON
//	                      ({"conn","sub","info","node"}); expires after 2×TTL idle
//	edge:{CHANNEL}:presence  the shard channel (SPUBLISH) of joins and leaves:
//	                      "1 join MEMBER" or "1 leave MEMBER" (see presence_redis.go)
//	edge:settings         the fleet's settings, a hash (see redis_settings.go)
func streamKey(channel string) string { return "edge:{" + channel + "}" }

func liveKey(channel string) string { return "edge:{" + channel + "}:live" }

func presenceKey(channel string) string { return "edge:{" + channel + "}:presence" }

func membersKey(channel string) string { return "edge:{" + channel + "}:members" }

func memberInfoKey(channel string) string { return "edge:{" + channel + "}:member-info" }

// channelOfPresence returns the channel of a presence key, or "" for
// another key.
func channelOfPresence(key string) string {
	const prefix, suffix = "edge:{", "}:presence"
	if len(key) <= len(prefix)+len(suffix) || key[:len(prefix)] != prefix || key[len(key)-len(suffix):] != suffix {
		return ""
	}
	return key[len(prefix) : len(key)-len(suffix)]
}

// channelOfLive returns the channel of a live key, or "" for another key.
func channelOfLive(key string) string {
	const prefix, suffix = "edge:{", "}:live"
	if len(key) <= len(prefix)+len(suffix) || key[:len(prefix)] != prefix || key[len(key)-len(suffix):] != suffix {
		return ""
	}
	return key[len(prefix) : len(key)-len(suffix)]
}

// publishFunction is the name of the Redis Function that stores and relays
// a message atomically, loaded from edge.lua (FUNCTION LOAD REPLACE) on
// every master at start and whenever a publish or a presence call finds
// its function missing. Backends
// publish with one command:
//
//	FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]...
//
// which answers the message id. EVENT may be "" for the default type. The
// options after PAYLOAD are named, so that later ones (the function
// refuses names it does not know) can be added without ambiguity: the
// retention settings, which nodes always pass (see settings.go), and a
// publish's idempotency key and how long it is remembered:
//
//	FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]... idempotency-key KEY [idempotency-ttl-ms MS]
//
// which answers an array, the id and 1 if the key was seen in the window
// (and nothing was stored) or 0, or an error if it was seen with another
// event or payload (the nodes declare the key's Redis key too, FCALL
// edge_publish 2 edge:{CHANNEL} edge:{CHANNEL}:once:KEY ..., so that while
// a resharding has the stream and that key on two masters Redis Cluster
// refuses the call with -TRYAGAIN rather than run it where the key is
// missing); and a traced publish's traceparent, which the live payload
// carries to the nodes that deliver the message (the stream entry does not
// keep it):
//
//	FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]... traceparent 00-TRACEID-PARENTID-FLAGS
//
// A malformed traceparent is refused, as a malformed setting is. A
// function of an earlier release answers an option it does not know with
// "edge: usage", and the node loads its own.
const publishFunction = "edge_publish"

// The presence functions of the same library (see presence_redis.go).
const (
	presenceJoinFunction    = "edge_presence_join"
	presenceLeaveFunction   = "edge_presence_leave"
	presenceMembersFunction = "edge_presence_members"
	presenceRefreshFunction = "edge_presence_refresh"
)

// functionLibrary is the Lua library that defines publishFunction and the
// presence functions. It
// validates its input as the HTTP API does, appends to the stream (trimmed
// by count with MAXLEN ~ and by age with MINID ~, expiring when idle) and
// relays the message to the live shard channel in one atomic step. The
// same text serves every node: the settings come with each call or from
// the settings key, and the protocol's facts it repeats from package edge
// are pinned to it by TestFunctionFacts.
//
//go:embed edge.lua
var functionLibrary string

// functionOutdated reports whether err says that the function called is
// missing (a Redis that lost it, or one into which a node of an earlier
// release loaded its own library during a rolling upgrade) or older than
// this node's ("edge: usage", an option or argument it does not know):
// nothing was run, and loading the library and calling again helps.
func functionOutdated(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Function not found") || strings.Contains(err.Error(), "edge: usage"))
}
