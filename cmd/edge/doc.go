// Command edge runs the edge real-time fan-out server: subscribers over
// WebSocket, Server-Sent Events or long-polling on one URL, publishing over
// HTTP or straight into Redis, and resume from a cursor with no gap and no
// duplicate. With no flags it serves on 127.0.0.1:8080 with the embedded
// in-memory store.
//
// Usage:
//
//	edge [flags]
//	go run ./cmd/edge [flags]
//	edge --help           every flag, what it does and its default
//	edge --print-config   the effective configuration as JSON, secrets masked
//
// This is the command's reference: every flag, the environment, the config
// file, signals, exit codes, TLS and the Redis fleet in detail. The
// README is the guide. The wire protocol is documented by
// go doc ./transports, the metrics by go doc ./transports/metrics, the
// OTEL_* variables by go doc ./transports/telemetry, tokens by
// go doc ./edge/auth, and the load tool and measured numbers by
// go doc ./cmd/edge-bench.
//
// # Settings
//
// Every flag is also an environment variable EDGE_<NAME>, the flag's name
// in upper case with dashes as underscores (--history-size is
// EDGE_HISTORY_SIZE), and a key of the JSON object in the file named by
// --config (or EDGE_CONFIG). A flag beats its variable, which beats the
// file, which beats the default. --redis also reads EDGE_REDIS_URL, the
// name Redis tooling commonly uses, when EDGE_REDIS is not set. Secrets
// belong in variables or the file: flags show in ps.
//
// Durations are Go durations (30s, 5m, 1h30m). Sizes are whole numbers of
// bytes. A repeatable flag takes several values by repeating it or by
// separating them with commas; a variable or file key gives them as one
// comma-separated string.
//
// The config file is one JSON object keyed by flag name, whose values are
// strings, numbers or booleans written as the flag takes them:
//
//	{"listen": "0.0.0.0:8080", "history-size": 5000, "history-ttl": "30m",
//	 "cors-origin": "https://app.example", "anonymous": "public:*,news"}
//
// An unknown key, a "config" or "print-config" key, an array, object or
// null value, and anything after the object are errors; a syntax error
// names its line. Every problem in the variables and the file is reported
// at once, naming the variable or key and the value; then the whole
// configuration is validated, each problem naming the flag and the fix.
//
// Exit codes: 0 after --help, --print-config or a clean drain; 2 for bad
// settings (flags, variables, the file, TLS files, token keys, OTEL_*
// variables, a bad Redis URL); 1 when the edge cannot listen or stops on
// an error.
//
// # Flags
//
// The store and the fleet:
//
//	--listen ADDR                   serve on ADDR, host:port (default 127.0.0.1:8080)
//	--redis URL[,URL…]              keep history in and relay through Redis (redis:// or rediss://, with /db);
//	                                several URLs: cluster nodes, or Sentinels with --redis-sentinel-master
//	                                (default none: the embedded store)
//	--redis-cluster                 --redis names Redis Cluster nodes (implied by several URLs without
//	                                --redis-sentinel-master)
//	--redis-sentinel-master NAME    --redis names Sentinels; use the master they know as NAME
//	--ingest PATTERN                store and relay plain Redis PUBLISH traffic on matching channels (e.g. news.*)
//
// History and messages:
//
//	--history-size N                messages retained per channel (default 1000)
//	--history-ttl DURATION          how long messages are retained; the embedded store forgets idle empty
//	                                channels after it (default 1h)
//	--history-memory BYTES          payload bytes the embedded store holds over all channels, trimming the
//	                                oldest (default 268435456, 256 MiB)
//	--idempotency-window DURATION   how long a publish's Idempotency-Key is remembered: a retry within it
//	                                returns the first id and stores nothing (default 10m)
//	--max-payload BYTES             largest payload, 413 above; at most 16 MiB (default 65536)
//	--max-batch N                   most messages in one batch publish (POST /v1/publish/batch), 413
//	                                above; at most 100000 (default 1000)
//	--max-channels N                channels per connection (default 64)
//	--queue-bytes BYTES             outgoing queue per connection before it is closed as a slow consumer;
//	                                at least twice --max-payload (default 1048576, 1 MiB)
//
// Transports:
//
//	--heartbeat DURATION            SSE heartbeat comments and WebSocket pings (default 25s)
//	--poll-timeout DURATION         long-poll hold without messages, at most --poll-timeout-max (default 25s)
//	--poll-timeout-max DURATION     largest timeout= a client may ask for; larger is a 400 (default 60s)
//	--poll-linger-max DURATION      largest linger= a client may ask for; larger is a 400 (default 5s)
//	--sse-retry DURATION            the SSE retry: field (default 2s)
//	--body-timeout DURATION         cut a request body (a publish) that brings no byte for this long, with
//	                                408 (default 30s)
//	--compress MODE                 compress subscribers' streams: request (a subscribe with compress=1),
//	                                always (unless compress=0) or never (compress=1 is ignored); gzip
//	                                for SSE and long-poll where Accept-Encoding allows it,
//	                                permessage-deflate for WebSocket where offered (default request;
//	                                costs: see go doc ./transports, "Compression")
//
// Publishing, tokens and browsers:
//
//	--publish-key KEY               a key that publishes anywhere with Authorization: Bearer KEY;
//	                                repeatable; prefer EDGE_PUBLISH_KEY (default none: anonymous
//	                                publishing from loopback only)
//	--insecure-publish              anyone may publish, from anywhere
//	--jwt-secret SECRET             verify HS256 tokens; prefer EDGE_JWT_SECRET
//	--jwt-public-key FILE           verify RS256, ES256 and EdDSA tokens with the PEM public keys in FILE;
//	                                repeatable
//	--jwks-url URL                  verify tokens with the keys at a JWKS URL, cached, refreshed every
//	                                5 minutes and at once for an unknown kid
//	--jwt-audience AUDIENCE         refuse tokens whose aud names none of the audiences; repeatable
//	                                (default aud is not read)
//	--jwt-issuer ISSUER             refuse tokens whose iss is not ISSUER (default iss is not read)
//	--anonymous PATTERN             with a token key: channels subscribed without a token (e.g. public:*);
//	                                repeatable
//	--client-publish PATTERN        channels WebSocket clients may publish to without a publish right;
//	                                repeatable
//	--cors-origin ORIGIN[,ORIGIN…]  page origins allowed to use the edge from a browser, * for any
//	                                (default same-origin only)
//
// Connections and rates:
//
//	--max-conns N                   connections in all (default 100000)
//	--max-conns-per-ip N            connections from one client IP (default 1000)
//	--subscribe-rate N              subscribes a second per connection (default 20)
//	--resume-rate N                 resuming subscribes (with a cursor) a second on this node, from all
//	                                clients: more get 429 with a spread Retry-After (default 2000)
//	--publish-rate N                HTTP publishes a second per key, token subject or anonymous IP
//	                                (default no bound)
//	--client-publish-rate N         publishes a second per WebSocket (default 50)
//
// Presence (see Presence below):
//
//	--presence PATTERN              channels that keep presence (e.g. room:*); repeatable (default none)
//	--presence-max-members N        members one GET /v1/presence lists, at most 10000; the count stays
//	                                exact (default 1000)
//	--node-name NAME                this node's name in presence, unique in the fleet: up to 64 bytes of
//	                                A-Z a-z 0-9 _ - . : @ / (default the host name, "-" and 6 random hex
//	                                digits, new at each start, so several nodes on one host differ)
//
// Shutdown:
//
//	--drain-timeout DURATION        bound on a graceful shutdown (default 10s)
//	--drain-delay DURATION          on SIGTERM, keep serving this long with /readyz answering 503 before
//	                                draining, for a load balancer to take the node out (default none)
//
// TLS (see TLS below):
//
//	--tls MODE                      off, self-signed, files or acme (default off)
//	--cert FILE, --key FILE         PEM certificate (leaf first, then intermediates) and key of --tls files,
//	                                reloaded when they change
//	--domain NAME                   names to obtain ACME certificates for; repeatable
//	--email ADDR                    the ACME account's contact, for expiry notices
//	--acme-ca URL                   ACME directory (default Let's Encrypt,
//	                                https://acme-v02.api.letsencrypt.org/directory)
//	--acme-ca-roots FILE            PEM roots for a private ACME CA's HTTPS (default the system's roots)
//	--acme-dir DIR                  ACME storage without --redis (default ~/.local/share/certmagic)
//	--http-listen ADDR              plain HTTP (e.g. :80) for HTTP-01 challenges, redirecting the rest to https
//	--on-demand                     certificates at the first handshake for approved names
//	--on-demand-allow PATTERN       approved names: a name, or *.suffix for one more label; repeatable
//	--on-demand-ask URL             approve names that GET URL?domain=NAME answers with 200
//	--on-demand-rate N              approvals a minute (default 10)
//	--hsts DURATION                 Strict-Transport-Security max-age on https, e.g. 8760h (default none)
//
// Logs and the command itself:
//
//	--log-format FORMAT             text or json (default text)
//	--log-level LEVEL               debug, info, warn or error (default info)
//	--config FILE                   the JSON settings file (flag or EDGE_CONFIG only)
//	--print-config                  print the effective configuration and exit (flag only)
//
// # Start-up
//
// Once it listens, the edge prints where to connect on stdout (the demo
// page, the status page, the browser client, and a curl command for each
// transport, publishing and history) and logs what it serves with: the
// store, the TLS mode, who may publish (loopback only, keys, tokens or
// anyone) and where telemetry goes.
//
// --print-config prints the effective setting of every flag as JSON and
// exits, with publish keys, the JWT secret and the credentials in URLs
// (--redis, --jwks-url, --acme-ca, --on-demand-ask: a userinfo password or
// token, and every query value) masked as ********.
//
// # Logs and signals
//
// Logs are structured (log/slog) on stderr. kill -USR1 PID switches a
// running edge to debug, kill -USR2 PID back to the configured level. Log
// lines about a request (refused credentials, a failed publish, a failed
// join) carry its X-Request-Id as request_id, and at debug level every
// request is logged with it. Tokens, secrets and keys are never logged.
//
// SIGTERM or SIGINT drains the edge:
//
//  1. with --drain-delay D, it first keeps serving for D while /readyz
//     answers 503, so a load balancer that checks readiness takes it out
//     before its listener closes (otherwise a connection still in the
//     kernel's accept queue at that moment is reset unanswered); then it
//     stops accepting connections;
//  2. it answers every waiting long-poll at once, with its cursor and a
//     disconnect (code 1012, retry_ms);
//  3. it tells WebSocket and SSE clients to reconnect, spread over up to
//     5 s (half of --drain-timeout): WebSocket gets a disconnect frame with
//     its cursor and retry_ms, then close code 1012 ("service restart");
//     SSE gets a retry: hint and an event: disconnect, then the stream
//     ends. Each hint is jittered (the --sse-retry delay plus up to 5 s),
//     so clients do not all come back at the same instant;
//  4. it lets publishes already in flight finish and be answered;
//  5. it exits 0 within --drain-timeout.
//
// Clients resume with their cursor on whichever node they reach, so a
// rolling restart of a fleet on Redis loses nothing: restart one node at a
// time, waiting for /readyz before the next. TestRollingRestart does
// exactly that with three nodes under steady publishing.
//
// # TLS
//
// --tls off serves plain HTTP, for running behind a load balancer that
// terminates TLS. Over TLS, SSE and long-polling use HTTP/2 and WebSocket
// uses HTTP/1.1; TLS 1.2 is the minimum, with forward-secret AEAD cipher
// suites only.
//
// --tls self-signed generates a certificate at start, for local
// development. --tls files serves --cert and --key, reloaded within 2 s
// when either file changes (a bad pair keeps the old one serving); a
// missing file or a key that does not belong to the certificate stops the
// start with a message naming the flag.
//
// --tls acme uses github.com/caddyserver/certmagic: the --domain names are
// obtained at start (TLS-ALPN-01 on the --listen port, HTTP-01 on
// --http-listen, which redirects everything else to https) and renewed
// automatically, a third of their lifetime before expiry, checked every
// 10 minutes. The edge serves meanwhile; a failure is logged with what to
// fix (an unreachable CA names --acme-ca; a failed validation says to
// point DNS here and open port 80 or 443) and retried with backoff.
// Accounts and certificates live in --acme-dir, or with --redis in Redis:
// certificates, ACME accounts, challenge tokens and the locks around
// orders, under keys {edge:certs}:… in one hash slot (so Redis Cluster
// works too). Ten nodes then obtain one certificate per name, not ten, and
// any node can answer the CA's challenge for an order another node placed.
//
// With --on-demand, a certificate is obtained at the first handshake for a
// name that --on-demand-allow lists (exact names or *.suffix, one more
// label) or that --on-demand-ask approves (GET URL?domain=NAME answers
// 200). Unknown names fail the handshake without any ACME order;
// --on-demand-rate bounds approvals a minute.
//
// # Presence
//
// For the channels matching --presence, every SSE or WebSocket
// subscription is a member from its subscribe until it ends (unsubscribe,
// close, slow-consumer disconnect, drain): its connection id (the node's
// --node-name, "-" and a number), its token's sub claim, the info= its
// client gave and its node. GET /v1/presence?channel=A lists them,
// fleet-wide, with their exact count; subscribers that add presence=1 hear
// joins and leaves. A long-poll hears them but is no member (it is not
// connected between polls). With --redis the members live in Redis,
// refreshed by their node: a node that dies takes its members with it
// within 15 s. Joins and leaves reach the store off the fan-out path; one
// that fails is logged and counted (edge_presence_failures_total), and
// the subscription works regardless. The wire is in go doc ./transports.
//
// # A fleet on Redis
//
// With --redis every node keeps history in Redis and relays live messages
// through it; the contract does not change, and any node resumes any
// cursor, so a load balancer needs no sticky sessions. Redis Cluster and
// Sentinel work through go-redis's universal client. On a cluster each
// channel's stream and live channel sit in the slot of {channel}, and each
// node keeps one relay connection per master (sharded pub/sub), whatever
// the number of channels. Run Redis with persistence (appendonly yes).
//
// Keys (the {CHANNEL} hash tag keeps a channel's keys in one cluster slot):
//
//	edge:{CHANNEL}        Stream: the channel's messages; entry id = message id = cursor; fields e
//	                      (event type) and d (payload); trimmed with MAXLEN ~ history-size and
//	                      MINID ~ now-history-ttl; expires after history-ttl without publishes
//	edge:{CHANNEL}:live   shard channel: SPUBLISH of "0id\nevent\npayload" to every node (the
//	                      leading 0 marks version 2; nodes also read the previous release's
//	                      "id\nevent\npayload", and a previous-release node reads version 2)
//	edge:{CHANNEL}:once:KEY  String "<id> <sha1(event\npayload)>": a publish's idempotency key;
//	                      expires after --idempotency-window (one per keyed publish)
//	edge:settings         Hash: the fleet's settings, fields history-size, history-ttl-ms and
//	                      max-payload; written by the first node to start (HSETNX)
//	edge:ingest:lease     the --ingest lease
//	{edge:certs}:…        TLS certificates, ACME accounts and locks
//
// The edge loads the edge_publish Redis Function at start. Backends
// publish with
//
//	FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]...    → the message id, e.g. "1732270000000-0"
//
// (EVENT "" for none). It checks the channel, event type and size as the
// HTTP API does, appends to the stream and relays the message in one
// atomic step, so a message is either stored and relayed or the caller
// gets an error. After the payload come optional named options, in any
// order, each at most once: history-size N, history-ttl-ms MS,
// max-payload BYTES, idempotency-key KEY and idempotency-ttl-ms MS
// (default 600000; later releases add more the same way). With
// idempotency-key (1–128 bytes of visible ASCII) the call answers an array
// {ID, REPLAYED}: {ID, 0} when it stored the message, the first call's
// {ID, 1} when the key was seen on this channel within the window
// (nothing stored or relayed), and the error "ERR edge: idempotency key
// reused for another message" when it was seen with another event or
// payload; without it the answer is the id, as before:
//
//	FCALL edge_publish 1 edge:{orders} "" paid idempotency-key order-42    → 1) "1796640000000-0" 2) (integer) 0
//
// On Redis Cluster declare the key's Redis key as a second key, as the
// nodes do:
//
//	FCALL edge_publish 2 edge:{orders} edge:{orders}:once:order-42 "" paid idempotency-key order-42
//
// While a resharding migrates the channel's slot, the stream and that key
// may sit on different masters; a call that declares both is refused with
// -TRYAGAIN until they are together (retry it), where one that declares
// only the stream could run where the key is missing and store the
// message a second time.
//
// key KEY (1–128 bytes of visible ASCII) gives the message a conflation
// key, as key= of POST /v1/publish does: conflating subscribers get the
// latest message of each key, deltas are taken per key:
//
//	FCALL edge_publish 1 edge:{prices} "" '{"bid":1.0842}' key EURUSD
//
// A name the function does not know is an error, so no caller believes an
// option took effect that the loaded function ignores. The function's text is the
// same on every node: no node's flags are built into it.
//
// Several messages of one channel go in one call, stored together with
// consecutive ids or not at all (each checked before any is stored):
//
//	FCALL edge_publish_batch 1 edge:{CHANNEL} COUNT EVENT PAYLOAD ... [NAME VALUE]...    → the ids, in order
//
// which is what POST /v1/publish/batch sends, one call per channel, all
// of a batch's calls pipelined. edge_publish_batch takes no
// idempotency key; instead of key it takes keys, the COUNT messages'
// conflation keys separated by newlines, each empty (none) or a key.
//
// Fleet settings. --history-size, --history-ttl and --max-payload govern
// streams every node shares, so the fleet keeps them in the hash
// edge:settings. At start a node writes each field that is missing there
// (so the first node to start sets them), reads all three, and passes them
// as options on every publish. A node whose flags disagree logs an error
// naming both values and the fix, and follows the fleet: one mistyped flag
// never re-trims the whole fleet's history. A call without options reads
// edge:settings on a single Redis and on Sentinel; on Redis Cluster a
// function may touch only keys in its declared key's slot, so there it
// gets the defaults (1000 messages, 1h, 64 KiB), and when the fleet's
// settings differ each node logs at start the options backends should
// append. To change the fleet's settings on purpose:
//
//	redis-cli HSET edge:settings history-size 5000
//	# then roll the nodes with --history-size 5000; each follows the key from its start
//
// Rolling upgrade from the previous release: old and new nodes relay each
// other's messages (see the :live payload above). A node whose call is
// refused with "ERR edge: usage" or finds no function loads its own and
// resends (nothing was stored), so an old node restarting mid-upgrade and
// loading its function back does not stop the new ones. Old nodes'
// publishes carry no options and so use edge:settings (the defaults on a
// Cluster) until they are upgraded.
//
// --ingest PATTERN picks up plain PUBLISH traffic on matching channels for
// publishers that cannot change. Every node pattern-subscribes; the one
// holding the Redis lease (renewed every 2 s, 6 s long) stores each
// message through edge_publish, so it gets an id, history and resume like
// any other. Plain PUBLISH is fire-and-forget: a message published while
// no node holds the lease (up to 6 s after the holder dies) or while the
// holder's connection is down is lost, and storing costs one more round
// trip.
//
// What is guaranteed:
//
//   - Every message acknowledged by POST /v1/publish or FCALL is in the
//     stream and is delivered to every live subscriber on every node
//     exactly once, in id order per channel.
//   - Each node holds one subscriber connection to Redis (one per master
//     on a cluster) and subscribes only the channels that have local
//     subscribers (reference-counted); a subscription is confirmed before
//     a joining client reads history, so the seam stays exact.
//   - When the node's subscriber connection drops (Redis restart,
//     network), it reconnects with backoff and fills every watched channel
//     from its stream after the last id it delivered before going live
//     again: subscribers stay connected and miss nothing Redis stored.
//   - While Redis is unreachable, publishing answers 503 unavailable,
//     /readyz answers 503, and nothing is acknowledged that was not
//     stored. The converse does not hold: when the connection drops after
//     Redis ran the function, the publisher gets a 503 for a message that
//     was stored. The edge never resends a publish itself (that could
//     store it twice); a publisher that retries after a 503 may deliver
//     the message twice. Concurrent publishes to one Redis (or one cluster
//     master) go out pipelined, each still its own atomic FCALL.
//   - A resume that cannot be proven complete gets the gap signal: a
//     cursor below the stream's max-deleted-entry-id (trimmed), or a
//     cursor the stream never held (the stream expired, Redis was flushed,
//     or a failover lost writes).
//   - On a cluster a node follows a failover (CLUSTER FAILOVER, or a
//     master killed and its replica elected) and a resharding (redis-cli
//     --cluster reshard): a master that lost a channel's slot (it sends
//     the relay sunsubscribe) or died (every reconnect fails) makes the
//     node reload the cluster's layout and relay the channel from its new
//     master, filled from the stream after the last id it delivered.
//     Messages published while the slot is half migrated go to the new
//     master (-ASK), where the node does not listen yet; the fill
//     delivers them, in order, once. A failed publish reloads the layout
//     too, so publishing resumes as soon as the replica has taken over.
//   - A failover to a replica that lacked acknowledged messages gives the
//     affected subscribers an explicit gap, never a silent hole: a node
//     whose fill finds messages it relayed gone closes the channel's
//     subscribers (4004 resync) and records the loss in the stream
//     (XSETID MAXDELETEDID, the id just after the newest it delivered), so
//     that every cursor up to it, also that of a client that was away
//     during the failover and resumes later from before the loss, gets
//     the gap, and the history after the gap starts after the loss.
//
// What is not (yet):
//
//   - A Redis restart without persistence loses history, which resumes
//     then report as gaps.
//   - If the stream was trimmed past a live node's last delivered id during
//     an outage (or lost in a failover), the fill cannot recover those
//     messages: the node closes that channel's subscribers with 4004
//     resync, and their resume shows the gap.
//   - When a node's relay reconnects but cannot read a channel's stream
//     (Redis refusing the read), it holds that channel's live messages
//     rather than skip the missed ones, and tries again on the channel's
//     next message: a quiet channel's last message can wait that long.
//   - A failover that loses messages is recorded only by a node that
//     relayed the channel at the time (one with local subscribers). When
//     no node did, a client that resumes from a cursor older than the loss
//     which the new master still holds sees no gap: the lost messages are
//     a silent hole for it. And a client that was away across a lossy
//     failover also skips, behind its gap signal, the messages between its
//     cursor and the loss that the new master kept (a page's gap comes
//     before its messages).
//   - While a channel's slot is half migrated, a publish with an
//     idempotency key is refused (503, -TRYAGAIN from Redis) until its key
//     and the stream are on one master; retrying it with the key is safe.
//   - --ingest loses plain PUBLISH messages while no node holds the lease.
//
// Faults are proven on real processes: each test runs edge binaries on
// real redis-server processes while a publisher publishes steadily and a
// WebSocket, an SSE and a long-poll subscriber follow every channel,
// moving to another node with their cursor whenever a connection ends. A
// checker proves that every acknowledged publish reached every subscriber
// exactly once and in order, or behind an explicit gap signal: never a
// silent hole, a duplicate or a reordering; a publish that failed with a
// 503 arrives at most once. The faults: Redis killed and restarted from
// its AOF (exact history, no gap), Redis killed without persistence (a
// gap for every subscriber); on a 3-master cluster with a replica each, a
// CLUSTER FAILOVER, a master killed (gaps allowed), a resharding that
// moves a channel's slot to another master, half migrated for a while,
// and back (exact history, no gap), and a failover to a replica that was
// frozen while acknowledged messages were published (a gap for every
// subscriber of the channel, at the loss, also for those that were away
// during it; none for the channel on another master); and an edge node
// killed (exact history, no gap).
//
//	TestFaultRedisKilledAOF            Redis killed (kill -9), restarted from its AOF (appendfsync always):
//	                                   every message exactly once, no gap; WebSocket and SSE stay connected
//	                                   while the nodes refill from the streams
//	TestFaultRedisKilledNoPersistence  Redis killed, restarted empty: a 4004 resync disconnect, the gap
//	                                   signal on resume, then every new message exactly once
//	TestFaultClusterFailover           cluster master handed to its replica (CLUSTER FAILOVER): exactly once
//	TestFaultClusterMasterKilled       cluster master killed, its replica takes over: exactly once, or a gap
//	                                   for what the replica had not received
//	TestFaultNodeKilled                one of three edge nodes killed: connections reset, resumed on another
//	                                   node, exactly once, no gap
//	TestRollingRestart                 SIGTERM one node at a time: exactly once, no gap
//
// TestHostileProcess attacks real edge processes, one class of attack per
// subtest (decompression bombs, oversized frames, deeply nested JSON,
// header floods, slowloris, cross-site publishing, DNS rebinding,
// credentials in the wrong place, cursor abuse, stalled bodies, history
// without a token), checking the JSON error or close code, that a
// well-behaved subscriber on the same edge keeps receiving, and that the
// edge's peak RSS stays under 300 MiB.
//
// # Telemetry
//
// GET /metrics always serves Prometheus metrics. The standard OTEL_*
// variables also push metrics, and a trace of every publish, to an OTLP
// collector:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 edge   # http/protobuf
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc edge
//
// The start-up log says where telemetry goes; a bad value stops the edge
// at start with the variable named; header values (API keys) are never
// logged. go doc ./transports/telemetry lists every variable.
//
// # Building
//
// Release builds: go build -tags grpcnotrace -o edge ./cmd/edge. The OTLP
// exporters bring in gRPC, whose default build links a tracing page
// through html/template and so stops the linker from dropping unused
// methods: the binary is 41 MB without the tag and 28 MB with it, with the
// same behaviour.
package main
