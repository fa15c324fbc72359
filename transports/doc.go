// Package transports is the HTTP surface of edge: one subscribe URL that
// serves WebSocket, Server-Sent Events and long-polling (negotiated per
// request), publishing, history, health endpoints, the browser client and
// the status page, and the Server that runs them with graceful drain.
//
// This comment is also the wire reference: what a client in any language
// sends and receives, byte for byte where it matters. The golden
// transcripts in the repository's testdata/ directory show the same
// exchanges as captured from a real edge. The command's flags named below
// are described in full by go doc ./cmd/edge.
//
// # Endpoints
//
//	GET  /v1/subscribe?channel=A[&channel=B…][&since=CURSOR]
//	     a WebSocket upgrade gets WebSocket; Accept: text/event-stream gets SSE;
//	     anything else gets long-polling; transport=ws|sse|poll forces one
//	POST /v1/publish?channel=A[&event=TYPE]
//	     the body is the payload; 200 {"channel":"A","id":"<id>"} once stored
//	POST /v1/publish/batch
//	     a JSON body {"messages":[{"channel","event","data" or "data_base64"}…]};
//	     200 {"results":[…]}, one per message in order (see Batch publishing)
//	GET  /v1/history?channel=A[&since=CURSOR][&limit=N]
//	     a page of retained messages (see History)
//	GET  /v1/presence?channel=A
//	     who subscribes to a channel that keeps presence, fleet-wide (see Presence)
//	GET  /healthz      liveness: 200 {"status":"ok","sessions":N,"auth_refusals":N}
//	GET  /readyz       readiness: 200 when the store is reachable, 503 while draining or while Redis is down
//	GET  /metrics      Prometheus text format (go doc ./transports/metrics)
//	GET  /status       the live status page; /status/events its SSE feed (go doc ./transports/status);
//	                   like /metrics open to anyone who can reach the edge, counts only (no channel, no user)
//	GET  /v1/client.js the browser client (ES module; ?classic for a classic script defining window.edge);
//	                   /v1/client.d.ts its TypeScript declarations, also named by X-TypeScript-Types
//	GET  /             the demo page
//
// Subscribe parameters, all optional: heartbeat= (SSE comments and
// WebSocket pings; 5s to 5m, default --heartbeat), padding= (SSE: bytes
// of padding comment sent first, 0 to 8192, for proxies that buffer the
// first kilobytes), and for long-polling timeout= (0 to
// --poll-timeout-max), linger= (0 to --poll-linger-max) and limit= (1 to
// 1000); conflate= (a Go duration from 50ms to 60s, or 0 for none;
// see Conflation); for presence (see Presence) presence=1 (or 0; true and false
// too), info= (at most 256 bytes of UTF-8 without control characters) and,
// for long-polling, member= (the token of an earlier answer's "member":
// 32 lowercase hex digits, else 400 bad_request); compress=1 (or 0; true
// and false too) asks for a compressed stream or answer, on every
// transport (see Compression); delta=fossil asks for deltas (see Deltas;
// any other value is 400 bad_request).
// Durations are written 30s, 1m or as plain seconds. A value
// outside its range is refused with 400 bad_request naming the parameter
// and the range ("limit=5000 is out of range; use 1 to 1000"), never
// clamped. On every endpoint, a parameter with a malformed percent-escape
// (channel=a%ZZb) or a semicolon is a 400 that names it as malformed,
// never silently dropped.
//
// A cursor comes from the Last-Event-ID header (which wins, as
// EventSource sends it on reconnect) or from since=. For one channel it
// is a message id (<ms>-<seq>); for several channels an opaque URL-safe
// string ("m." and base64url) holding the position in each; at most
// 32 KiB. since=0-0 asks for everything retained. A malformed cursor is
// 400 bad_cursor; a well-formed cursor ahead of its channel gets the gap
// signal and continues from the channel's current position.
//
// # Message object
//
// WebSocket frames, long-poll answers, history pages and multi-channel SSE
// events carry messages as:
//
//	{"channel":"prices","id":"1732270000000-3","event":"","data":"{\"price\":1}"}
//
// data is the payload as a string. A payload that is not valid UTF-8 is
// sent base64-encoded with "encoding":"base64" added. An event type uses
// the channel alphabet, at most 64 bytes; gap, disconnect, join and leave
// are reserved.
//
// # Deltas
//
// A subscriber that sends delta=fossil (WebSocket: in the URL, or
// "delta":"fossil" in a subscribe op; SSE; long-poll) may get a live
// message as a Fossil delta (the format of fossil-scm.org's
// delta_format.wiki, with its checksum) from the previous message of the
// same channel and key (the publish's key=; none: the channel), which
// its client holds:
//
//	{"channel":"A","id":"1732270000000-4","event":"","key":"cpu","delta":"1732270000000-3","data":"<patch>"}
//
// "delta" names the message the patch applies to; data is the patch, as
// a string, or base64 with "encoding":"base64" when it is not UTF-8. The
// client applies it to that message's payload and has the message's own.
// The edge makes each patch once per message and shares it (and its
// encodings) among all delta subscribers of the node, and sends it only
// where it is smaller than the payload. A message is sent in full
// instead when:
//
//   - its key has no previous message the node kept (the node keeps the
//     previous message of at most 1,024 keys and 4 MiB of payloads per
//     channel, forgetting the stalest; only while the channel has a delta
//     subscriber on the node, and for 30 s after the last one left);
//   - it is a key's 50th since its last full one (edge.DeltaResync: every
//     delta subscriber gets it in full, which bounds how long a wrong base
//     could last);
//   - its payload is over 64 KiB;
//   - the subscriber's client does not hold the base: on WebSocket and
//     SSE the subscription sends a patch only against the message of the
//     key it sent last itself (history sent when it joined included). So
//     after a resume, after a gap and after a reconnect, history comes in
//     full and the first message of each key with no message in that
//     history is full. A long-poll, a new subscription at every request,
//     trusts its since=: its client holds every message up to the cursor
//     (client.js does), so a message whose base is at or before it may be
//     a patch, and so may a message published between two polls that the
//     poll reads from history while the node still has the frame it
//     relayed of it (its last 64);
//   - the subscription also conflates (it gets full messages; nothing is
//     refused).
//
// Over SSE a delta stream's events carry the JSON object, as streams of
// several channels do (with the cursor as the id), since a plain
// EventSource could not apply a patch. Joins and leaves are never deltas.
// A client that cannot apply a delta (it does not hold the base, or the
// checksum fails) must not use it: it resumes from the cursor before that
// message (long-poll: once without delta=), which sends it in full.
//
// What it saves on the dashboard payload (1,191 bytes of JSON state, a
// few values changed per update; BenchmarkDeltaWire): 1,482 bytes per
// message in the WebSocket or long-poll JSON object become 328, and
// 1,220 bytes per SSE event of a single-channel stream become 357. Making
// the patch costs 2.6–4.7 µs per message, once per node
// (BenchmarkDeltaPatch); the edge's CPU per delivery stays within noise
// (edge-bench, 500 WebSocket subscribers: 7.0–7.1 s per million
// deliveries with deltas, 7.0–7.3 s without). On the wire, with
// edge-bench's dashboard payload (20 subscribers, 20 updates a second for
// 15 s; --delta fossil, and --compress besides), a subscriber receives
// per hour:
//
//	            plain       delta       delta and compressed
//	WebSocket   82.5 MiB    13.9 MiB    10.2 MiB
//	SSE         72.2 MiB    15.6 MiB     5.7 MiB   (compressed alone: 4.9 MiB)
//	long-poll   99.4 MiB    30.8 MiB    29.9 MiB
//
// Deltas cut the bytes by 5–6× on WebSocket and SSE and 3× on long-poll
// (whose requests and answer heads remain), at no memory per subscriber
// beyond a few ids; on SSE a compressed stream alone does better (its
// dictionary sees the repeated state), and a patch compresses less well.
//
// # Server-Sent Events
//
// Headers: Content-Type: text/event-stream, Cache-Control: no-cache,
// no-transform, X-Accel-Buffering: no (nginx). Over HTTP/1 the edge takes
// the connection from net/http and the body runs until the connection
// closes (Connection: close); over HTTP/2 it is an ordinary stream. The
// stream is:
//
//	retry: 2000
//
//	id: 1732270000000-2          ← id-only event: sets lastEventId to the start position
//
//	id: 1732270000000-3
//	event: price                 ← only when the message has an event type
//	data: first line             ← one data: line per payload line
//	data: second line
//
//	: hb                         ← heartbeat comment every --heartbeat
//
// History after the cursor comes before the id-only event, live messages
// after it. With one channel, data is exactly the published payload, so
// es.onmessage = e => JSON.parse(e.data) works unchanged; line breaks in a
// payload (\n, \r\n, \r) become separate data: lines, which EventSource
// joins with \n, so a payload can never inject a field. Single-channel SSE
// carries text only: a non-UTF-8 payload needs another transport. With
// several channels (channel=a&channel=b), data is the message object
// (JSON.parse(e.data).channel tells the channel), id: is the composite
// cursor and event: is still the message's type.
//
//	event: gap
//	data: {"channel":"A"}        ← before resumed messages, when history after the cursor was lost
//
//	retry: 3712
//	event: disconnect
//	data: {"code":1012,"reason":"shutdown","reconnect":true}   ← when the edge ends the stream
//
//	event: join
//	data: {"channel":"A","member":{"conn":"…","sub":"…","info":"…","node":"…"}}   ← presence=1: no id: line
//
// The retry: before a disconnect is jittered (--sse-retry plus up to 5 s
// on drain), so clients do not all come back at once.
//
// A client that stops reading (a frozen tab, a suspended process) still
// looks connected: its kernel acknowledges bytes until its receive buffer
// is full, then holds the window shut, and an SSE client sends nothing the
// edge could miss. Over HTTP/1 on Linux the edge looks at the
// connection's kernel send queue at every heartbeat: when bytes that
// waited for the client at one heartbeat are still unacknowledged at the
// next, the stream ends as a slow consumer (counted in
// edge_slow_consumer_disconnects_total), reset and without a disconnect
// event the client would not read; it resumes from its Last-Event-ID once
// it runs again. Such a client is noticed within two heartbeats of its
// receive buffer filling: with messages flowing, within seconds; on a
// channel where only heartbeats flow, only once the heartbeats alone have
// filled it (6 bytes each, so practically never, and it costs no more than
// any idle stream meanwhile). Over HTTP/2, whose streams share one
// connection and its send queue, and off Linux, it is noticed when a write
// cannot complete within 10 s, once flow control or the kernel buffers are
// full: with a trickle of messages that can take minutes.
//
// # WebSocket
//
// JSON text frames. permessage-deflate is negotiated when the client
// offers it and the subscribe wants compression (see Compression: under
// the default --compress request, only with compress=1 in the URL; an
// offer alone, which browsers always make, is declined), without context
// takeover, so a compressing connection holds no compression state while
// idle. It costs CPU, not
// memory: a message is compressed once for every subscriber that
// negotiated it, batches (catch-up, bursts) once per connection, with
// pooled compressors (about 1.2 MB each, one per concurrent writer); a
// compressed client frame borrows a pooled inflater (about 40 KiB) while
// it is read. Client messages are bounded once inflated, not only on the
// wire: a message over 2×--max-payload + 4 KiB either way (a decompression
// bomb) is refused as soon as the edge has read that much, with a
// disconnect frame and close 1009 message_too_big. The edge pings every
// --heartbeat; a client that answers neither pings nor frames for two
// heartbeats and 10 s is dropped.
//
// Client to edge (ref is optional, a number or a string of up to 64 bytes
// of valid UTF-8, echoed back; a ref that is neither is refused with an
// error frame without it, so every frame the edge sends is valid UTF-8):
//
//	{"op":"subscribe","channel":"A","since":"<cursor>","presence":true,"delta":"fossil","ref":1}
//	{"op":"unsubscribe","channel":"A","ref":2}
//	{"op":"publish","channel":"A","event":"price","data":"…","ref":3}
//	{"op":"ping","ref":4}
//	{"op":"refresh","token":"<jwt>","ref":5}
//
// ping is answered with a pong frame: scripts cannot see WebSocket pings,
// so a browser that has heard nothing for a while pings to learn whether
// the path still works. The edge skips its own next ping after answering
// one, so a client pinging once a heartbeat costs no extra wake-ups.
// subscribe's "delta":"fossil" asks for deltas on that channel (see
// Deltas; without it, as delta= in the URL says; another value gets an
// error frame). publish may carry "encoding":"base64" for binary payloads, and
// "idempotency_key" as POST /v1/publish takes Idempotency-Key (its
// answer then has "replayed":true for a repeat), and "key" as it takes
// key=, the message's conflation key. It needs a
// publish right: the publish claim of the token the connection was opened
// with (or refreshed to), a --client-publish pattern, --insecure-publish,
// or anonymous loopback publishing while no publish key is set; without
// one it gets an error frame (unauthorized or forbidden). refresh replaces the connection's token with one for
// the same subject before it expires, moving the expiry.
//
// Edge to client: a message object, or an array of them (when several are
// ready at once, e.g. history; an array frame holds at most about
// 256 KiB), or a control frame with a type:
//
//	{"type":"subscribed","ref":1,"channel":"A","id":"<position>"}
//	{"type":"unsubscribed","ref":2,"channel":"A"}
//	{"type":"published","ref":3,"channel":"A","id":"<id>"}
//	{"type":"published","ref":3,"channel":"A","id":"<id>","replayed":true}
//	{"type":"pong","ref":4}
//	{"type":"refreshed","ref":5}
//	{"type":"error","ref":1,"error":{"code":"bad_channel","message":"…"}}
//	{"type":"gap","channel":"A"}
//	{"channel":"A","event":"join","member":{"conn":"…","sub":"…","info":"…","node":"…"}}   ← presence, no type, no id
//	{"type":"disconnect","code":4002,"reason":"slow_consumer","reconnect":true,"retry_ms":2400,"cursor":"<cursor>"}
//
// A subscribe's history arrives before its subscribed frame. The start
// position of channels in the URL is fixed before the 101 answer. To resume after a reconnect,
// keep the last id per channel and send subscribe with since, or put the
// cursor of the disconnect frame in the URL. Bad frames (not a JSON
// object, an unknown op, a field of the wrong type, a binary frame) get an
// error frame that names the field and the type it needs ("channel must be
// a string"), and the connection stays open. A disconnect frame is
// followed by a close frame with the same code.
//
// # Long-polling
//
// GET /v1/subscribe?channel=A&since=CURSOR answers at once when messages
// after the cursor are retained, else holds until one arrives or timeout=
// passes (default --poll-timeout, 25s; at most --poll-timeout-max).
// linger= (at most --poll-linger-max) keeps collecting for that long once
// there is a first message, so a battery-conscious client wakes once per
// burst. limit= bounds the messages per answer (default 100, at most
// 1000). Without since=, the poll starts at the channels' current
// position.
//
//	{"messages":[{"channel":"A","id":"…","event":"","data":"…"}],"cursor":"…","gap":false}
//
// Send cursor as since= in the next poll. An empty messages means the hold
// timed out. With "gap":true, "gap_channels":["A"] names the channels whose
// history after the cursor was lost. Answers are Cache-Control: no-store.
// When the edge drains, a waiting poll is answered at once, and the answer
// carries "disconnect":{"code":1012,"reason":"shutdown","reconnect":true,"retry_ms":…}.
// With presence=1 the answer may carry "presence":[{"channel","event","member"}…]
// (see Presence). When a polled channel keeps presence, the answer
// carries "member":"<token>": send it as member= in the next polls, which
// makes the client one presence member from poll to poll (see Presence).
//
// # Compression
//
// Compression is opt-in, because a compressed connection costs memory
// that an idle one otherwise does not hold. --compress (EDGE_COMPRESS,
// "compress" in the config file) says when:
//
//	request   (default) when the subscribe asks with compress=1
//	always    for every subscribe that allows it, unless it says compress=0
//	never     never; compress=1 is accepted and ignored (the answer is plain)
//
// compress= takes 1, true, 0 or false; anything else is 400 bad_request,
// in every mode. The client must allow it too: SSE and long-poll are
// gzip-encoded only when the request's Accept-Encoding allows gzip
// (gzip or x-gzip, or "*", with a non-zero q; gzip;q=0 refuses even
// where "*" allows), WebSocket only when the client offers
// permessage-deflate. A client that asks but does not allow it gets a
// plain answer, never an error. Browsers allow both, so a page asks with
// new EventSource("/v1/subscribe?channel=A&compress=1") and needs no
// code to decode.
//
// A compressed SSE stream has Content-Encoding: gzip and Vary:
// Accept-Encoding; its body is one gzip member that lasts as long as the
// stream. Every write (the retry: line and padding, history, each live
// event, each heartbeat) is compressed on its own and ends on a byte
// boundary (a sync flush), so the client decodes each event as soon as
// it arrives: compression adds no latency. The disconnect event, the last
// write, ends the member with its checksum. Each write is compressed
// against the last 2 KiB the stream sent (stateless deflate with a
// dictionary, github.com/klauspost/compress), so a dashboard update that
// repeats most of the previous one costs a few dozen bytes, and the
// stream keeps those 2 KiB and no compressor between writes. padding= is
// compressed too, so it no longer pushes bytes through a proxy that
// buffers; such a proxy is better told not to (X-Accel-Buffering: no is
// sent) than padded.
//
// A compressed long-poll answer is gzip-encoded whole, with
// Content-Encoding: gzip, Vary: Accept-Encoding and the Content-Length of
// the encoded body; it keeps nothing between polls. Error answers are
// never compressed.
//
// A compressed WebSocket connection keeps no compression state while
// idle (no context takeover): each message is compressed once per
// publication for all compressed subscribers, with pooled compressors
// (see WebSocket).
//
// What it costs, measured on the dashboard load (a 1 KiB JSON
// state of 48 numbers, two of which change at each of 20 updates a
// second), on a 2-core machine shared with other work, as ranges over
// runs at a load average of 1.4 to 1.8:
//
//	                                     plain          compressed
//	SSE: bytes per update on the wire    948            45
//	SSE: edge CPU per delivery           0.10–0.15 µs   8–14 µs
//	SSE: edge allocations per delivery   1, 24 B        2, 3 KiB (garbage at once)
//	long-poll: bytes per answer          1,303          667
//	long-poll: edge CPU per answer       1.5–1.9 µs     11–13 µs
//	heap per idle SSE stream             1.8 KiB        3.8–4.0 KiB
//	heap per idle WebSocket              15–16 KiB      17–19 KiB (both with the test's gorilla client)
//
//	go test ./transports -run '^$' -bench 'SSEDelivery|PollDelivery|IdleHeap|CompressorChoice'
//
// Under a load average of 5 to 15 the compressed CPU figures reach 35 µs
// (plain: 0.2 and 3.7 µs). CPU is the edge's own work per delivery to one
// subscriber: the compression, per connection (a message to N compressed
// SSE subscribers is compressed N times; on WebSocket, once). The idle
// heap counts 1,000 connections opened against a test server, each past
// one update from history: a compressed SSE stream keeps about 2 KiB
// more (its dictionary); a compressed WebSocket 2–3 KiB more, server and
// test client together.
//
// For comparison (BenchmarkCompressorChoice), a compress/flate or
// klauspost gzip writer kept per stream compresses the same updates to
// 40–52 bytes but holds 0.8–1.2 MB per connection whatever its level;
// stateless deflate without a dictionary holds nothing but sends 362
// bytes per update. A 2 KiB dictionary gets the writer's ratio at 1/400
// of its memory. The heap of compressed connections is so bounded by
// --max-conns × 2.5 KiB (250 MB at the default 100,000).
//
// On the wire, with edge-bench's dashboard payload (20 subscribers, 20
// updates a second for 15 s, --compress against plain), a subscriber
// receives per hour:
//
//	SSE         72.2 MiB plain   4.9 MiB compressed
//	long-poll   99.4 MiB        52.9 MiB   (each answer compressed alone)
//	WebSocket   82.5 MiB        33.2 MiB   (each message compressed alone: no context takeover)
//
// When to enable it: for subscribers on metered or slow links (phones,
// remote dashboards) of channels whose messages resemble each other — JSON
// states, repeated field names — best on SSE, where it cuts the bytes some
// 15× for 2.5 KiB of memory per stream and 8–14 µs of CPU per delivery (2×
// to 2.5× on long-poll and WebSocket, which compress each answer or
// message alone). Leave it off (request, and no compress=1) for large
// fan-outs on a local network, for small or already compressed payloads (a
// few bytes of JSON, images, ciphertext), and where CPU matters more than
// bytes: SSE and long-poll compress per connection, so a message to
// 100,000 compressed SSE subscribers costs about a second of CPU (a
// WebSocket message is compressed once for all). always suits an edge
// whose subscribers are mostly such clients; request lets each page
// decide.
//
// # History
//
// GET /v1/history?channel=A[&since=CURSOR][&limit=N] answers
//
//	{"channel":"A","messages":[…],"cursor":"…","gap":false,"more":false}
//
// oldest first; limit is 1 to 1000 (default 100); page on with
// since=<cursor> while more is true. It needs the rights of subscribing to
// the channel: the same token sources, 401/403, and --anonymous channels
// without a token.
//
// # Presence
//
// For the channels matching --presence, the edge keeps who subscribes,
// fleet-wide. Every SSE and WebSocket subscription of such a channel is a
// member from its subscribe until it ends (unsubscribe, the connection
// closing, a slow-consumer disconnect, a drain):
//
//	{"conn":"host-3f9a1c-42","sub":"alice","info":"{\"name\":\"Alice\"}","node":"host-3f9a1c"}
//
// conn is the connection's id, unique in the fleet (its node's
// --node-name, "-" and a number); a connection subscribed to several
// presence channels is a member of each, under one conn. sub is the sub
// claim of the connection's token ("" without one); info is the
// subscribe request's info= ("" without), whatever the client wants
// others to see of it (a display name, a JSON object), validated but not
// interpreted; node is the node it is on. Every field is always present.
// With --redis a member lives in Redis, refreshed by its node, so the
// members of a node that dies vanish within 15 s (and their leaves are
// announced).
//
// A long-poll is not connected between its polls, and a member per poll
// would join and leave at every answer; so a long-poll client is a member
// by a token it keeps. The answer to a poll of a presence channel carries
// "member":"<token>" (128 random bits in hex, fresh for a poll without
// member=, else the one sent); the polls that send it back as member= are
// one member, whose conn is "poll-" and 20 hex digits of a SHA-256 of the
// token and the sub claim: every node derives the same, and GET
// /v1/presence, which anyone with the channel's rights may read, never
// shows the token, so nobody can poll as the member from the listing (or
// make it leave). A poll without member= is no member (a client that
// would not send the token back would otherwise make a new member at
// every poll). The node serving a poll joins the member (replacing its
// entry, unannounced, if it is there: polls need no sticky sessions) and
// keeps it while the poll is held and for 10 s after the answer
// (transports.Config.PollMemberGrace), so that the next poll, on any
// node, finds it listed; a channel the next poll no longer names is left
// at once, and when no poll comes within the 10 s the node announces the
// leave. A node leaves only a member whose entry it still owns, so the
// node a poll moved away from removes nothing. A node keeps at most
// --max-conns long-poll members; past that, a poll is no member (counted
// with the presence failures). Keep the token per subscription (client.js
// does); a token that leaks (in a proxy's log of URLs) lets its holder
// poll as the member, with the same sub claim.
//
// GET /v1/presence?channel=A answers
//
//	{"channel":"A","count":2,"members":[{…},{…}],"truncated":false}
//
// count is exact; members lists at most --presence-max-members (default
// 1000) of them, in no particular order, and truncated says some were left
// out. Answers are Cache-Control: no-store, with CORS as history. It needs
// the rights of subscribing to the channel (401 and 403 as history); a
// bad channel is 400 bad_channel; a channel that keeps no presence is 404
// presence_off, whose message names --presence.
//
// Subscribers that ask hear joins and leaves: presence=1 on the subscribe
// URL (every transport; for WebSocket it is the default of the
// connection's subscribe ops), or "presence":true in a WebSocket
// subscribe op. presence=1 on a channel that keeps no presence is no
// error: that channel just sends none, so one client option fits a
// connection to channels of both kinds. A join or leave is not history:
// it has no id, moves no cursor and is never replayed on resume.
//
//	SSE        event: join (or leave), data: {"channel":"A","member":{…}}, no id: line, so
//	           EventSource keeps the last message's id as lastEventId; the same with
//	           several channels
//	WebSocket  {"channel":"A","event":"join","member":{…}}: no type, no id, no data; it may
//	           share an array frame with messages
//	long-poll  "presence":[{"channel":"A","event":"leave","member":{…}}] beside "messages"
//	           (left out when empty); one wakes a held poll as a message does (its
//	           own join, too, at its first poll with member=). What happens while
//	           no poll is held is not kept: GET /v1/presence is the truth
//
// A subscriber may hear its own join (it usually does, shortly after its
// subscribe). Joins and leaves count against a connection's queue
// (--queue-bytes) as messages do: on a channel of thousands of members
// where every member asks for presence=1, a reconnect storm sends each of
// them thousands of events, which a slow client may not keep up with; ask
// for events where channels are small (rooms, documents), and read GET
// /v1/presence for large ones. Joins and leaves are best effort: on Redis one announced
// while a node's relay reconnects is missed. Clients that must be exact
// read GET /v1/presence (after a reconnect, say) and apply the events
// heard since.
//
// # Conflation
//
// A subscriber that wants the state of a channel rather than each of its
// changes (a dashboard, a phone paying for each radio wake-up) asks for
// conflate=DURATION on the subscribe URL (every transport: a plain
// EventSource and curl too; Go duration syntax, 50ms to 60s; 0 or absent
// for none; anything else, or the parameter given twice, is 400
// bad_request), or "conflate":"1s" in a WebSocket subscribe op (an op
// without it conflates as the URL's conflate= says; "0" for none). It
// then gets, per
// window, only the newest message of each conflation key: the publish's
// key= (an instrument, a widget id); messages without one share the
// channel's key.
//
// WebSocket and SSE: a message that arrives while no window is open is
// sent at once and opens a window of the duration; the messages arriving
// within it are held, each replacing the held one of its key, and sent
// together in id order (one wake-up) when the window ends, which opens the
// next window if any were held. Long-poll: once a poll has something to
// answer it collects for the duration (as linger=, which it replaces when
// shorter; at most timeout=), and answers the newest of each key. Catch-up
// on a resume is conflated too: the newest of each key within each history
// page (500 messages), after the gap signal when there is one. Joins and
// leaves (presence) are never conflated.
//
// What a conflated subscriber can rely on: every message it gets has its
// real stored id, in increasing order; the newest message of each key is
// delivered within one window of its arrival, and a key gets at most one
// delivery per window; its cursor (an SSE id, a WebSocket message's id, a
// poll's cursor) is always exact, so a resume from it without conflate=
// gets every message it skipped from history (while retained). What it
// cannot rely on: seeing every message, or the messages between two it
// got; a window holds at most 256 keys (a message of one more ends the
// window at once), and held messages count against --queue-bytes like
// queued ones, so a slow reader is still closed as a slow consumer. The
// edge encodes nothing per subscriber: held messages are the shared frames
// of the fan-out, with one timer per conflating subscription. A
// conflating subscription gets full messages, never deltas.
//
// # Publishing
//
// POST /v1/publish?channel=A[&event=TYPE] with the payload as the body (at
// most --max-payload bytes) answers 200 {"channel":"A","id":"<id>"} once
// the message is stored. Credentials come from Authorization: Bearer only:
// a publish key (compared in constant time) or a token with a publish
// claim. A key or token in the edge_token cookie or in access_token= does
// not count (a cookie would let another site's form publish as its
// visitor, and a URL leaks), and an Authorization header of another scheme
// (Basic) is a 401. Without them, publishing works from loopback while no
// publish key is set (or from anywhere with --insecure-publish), and only
// when Host names the edge as localhost, *.localhost, a loopback address
// (127.0.0.0/8, [::1]) or its --domain, whatever --listen is: a page that
// DNS rebinding pointed at 127.0.0.1 sends its own name and gets 403. The
// same holds for WebSocket publish ops. A publish that a browser sends for
// a page of another site is refused with 403 forbidden: an Origin that is
// neither the edge's own nor in --cors-origin, or Sec-Fetch-Site:
// cross-site without one. A form or a text/plain fetch needs no CORS
// preflight, so without this any page open in a browser on the edge's host
// could publish through loopback; backends (curl, server code) send no
// Origin and are not affected. A body is read
// as it arrives (4 KiB, doubled as it fills), never allocated ahead from
// Content-Length; a body that brings no byte for --body-timeout is a 408
// and the connection is closed. The edge never resends a publish: a 503
// after Redis ran the function may mean the message was stored.
//
// Idempotency-Key: KEY (1–128 bytes of visible ASCII, one header) makes a
// publish safe to retry: a publish of the same channel with the same key
// within --idempotency-window (default 10 minutes) answers the first
// one's id with Idempotent-Replayed: true, and stores and relays nothing;
// the same key with another payload or event is a 400 bad_request. The
// store checks and notes the key with the message in one step (the
// embedded store under the channel's lock, Redis in its function), so two
// racing publishes with one key store one message, on any node of a
// fleet. A replayed publish is not counted in the published metric. The
// embedded store remembers at most 100,000 keys, the oldest forgotten
// first; on Redis a key is a Redis key in its channel's slot that expires
// with the window.
//
// key=KEY (1–128 bytes of visible ASCII) gives the message a conflation
// key: what it is the state of, an instrument or a widget. A conflating
// subscriber gets the latest message of each key, and deltas are taken
// between messages of one key; without key= the channel is the key. The
// key is kept with the message (in history, in the Redis stream entry as
// the field k, on the relay as the attribute k=KEY) and every message
// object carries it as "key" after "event" (absent when the message has
// none).
//
// # The publish lane
//
// A publishing backend sends the same small request again and again on a
// keep-alive connection, and net/http's machinery around each request (a
// request parsed into fresh maps, a goroutine started to watch the
// connection while the handler reads the body, its deadlines, a chunked
// writer, sorted headers) cost more than the publish itself: about 20 µs
// of edge CPU per publish, of which the handler is 2. So on plain HTTP
// (no TLS), on Linux, the listener looks at the first bytes of every new
// connection without taking them (recv with MSG_PEEK): a connection that
// starts with "POST /v1/publish" is served by the publish lane, every
// other one goes to net/http untouched. The lane reads each request head
// with a strict parser of plain HTTP/1.1 (hijack.ParseRequestHead: the
// request line, fields of plain characters, one Host, at most one
// Content-Length, no Transfer-Encoding, Expect, Upgrade or folded lines,
// CRLF endings, a head within 4 KiB) and serves it with the server's own
// handler (the same request ids, CORS, limits, credentials, validation,
// rate limits, tracing and answers), building the http.Request itself and
// writing the answer in one write. At the first request that is anything
// else (another path, chunked, HTTP/1.0, a large head, garbage), the
// connection goes to net/http with the bytes the lane read of it replayed
// first, and net/http serves it from then on, answering what it refuses
// as it always does. A request the parser accepts, net/http reads the
// same way (FuzzRequestHead), and every publish answer is the one
// net/http's path gives, status, headers and body (TestLaneAnswersAsNetHTTP).
// The lane keeps net/http's timeouts: 10 s for a head, 2 min idle
// between requests (both up to a quarter later, as it re-arms deadlines
// coarsely), --body-timeout for a body, 10 s for an answer to be taken. On
// drain it closes the connections waiting for a request and answers the
// one it is reading. A publish so costs about 12 µs of edge CPU with 64
// keep-alive publishers (go doc ./cmd/edge-bench). Over TLS and HTTP/2
// net/http serves publishes as before.
//
// # Batch publishing
//
// POST /v1/publish/batch publishes many messages in one request, for
// backends that publish in bulk. The body is one JSON object:
//
//	{"messages":[
//	  {"channel":"prices","event":"tick","data":"{\"price\":1}"},
//	  {"channel":"files","data_base64":"AAEC/w=="}
//	]}
//
// Each message has a channel, an optional event, an optional key (its
// conflation key, as key= of POST /v1/publish) and exactly one of data
// (the payload as a JSON string: text) and data_base64 (any bytes, in
// standard base64 with padding). The answer is 200 with one result per
// message, in the order of the request:
//
//	{"results":[
//	  {"channel":"prices","id":"1732270000000-3"},
//	  {"channel":"files","error":{"code":"forbidden","message":"…"}}
//	]}
//
// Each message is checked, stored and relayed as POST /v1/publish would
// check, store and relay it: the same channel and event rules, the same
// publish right per channel (the request's Authorization: Bearer key or
// token, or loopback), one --publish-rate token per message, --max-payload
// per decoded payload, and the same error object, which a result carries
// instead of an id (plus bad_request for a message without exactly one of
// data and data_base64, or with malformed base64). The messages of one
// channel are stored together, with consecutive ids in the order of the
// request and nothing of another publish between them, and relayed in
// that order — or none of them is, each result then carrying the
// channel's error (503 unavailable when the store failed). Channels
// succeed or fail on their own. On Redis every channel's messages are one
// FCALL edge_publish_batch (see package resume), and a batch is one round
// trip to each master that stores one of its channels.
//
// The request as a whole is refused, and nothing published, when it is
// not such a body: 400 bad_request for malformed JSON, an unknown field,
// another value after the object or no messages; 413 payload_too_large
// for more than --max-batch messages (default 1000) or a body over
// --max-batch × (--max-payload in base64 + 1 KiB). A token that does not
// verify is a 401, a cross-site request a 403, as for a single publish.
// The body is read as a single publish's is (grown as it arrives, cut
// after --body-timeout without a byte).
//
// # Errors
//
// Every error is {"error":{"code":"…","message":"…"}} with its HTTP status:
//
//	400            bad_request, bad_channel, bad_event, bad_cursor, too_many_channels
//	401            unauthorized (missing, invalid or expired credentials)
//	403            forbidden
//	404            not_found, presence_off (GET /v1/presence of a channel that keeps none)
//	405            method_not_allowed
//	408            request_timeout (a publish body that stopped coming for --body-timeout; the connection is closed)
//	413            payload_too_large
//	417, 501, 505  bad_request (an Expect other than 100-continue, an unknown Transfer-Encoding,
//	               an HTTP version other than 1.x and 2)
//	429            rate_limited, too_many_connections (with Retry-After)
//	431            headers_too_large (request line and headers over 16 KiB)
//	503            unavailable, shutting_down
//
// Messages never carry internals: a Redis failure says which operation
// failed, not where Redis is. Requests that Go's net/http refuses before
// the edge sees them (headers over the limit, a malformed request line,
// header or Content-Length, two different Content-Lengths, no Host) get
// the same JSON error, with the connection closed after it. Over TLS only
// plain HTTP sent to the TLS port is rewritten so (the rest stays
// net/http's plain text there, as the edge sees encrypted bytes below
// TLS); HTTP/2 answers headers over its limit with net/http's own 431 (an
// HTML body) and refuses malformed frames with HTTP/2 error codes.
//
// Disconnect codes (WebSocket close code, SSE disconnect event, long-poll
// disconnect field): 1012 (WebSocket's "service restart") and 4000–4499
// mean "reconnect with your cursor", 4500–4999 "do not retry the same
// request":
//
//	1009  message_too_big  a WebSocket client message over 2×--max-payload + 4 KiB, on the wire
//	                       or inflated; reconnect without resending it
//	1012  shutdown         the node is draining; reconnect (to any node) after retry_ms
//	4002  slow_consumer    the client fell more than --queue-bytes behind; resume from history
//	4003  server_error     the store failed; reconnect
//	4004  resync           the node's relay from Redis lost messages it cannot recover;
//	                       resume with your cursor to get the gap
//	4005  token_expired    the connection's token expired; reconnect with a fresh one
//	4500  bad_request      reserved for requests that will not succeed on retry
//
// # Limits
//
// Every limit has a clear answer:
//
//	--max-conns, --max-conns-per-ip   100000, 1000  429 too_many_connections (Retry-After: 5) and close
//	                                                (plain HTTP; over TLS just close)
//	--subscribe-rate N                20/s          per connection: a rate_limited error frame for WebSocket
//	                                                ops, 429 with Retry-After for new SSE and WebSocket
//	                                                streams (HTTP/2 multiplexes many); long-polls are paced
//	                                                by their messages and bounded by the connection limits
//	--resume-rate N                   2000/s        per node, from all clients: subscribes with a cursor
//	                                                (Last-Event-ID or since=; a long-poll's only as the first
//	                                                request on its connection), checked after auth and before
//	                                                any history read: 429 rate_limited with Retry-After
//	--publish-rate N                  no bound      HTTP publishes a second per key, token subject or
//	                                                anonymous IP: 429 with Retry-After
//	--client-publish-rate N           50/s          publishes per WebSocket: rate_limited error frame
//	--max-channels                    64            channels per connection: 400 too_many_channels
//	--max-payload                     64 KiB        413; WebSocket messages over 2× + 4 KiB (counted
//	                                                inflated too) close with 1009
//	--max-batch                       1000          messages per batch publish: 413
//	request line and headers          16 KiB        431 headers_too_large; over HTTP/2, net/http's own count
//	                                                (each name and value plus 32 bytes) stops at about 12 KiB
//	request headers sent slowly       10 s          the connection is closed (ReadHeaderTimeout)
//	--body-timeout                    30 s          408 request_timeout and close
//	cursors                           32 KiB        400 bad_cursor
//	--queue-bytes                     1 MiB         per connection: disconnect 4002 slow_consumer with the cursor
//	status page viewers               32            429
//	--presence-max-members            1000          members listed by one GET /v1/presence (at most
//	                                                10000); count stays exact
//	presence info=                    256 bytes     400 bad_request
//
// --resume-rate is there for a reconnect flood: when a node of a fleet
// dies, its subscribers all resume on the others at once, each with a
// history read. A node admits that many a second (a token bucket holding
// one second's worth) and refuses the rest before reading anything; their
// Retry-After is the whole seconds that the refusals so far need at the
// rate, plus 0–2 s at random, so that the refused come back spread over
// the following seconds rather than in lock-step. Fresh subscribes (no
// cursor), the next polls of a kept connection and sessions already
// connected are never counted; a normal node never comes near it. A
// browser cannot read the answer to a refused WebSocket handshake, so
// client.js takes a refused WebSocket for a broken path and tries SSE at
// once; that refusal's Retry-After is then the one it waits.
//
// Each connection's outgoing queue is bounded by --queue-bytes; a client
// that falls further behind is disconnected with its cursor and resumes
// from history. It never slows the publisher or other subscribers.
// Joining a channel buffers live messages under the same bound (overflow
// only means "read more history").
//
// # Auth
//
// A subscriber's token comes from Authorization: Bearer, access_token=
// (EventSource cannot set headers) or the edge_token cookie, and is never
// logged; see go doc ./edge/auth for the claims and algorithms. exp and
// nbf are checked with 30 s of leeway. No token, or a bad or expired one,
// is 401 unauthorized, whose message says which claim is wrong ("the aud
// claim names none of this edge's audiences"); a token that does not cover
// the channel is 403 forbidden. When a streaming connection's token
// expires, the edge ends it with 4005 token_expired (SSE disconnect event,
// WebSocket close); a WebSocket client can send a refresh op before that.
// Refused credentials are counted (auth_refusals in /healthz) and logged
// at most once a second with the reason, the client's address and the
// count since the last line.
//
// Browsers on other origins are refused unless --cors-origin lists them
// (* for any): the WebSocket Origin check, CORS for SSE, long-poll,
// history and publish, and the publish origin check above.
//
// # Browser client
//
// GET /v1/client.js serves the browser client (package client embeds it;
// its options are documented in client.d.ts, served at /v1/client.d.ts).
// What it does, in detail:
//
//   - It delivers from the start on what gets through every proxy, and
//     upgrades in the background. Without a remembered transport it
//     starts on long-polling, whose first poll answers at once with every
//     channel's start position, so the first message published after
//     subscribe() comes within a poll round trip. From then on it probes
//     WebSocket, then SSE, each given probeTimeout (3 s) to prove itself:
//     a WebSocket by its first frame, an SSE stream by its first event or
//     heartbeat (not its first bytes, which a buffering proxy may let
//     through). A probe that is refused, fails or times out is abandoned
//     and costs nothing afterwards; the first proven one takes over. The
//     probe subscribed from the cursor, both deliver until the old link
//     is closed, and everything at or before the last delivered id is
//     dropped, so the switch loses and repeats nothing. A probe waits
//     until every channel's position is known, so it never starts later
//     than the link it replaces. The edge's own errors are not mistaken
//     for broken paths: a 400 bad_channel closes the subscription
//     (onError), a 503 or 429 is retried later on the same transport.
//   - It remembers the transport it settled on (the best one, or the one
//     the better ones were just probed against) for the edge's origin in
//     localStorage for rememberFor (7 days; sessionStorage when
//     localStorage is refused), and the next page load starts on it
//     directly, without probing; a remembered transport that no longer
//     proves itself within probeTimeout sends the client to long-polling
//     and the probes. While on a worse transport it probes the better ones
//     again after upgradeAfter (60 s, doubling after each failed round),
//     and a link that stops working resumes on long-polling at once,
//     probing from there.
//   - sub.probes, and info.probes of every onStateChange, say which
//     transport is in use and why: the latest attempts (at most 10),
//     each {transport, outcome, ms} with outcome ok, timeout, refused
//     (status: the HTTP status) or failed (code: a WebSocket's close
//     code; browsers hide a refused upgrade's status, so it fails with
//     1006). Behind a buffering proxy, for example: poll ok, ws failed
//     1006, sse timeout. A switch of transport, and a failed background
//     probe, call onStateChange again in the same state.
//   - It keeps the last id per channel (and the start position the edge
//     reports before any message), resumes every reconnect and every
//     switch from it, and drops anything at or before it: onMessage sees
//     every message exactly once, in order per channel. sub.cursor is the
//     edge's cursor format, for since in a later subscribe or an
//     EventSource.
//   - Reconnects back off exponentially with full jitter (uniform in
//     [0, min(maxDelay, minDelay·2^attempt)), 1 s and 30 s; a connection
//     open for stableAfter, 30 s, resets it). When the edge says when to
//     come back — the retry_ms of a drain or slow-consumer disconnect
//     (already jittered by the edge, spread over 5 s on drain), or
//     Retry-After — the client waits exactly that. A disconnect with
//     reconnect:false (codes 4500–4999) closes the subscription.
//   - While the page is hidden (after hiddenDelay, 10 s; a page opened in
//     a background tab too) the connection is closed and the state is
//     paused; when it is visible again the client
//     resumes from its cursor at once. pauseWhenHidden: false keeps a
//     background dashboard connected, but quieter: once hidden for
//     hiddenDelay, a stream reconnects from its cursor asking for
//     hiddenHeartbeat (120 s), and each long-poll asks for
//     hiddenPollTimeout (60 s, the edge's default --poll-timeout-max);
//     visible again, a stream moves back to heartbeat the same way. An edge
//     that refuses the long value (narrower bounds), or a path cut before
//     a long heartbeat was due (a proxy's idle timeout, commonly 30–60 s),
//     makes that subscription keep the visible values: the defaults stay
//     safe behind such proxies. heartbeat (ms, default 25 s) asks for
//     rarer heartbeats, linger lets the edge collect a burst before
//     answering a long-poll, pollTimeout sets the hold.
//   - Network changes. offline closes the connection (state offline) and
//     nothing is tried until online; a failure seen while navigator.onLine
//     is false goes there too instead of into backoff. online reconnects
//     at once from the cursor, whatever the state: a pending backoff is
//     cancelled (not a delay the edge asked for: retry_ms, Retry-After),
//     and a connection that lived through the change is replaced, not
//     trusted. A page the browser freezes (Page Lifecycle freeze) closes
//     its connection (state paused) and reconnects from its cursor at
//     resume, or, hidden with pauseWhenHidden, once visible.
//   - An SSE stream silent for two heartbeats and 5 s is treated as dead
//     and reconnected; a long-poll without an answer well after its hold is
//     retried. A WebSocket silent for a heartbeat gets a ping op; without
//     an answer within another heartbeat and 5 s it is treated as dead (a
//     NAT that forgot it, a network switch) and reconnected from the
//     cursor. An older edge's error answer to the ping counts as an answer
//     too.
//   - presence: true asks for joins and leaves (onPresence, with channel,
//     event and member), and info is what the client says about itself
//     in presence (the info= of each subscribe).
//   - delta: true asks for deltas (see Deltas) on every transport. The
//     client keeps the last payload of each channel and key (at most
//     1,024), applies a patch with a Fossil decoder of its own that checks
//     the format's checksum, and hands onMessage the full message, as if
//     no delta had been used. A patch whose base it does not hold, or
//     whose checksum fails, never reaches the page: the client reconnects
//     from the cursor before it on the same transport (a long-poll's first
//     poll without deltas), which resends it in full, and counts it in
//     the state info's deltaRecoveries; after three such failures in a
//     row it stops asking for deltas.
//
// What an idle subscribed page costs the device, in wake-ups (its radio
// leaving idle: traffic closer than 5 s counts once) per idle hour with
// the defaults, as TestClientWireWhenIdle measures it from Chromium's
// network events with every timer 50 times shorter (EDGE_MEASURE=1 for
// the full table; events in brackets: WebSocket data frames either way,
// SSE chunks, long-poll requests and answers). A WebSocket's ping op and
// its pong are one wake-up, and the edge skips its own ping after
// answering one; pings and pongs below the page are not counted, so a
// WebSocket without the client's pings costs the same. Socket.IO's
// default 25 s ping interval costs 144.
//
//	transport  visible     hidden, paused   hidden, connected      hidden, connected
//	                       (the default)    (pauseWhenHidden:      before hiddenHeartbeat
//	                                         false)
//	ws         144 (288)   0                31 (60)                143 (286)
//	sse        144 (144)   0                30 (30)                144 (144)
//	poll       137 (288)   0                59 (124)               142 (311)
//
// A paused page pays one reconnect when visible again, and a connected
// one reconnects each stream twice per hidden period (to the long
// heartbeat and back).
//
// The client receives SSE with fetch and a stream reader (so it sees
// heartbeats and the start position, which EventSource hides). States are
// connecting, open, reconnecting, paused, offline and closed.
//
// # Behind proxies
//
// SSE answers carry Cache-Control: no-cache, no-transform and
// X-Accel-Buffering: no, start with a retry: line and send heartbeat
// comments; padding= sends up to 8 KiB first for proxies that hold back the
// first kilobytes; long-poll holds default to 25 s, under the 30–60 s idle
// timeouts of common proxies and load balancers.
//
// # Tests
//
// The contract (the join, cursors, resume, gaps) is proven by one table,
// TestContract in contract_matrix_test.go: five properties (join-race: 300
// subscribe-then-publish races; resume-seam; gap; future-cursor;
// malformed-cursor) on every backend (memory, redis, redis-cluster,
// redis-sentinel) over every transport (ws-url, ws-op, sse, sse-multi,
// poll), named TestContract/<backend>/<transport>/<property>. Protocol
// behaviour is not done until the whole matrix passes, and a new backend
// or transport is a new row or column there, not a test of its own. Run
// one cell with go test -race -run 'TestContract/^redis$/^sse$' ./transports/:
// the names are regular expressions matched anywhere, so
// -run 'TestContract/redis/sse' runs the redis-cluster, redis-sentinel and
// sse-multi cells too. The whole matrix takes about a minute under -race
// on two cores.
//
// The other end-to-end tests start real servers on 127.0.0.1:0 and use
// real clients: net/http, r3labs/sse and gorilla/websocket, and headless
// Chromium driven with chromedp, a fresh profile per test (a page with
// nothing but new EventSource(…) resumes across an edge restart; the
// browser client gets its first message within 3 s of subscribe() behind
// test proxies that refuse, hang or buffer upgrades and streams or cut
// idle connections, and moves to the best transport exactly once; another
// site's form and text/plain posts, and a page under a rebound DNS name,
// are refused). EDGE_TTFM_RUNS=5 go test -run
// TestClientFirstMessageBehindProxies -v ./transports/ logs the real
// times to the first message behind each test proxy.
//
// Parsers and encoders have fuzz tests with seed corpora in their
// package's testdata/fuzz/, among them FuzzSSEEvent, FuzzMessageJSON,
// FuzzParseOp and FuzzQueryValue here,
// FuzzParseID and FuzzValidateChannel in edge, FuzzVerify and FuzzMatch in
// edge/auth, FuzzParseCursor, FuzzCursorRoundTrip and FuzzLiveMessage in
// resume:
//
//	go test -run=^$ -fuzz=^FuzzSSEEvent$ -fuzztime=1m ./transports/
//
// # Publish traces
//
// Each publish is a span "publish" (server kind; a child of the request's
// traceparent when there is one; attributes edge.source, edge.channel,
// edge.payload_bytes, edge.message_id) with the child "store" (the write
// to history) and, on the embedded store, "fanout" (edge.subscribers: the
// queues it reached) under store. Without an OTLP endpoint the tracer is a
// no-op and tracing costs nothing. Every HTTP answer carries X-Request-Id:
// the request's own when it is 1–64 characters of letters, digits and
// -_.: (a proxy's id carries through), otherwise a new one; log lines about
// a request carry it as request_id.
//
// A batch publish is one span "publish_batch" (attributes edge.source,
// edge.messages, edge.stored) with the child "store"; each stored message
// counts as a publish in edge.messages.published.
//
// In a fleet on Redis (single, Sentinel or Cluster) the trace continues on
// every node that delivers the message. The store writes the traceparent
// of the "store" span with the message into Redis (the publish function's
// option traceparent; see package resume), the relay hands it to each
// node's hub with the message, and each node with subscribers to the
// channel, the publishing node included, records its "fanout" as a span
// of consumer kind whose parent is that store span. One trace so shows
// publish → store on the node that took the publish, and one fanout per
// delivering node under store, each with its node's service.instance.id:
//
//	publish (node A, server)
//	└─ store (node A)
//	   ├─ fanout (node A, consumer)   edge.subscribers=12
//	   └─ fanout (node B, consumer)   edge.subscribers=40
//
// The fan-out is a child of store, not a linked span of a trace of its
// own: one publish reaches each node once, so a child per node is the
// tree trace viewers draw, and each fanout's start against store's
// shows how long the relay took to that node. Only a sampled publish carries its
// traceparent: an untraced or unsampled one costs Redis and the relay
// nothing more, and leaves no span on any node (each node's sampler,
// parent-based by default, follows the publish's decision). tracestate is
// not carried (the nodes' samplers do not read it). A message delivered
// from history (a resume, or a relay's fill after a reconnect) has no
// fanout span: the stream keeps no trace, as reading history is not the
// publish's delivery. A batch publish's messages carry the traceparent of
// its store span. Nodes of the release before this one relay the
// traceparent-carrying messages as any other (they ignore the attribute)
// and record no fanout span for them.
//
// # How a connection writes
//
// Every message is encoded once per wire format (edge.Frame caches the
// SSE bytes, the JSON object, the WebSocket frame and the prepared
// WebSocket message) and shared by all subscribers; the fan-out copies no
// payload per subscriber.
//
// A connection has no writer goroutine of its own. Its writes are
// serialised by a write turn, a mutex with a small state: whoever holds
// the turn owns the connection's output, and nobody else writes to it.
// When a message arrives, the hub queues it on every subscribed session
// and then wakes them together; the server hands the turns that were idle
// to writer goroutines in chunks of 16, so one wake of a writer serves
// several connections. A writer runs each turn of its chunk: it takes
// everything the connection has queued and writes it as one coalesced
// write. A Server's writers are shared by all its connections: one that
// finished waits for the next chunk (the one that waited least gets it,
// its stack warm) and ends after 20-40 ms without work (at most 4,096
// wait), so under load a burst reuses a stack already grown to the depth
// of a write instead of starting, and growing, a goroutine per burst;
// Run's drain stops them and waits for them. Every write is bounded by a
// deadline of 5 to 10 s: a stream moves its connection's write deadline
// only when the one set would come within 5 s, not on every write, and a
// write that times out closes its session as a slow consumer. The
// heartbeat timer takes the turn to write a heartbeat or ping, and
// whoever sees the client leave takes it to end the connection. The
// request handler holds the turn while it writes the start of a stream
// and its history, and the WebSocket reader holds it while it answers a
// client op or joins a channel (writing that channel's history), so
// history and live frames never interleave. An idle connection so costs
// no goroutine for writing.
//
// Under WebSocket fan-out (10,000 subscribers over 100 channels, 1,000
// msg/s of 128 B), the edge now spends about two thirds of its CPU in the
// kernel's write and loopback path, one write system call per delivery,
// as Nchan does. What it cut from the rest, each measured with perf: a
// goroutine started and grown per burst (9–14% of the edge's CPU), a
// write deadline set per write (6%), a writer woken per delivery (a
// select over three channels and the scheduler's park and wake, 10–12%),
// the latency histogram recorded per write (4%; it samples one write per
// chunk under fan-out, every write otherwise), and string compares of a
// frame's channel name (2%; the frames of a channel share one string),
// and the layers between a message and the write system call (8–12%).
// Those last are two: a WebSocket connection that negotiated no
// compression is written each message as a frame the edge encodes once
// (the same bytes for every subscriber: a server's frames are not
// masked), straight to its connection rather than through gorilla's
// writer, whose lock, frame lookup and deadline it skipped; and on Linux
// an SSE or WebSocket stream writes to its socket with a write system call
// of its own, going through Go's poller (its locks and readiness state on
// every write) only for what the socket did not take at once, which then
// waits for room within the write deadline as before. Both hold because
// every write to a stream's connection, and its close, is made holding the
// turn: gorilla's answers to a client's ping and close too (handlers that
// take the turn), so the socket's descriptor stays open and no frame is
// cut by another. WebSocket connections that negotiated
// permessage-deflate and TLS ones are written as before. A compressed SSE
// stream compresses each write into a buffer first and writes that the
// same way.
// What remains in the process is mostly touching each connection's
// memory: its turn, session, socket and WebSocket state.
//
// What each transport keeps while idle: no goroutine either, on Linux,
// for an HTTP/1 SSE stream or a WebSocket connection without TLS. Both are
// taken off net/http (hijacked) and parked with the server's idle
// watcher, one epoll instance of the edge's own with one goroutine for all
// connections (transports/internal/idle), which reports a connection once
// its socket is readable, its peer closed it or it was reset. For SSE that
// means the client left (an SSE client sends nothing after its request),
// and the stream ends at once. For WebSocket it means a frame arrived: the
// watcher starts a reader goroutine, which reads and answers what the
// client sent (pongs to the heartbeat pings, ops, a close) and parks the
// connection again, ending, once nothing is left buffered and no new frame
// began within 200 ms (at most a quarter of the heartbeat): a client that
// sends often keeps its reader, so a WebSocket publish op costs the same
// 15 µs of edge CPU as with a reader per connection, not 26 µs for a new
// goroutine and a watcher round trip each.
// A parked WebSocket has no reader waiting on a read deadline, so the
// heartbeat keeps that deadline: a client silent for two heartbeats and
// 10 s is dropped at that moment, parked or not. An idle connection so
// holds its session, timers, socket and, for WebSocket, gorilla's
// connection and a 320-byte read buffer: 3.3–4.6 KiB of RSS for SSE and
// 5.1–5.7 KiB for WebSocket at 15,000 connections, where a goroutine
// blocked in a read made it 6.3–7.0 and 7.9–8.9 KiB (go doc
// ./cmd/edge-bench). A connection that cannot be parked keeps one
// goroutine blocked reading it, as before: TLS (a TLS connection may hold decrypted bytes
// that its socket no longer shows), a recycled keep-alive connection with
// bytes still to replay, and every connection off Linux. A long-poll that
// has to wait is parked with no goroutine at all: its turn answers on the
// hijacked connection when a message arrives or a timer ends the hold or
// the linger, and hands the connection back to net/http, so the next poll
// reuses the keep-alive connection (a client that leaves while parked is
// noticed when the hold ends). Over HTTP/2 (h2c or TLS) SSE and long-poll
// wait in their handler goroutines as usual, and so does a long-poll sent
// with a body, which is never parked: its body could otherwise be read as
// the connection's next request.
//
// The workarounds below net/http and gorilla/websocket that make this
// possible (hand-written HTTP/1.1 answers on hijacked connections, the
// listener that takes answered long-poll connections back, the publish
// lane's request parser, the pong
// peeking that relies on gorilla reading through the edge's buffer) live
// in one internal package, transports/internal/hijack, each with a test
// that fails if the library behaviour it rests on changes.
package transports
