// Command edge-bench is the load tool of the edge: it opens many
// subscribers against a running edge, publishes at a fixed rate (or as
// fast as the server answers) with
// payloads that carry a sequence number and their send time, and reports
// what arrived — delivered messages/s, publish→deliver latency, lost and
// duplicated messages, the connection ramp, and (given the edge's pid) the
// edge's memory per connection and CPU per million deliveries. Its baseline
// mode measures a plain TCP fan-out on the same machine, so edge results can
// be read as a fraction of what loopback can do.
//
// Usage:
//
//	edge-bench run [flags]       load a running edge (or Nchan, --target nchan; or Centrifugo, --target centrifugo)
//	edge-bench baseline [flags]  plain TCP fan-out in this process
//
// # run
//
//	edge-bench run --url http://127.0.0.1:8080[,http://127.0.0.1:8081,...] --transport ws|sse|poll|mix \
//	    --subs N --channels C --rate R|max --size BYTES --duration D \
//	    [--target edge|nchan|centrifugo] [--centrifugo-api-key edge-bench] \
//	    [--ramp-batch 500] [--publish http|redis --redis redis://127.0.0.1:6379] \
//	    [--publishers 16] [--batch 1] [--drain 5s] [--pid "PID …"] \
//	    [--sources 127.0.0.2,127.0.0.3,...] [--workers K] [--reconnect] [--json] \
//	    [--payload plain|dashboard] [--wake-gap 10ms] [--conflate D] [--delta fossil] \
//	    [--compress] [--key-count N]
//
// run opens N subscribers (--subs) spread round-robin over C channels named
// bench-0 … bench-(C-1), at most --ramp-batch connecting at a time (the next
// one starts as soon as one of those is ready), and measures how many
// became ready per second. A subscriber is ready when the edge has joined
// it to its channel: the WebSocket "subscribed" frame, the SSE id-only
// event, or the answer of a first long-poll with timeout=0 (whose cursor the
// next polls send as since=). With --transport mix, subscriber i uses ws,
// sse and poll in turn. Each subscriber's socket is bound to one of the
// --sources loopback addresses in turn (default 127.0.0.1): one source
// address gives about 28,000 client ports (net.ipv4.ip_local_port_range),
// so more subscribers need more sources. The clients are small on purpose,
// so that the ramp measures the edge rather than the tool: SSE and
// long-poll are hand-written HTTP/1.1 clients on one connection each (a
// long-poll subscriber redials when the edge closes its connection),
// WebSocket is gorilla's; dialing and handshakes run on --ramp-batch
// connector goroutines, and each ready subscriber receives on a goroutine
// of its own.
//
// --url names one edge or, separated by commas, the nodes of a fleet (on
// one Redis or Redis Cluster): subscriber i connects to URL i mod U of the
// U URLs, so each channel's subscribers are spread over the nodes, and
// message m is published through URL m mod U (with --batch, batch b
// through URL b mod U; --publishers connections are shared out among the
// nodes). The report adds the ready subscribers per URL ("per url",
// connected_per_url in JSON).
//
// With --workers K (default 1) the subscribers run in K worker processes
// instead: edge-bench starts itself K times (a hidden "worker" subcommand),
// gives worker w the subscribers i with i mod K = w, every K-th --sources
// address from the w-th (or the (w mod S)-th of S < K addresses) and
// --ramp-batch/K, and publishes from this process once every worker has
// reported its subscribers ready. Subscriber i has the same channel and
// transport either way. Each worker reports its figures, the latency
// histogram's buckets included, as one JSON line on its stdout; the report
// merges them, so percentiles are exact over all workers. Workers die with
// edge-bench (SIGKILL when it ends, on Linux) and stop when their stdin
// closes early; when one fails or overruns, edge-bench kills the others and
// says which failed, with its exit status and the end of its stderr. The
// ramp then runs from the first worker's start to the last worker's end.
//
// Then it publishes R messages/s (--rate) for --duration, round-robin over
// the channels, from --publishers goroutines: over HTTP keep-alive
// (POST /v1/publish, the default) or straight into Redis with
// FCALL edge_publish 1 edge:{CHANNEL} "" PAYLOAD (--publish redis; the edge
// must run with --redis on the same Redis). Over HTTP, the publishers of
// the edge and Nchan share a small hand-written HTTP/1.1 client: up to
// --publishers keep-alive connections, one write per request, each answer
// read within bounds (64 lines, 16 KiB of header, 64 KiB of body), a
// connection closed after any error. net/http's client would spend about
// 30 µs of CPU per publish, CPU that on a small machine the tool takes
// from the server it measures; batches and Centrifugo's publishes still go
// through it. Each payload is --size bytes:
// "seq=<n> t=<unix nanoseconds> " padded with 'x', where n counts the
// messages of that channel. Message m is due at start + m/R; a publisher
// that falls behind sends at once, so the achieved rate is reported too.
// Latency is measured from the moment the publisher sent the message.
// With --batch N (edge, over HTTP) the publishers send the messages N at a
// time, messages [bN, bN+N) in one POST /v1/publish/batch due at start +
// bN/R, so that the CPU per message of a batch can be measured.
//
// --rate max (in any case: max, MAX) closes the loop instead: each of the
// --publishers goroutines sends its next publish (or, with --batch N, its
// next batch of N) as soon as its last one was answered, until --duration
// has passed; a publish under way then finishes and counts. Messages are
// numbered as at a fixed rate (the next m from one counter), so the
// accounting is the same; how many were published is known only at the
// end, and the report gives it with its rate ("published N (X/s)") and
// the load as "max msg/s (closed loop, P publishers)" (in JSON, "rate" 0,
// "closed_loop" true and "publishers"). It works with --publish redis and
// every --target. Use it for the server's CPU per publish at saturation —
// with --subs 1 and --pid, the edge CPU per million deliveries is µs per
// publish — comparable with wrk -c P against the same endpoint; a fixed
// --rate measures the server at a given load instead. baseline refuses it.
//
// After the last publish it waits up to --drain (default 5s) for every
// expected delivery, then reports:
//
//   - published: messages the edge (or Redis) acknowledged;
//   - expected: for each channel, published × its ready subscribers;
//   - delivered: distinct messages received per subscriber, summed;
//   - lost: expected − delivered; duplicated: messages a subscriber got again;
//   - delivered/s: delivered over the time from the first publish to the
//     last delivery;
//   - latency p50/p99/p99.9/max of every first delivery, from a log-linear
//     histogram (relative error under 1.6%, fixed memory);
//   - ramp: ready subscribers per second while connecting;
//   - workers: the processes that ran the subscribers (run);
//   - with --pid: the edge's RSS before and after the ramp (VmRSS of
//     /proc/PID/status) and their difference per connection, and the CPU
//     seconds (utime+stime of /proc/PID/stat) the edge spent from the first
//     publish to the end of the drain, per million deliveries. --pid takes
//     several pids, separated by commas or spaces, whose figures are
//     summed: for nginx, its master and workers,
//     --pid "$(cat /tmp/nchan.pid) $(pgrep -P "$(cat /tmp/nchan.pid)")".
//     A sum of RSS counts a page shared by several of them (nginx's
//     shared memory zone) once per process that touched it.
//
// --reconnect (off by default, so that a plain run still counts a
// connection the edge ends — a slow consumer — as ended early; --target
// edge, --batch 1) makes a run survive a node that dies, as client.js
// does: a subscriber whose connection ends (end of stream, reset, a
// disconnect frame or event, a refused long-poll) reconnects to another
// --url, chosen at random at each try so that the subscribers of a node
// that died spread over the others (one node could not take them all: a
// process holds 20,000 files here), with its cursor — WebSocket since=, SSE
// Last-Event-ID, long-poll since= — after a wait of full jitter, uniform
// in [0, min(30s, 1s·2^attempt)), the attempts counted from its last
// connection that stayed open 30s; when the edge advised a wait (the
// Retry-After of a 429 or 503, the retry_ms of a disconnect frame or
// long-poll disconnect, the SSE retry: before a disconnect event) it
// waits exactly that. Messages replayed from history count as usual: a
// subscriber that resumed right misses nothing and gets nothing twice.
// Publishes carry an Idempotency-Key (edge-bench-<run>-<m>), and one that
// fails is retried through the next --url with the same key (every node,
// three rounds, 250 ms between rounds), so that a publish whose answer
// was lost with its node is stored once. The report adds:
//
//   - publish retries: the tries after a message's first, through
//     another node (JSON: publish_retries);
//   - gaps: gap signals received (event: gap, {"type":"gap"}, "gap":true),
//     counted on every run, apart from the messages;
//   - reconnects: the subscribers disturbed (whose connection ended at
//     least once), their reconnects, the 429 and 503 answers to them, how
//     many were still down when the run stopped, and "all back": the time
//     from the first connection loss until the last disturbed subscriber
//     was ready again (JSON: disturbed, reconnects, reconnects_refused,
//     still_down, all_back_s — null while one is still down);
//   - latency p99 undisturbed: the p99 of the deliveries made before their
//     subscriber's first connection loss — every delivery of the
//     subscribers that were never disturbed, and none of those replayed
//     after a reconnect (latency_p99_undisturbed_ms).
//
// Latency is measured from the first try of a publish, so a publish
// retried through another node counts its retries.
//
// A message published to a channel nobody subscribes to is expected
// nowhere. Duplicates are detected in a window of the last 4,096 sequence
// numbers per subscriber: a message delayed past that window would count as
// lost and then duplicated, which the edge's in-order delivery rules out.
// Subscribers that fail to connect are left out of expected and counted as
// connect errors; connections that end during the run (e.g. closed as slow
// consumers) stay in expected, so what they miss counts as lost.
//
// # Nchan
//
// With --target nchan, run loads nginx with the Nchan module
// (apt-get install -y nginx libnginx-mod-nchan) as testdata/nchan.conf
// configures it — in-memory store, 1,000 messages of history per channel,
// WebSocket, SSE and long-poll on /sub/<channel>, publish with
// POST /pub/<channel>, on 127.0.0.1:8090 — with the same subscribers,
// payloads, pacing and accounting as the edge, so that the two can be
// compared side by side. Only the wire forms differ: a WebSocket
// subscriber is ready when the handshake is over and reads one message per
// text frame; an SSE subscriber is ready on Nchan's ": hi" comment and
// reads one message per data: line; a long-poll subscriber is ready once
// it has sent its first poll, reads one message per answer and sends each
// answer's Last-Modified and Etag back as If-Modified-Since and
// If-None-Match. --publish redis is the edge's only.
//
// # Centrifugo
//
// With --target centrifugo, run loads Centrifugo v6 (the Go peer, built on
// centrifugal/centrifuge; GOBIN=DIR go install
// github.com/centrifugal/centrifugo/v6@v6.9.1, which reports its version
// as 0.0.0 because go install sets no release ldflags) as
// testdata/centrifugo.json (memory engine) or testdata/centrifugo-redis.json
// (Redis engine, Redis at 127.0.0.1:6379) configures it, on
// 127.0.0.1:8091: channels outside any namespace keep 1,000 messages of
// history for 300 s with recovery forced on (force_recovery, which also
// positions every subscription), like the edge's history and resume;
// anonymous clients connect without a token and subscribe (a public feed,
// as edge-bench's subscribers are on the edge); the server API needs the
// key edge-bench (--centrifugo-api-key). Only --transport ws: a subscriber
// speaks Centrifugo's bidirectional JSON protocol over /connection/websocket
// (a connect command, then subscribe), is ready on the subscribe reply,
// reads the publications of every frame (Centrifugo batches several
// replies in one frame, one a line) and answers each server ping ({}) with
// a pong ({}); a server unsubscribe or disconnect push ends it. Publishers
// send POST /api/publish with X-API-Key and {"channel":…,"data":"<payload>"}
// — the payload travels as a JSON string — and count a publish only when
// the answer holds a result, not an error. Any setting of the file can be
// overridden by its CENTRIFUGO_* environment variable, e.g.
// CENTRIFUGO_ENGINE_REDIS_ADDRESS=redis://127.0.0.1:16400 or
// CENTRIFUGO_HTTP_SERVER_PORT=8092.
//
// # Bytes and wake-ups per subscriber
//
// Every run also reports what one subscriber costs the network and the
// device it runs on, per hour of publishing: the bytes its connections
// received and sent, how often they woke it up, and the messages it got.
// This is the measurement of a dashboard (issue 19): a JSON state of 1 KiB
// updated 20 times a second, sent plain, conflated, as deltas or
// compressed, on each transport — one command per row, 100 subscribers of
// one channel for a minute:
//
//	B="edge-bench run --url http://127.0.0.1:8080 --subs 100 --rate 20 --duration 30s --payload dashboard --json"
//	$B --transport ws                      # plain (sse, poll: the same with --transport sse or poll)
//	$B --transport ws --conflate 1s        # conflated: the latest state once a second
//	$B --transport ws --delta fossil       # deltas from the previous state
//	$B --transport ws --compress           # permessage-deflate on ws, gzip on sse and poll
//	$B --transport ws --conflate 1s --compress
//	$B --transport ws --delta fossil --compress
//
// Measured on one edge (the embedded store, go run ./cmd/edge) on a
// 2-core machine at load averages 0.2–3.1, each row a 30 s run; every run
// delivered every message exactly once (conflated: the newest of each
// key, in order, none twice):
//
//	mode (ws / sse / poll)   bytes/sub/hour received          wake-ups/sub/hour           messages/sub/hour
//	plain                    82.5 / 72.2 / 99.4 MiB           71,936 / 71,962 / 72,000    72,000
//	conflated (1 s)          4.3 / 3.7 / 4.8 MiB              3,748 / 3,720 / 3,480       3,720 / 3,720 / 3,480
//	delta (fossil)           13.9 / 15.5 / 30.9 MiB           72,101 / 71,944 / 72,000    72,000 (98% deltas)
//	compressed               33.2 / 4.8 / 52.9 MiB            71,894 / 71,882 / 72,000    72,000
//	conflated + compressed   1.7 / 0.8 / 2.6 MiB              3,828 / 3,751 / 3,480       3,720 / 3,720 / 3,480
//	delta + compressed       10.2 / 5.6 / 29.9 MiB            71,880 / 71,880 / 72,000    72,000 (98% deltas)
//
// A long-poll subscriber also sends 10.5–13.7 MiB of requests an hour
// (0.5–0.7 MiB conflated); the others send nothing but pongs.
//
// How they are counted:
//
//   - bytes: every subscriber's TCP connection is wrapped in a counter of
//     the bytes its reads returned and its writes sent — everything above
//     TCP on plain HTTP: request and answer headers, chunked framing,
//     WebSocket frame headers, SSE field names, long-poll JSON, heartbeats,
//     pings and pongs; with --compress the compressed bytes, before they
//     are decoded. IP and TCP headers and ACKs are not counted. The
//     window runs from the end of the ramp (of the subscriber's process)
//     to the end of the drain, so it leaves out the handshakes and holds
//     the deliveries of every message published; it is extrapolated to an
//     hour over the publishing time (--duration, or longer when the
//     publishers fell behind): bytes ÷ that time × 3600, averaged over the
//     ready subscribers ("bytes/sub/hour": received, the most one
//     subscriber received, and sent — a long-poll subscriber's requests,
//     a WebSocket's pongs; JSON: bytes_received_per_sub_hour,
//     bytes_received_max_per_sub_hour, bytes_sent_per_sub_hour);
//   - wake-ups: a read that returns data after the subscriber's
//     connection was quiet for at least --wake-gap (default 10ms) is a
//     wake-up; reads closer together are one burst (a frame split over
//     two reads, a batch). On long-poll, the first read after each request
//     is a wake-up too, so every request/answer round trip counts at
//     least once. Per subscriber and hour as the bytes
//     ("wake-ups/sub/hour", wakeups_per_sub_hour). 10 ms counts the times
//     the subscriber's process is woken; a phone's radio stays up for
//     seconds after a transfer, so a --wake-gap of a few seconds counts
//     radio wake-ups more closely;
//   - messages: first deliveries per subscriber and hour, and their share
//     of what was published to its channel ("delivered/sub/hour",
//     delivered_per_sub_hour).
//
// --payload dashboard makes each message a flat JSON object of --size
// bytes (1024 unless --size is given): "seq" and "t" first (what
// edge-bench reads, as "seq=… t=…" in plain payloads), then up to 40
// fields named like a service dashboard's ("api.status", "db.p99_ms": a
// status and a region word and six numbers per group), of which each update
// changes about two (the cpu_pct and p50_ms ones every 8 updates, the
// others every 64, staggered), and a "note" string padding it to --size.
// The edge carries it as the JSON string it is, so WebSocket and long-poll
// frames hold it with its quotes escaped, SSE as is.
//
// The subscribe options are passed to the edge (--target edge) on every
// transport's subscribe request: --conflate D adds conflate=D (50ms to
// 1m), --delta fossil adds delta=fossil, --compress adds compress=1 and
// sends Accept-Encoding: gzip on SSE and long-poll (a gzip answer or
// stream is decoded as it arrives) and offers permessage-deflate on
// WebSocket (gorilla's, without context takeover). --key-count N makes
// the publishes carry the conflation key k0 … k(N-1), round-robin over
// each channel's messages: key= on POST /v1/publish, "key" in a batch's
// messages, the key option of FCALL edge_publish. How the run checks
// delivery then changes:
//
//   - --conflate: skipped messages are skipped by design, so "lost" counts
//     instead the last message of each key (of each channel) that a
//     subscriber never got, "duplicated" what it got twice, and the new
//     "reordered" a message below one it already had (JSON: reordered;
//     the exit status is 1 for any of them); the share of published
//     messages that arrived is in delivered/sub/hour. The messages are
//     published by one publisher (--publishers 1, the default with
//     --conflate, and the only value it takes), so that they are stored
//     in the order of their sequence numbers: the last of each key is the
//     one the edge must deliver, and sequence order is id order. The
//     drain waits until no message arrived for the conflation window and
//     250 ms, or --drain. Not with --reconnect nor --delta (the edge
//     sends a conflated subscriber full messages).
//   - --delta: a delta frame ("delta":"<base id>", an event: delta or a
//     data object with a delta field on SSE) carries a difference, not a
//     payload; edge-bench counts it and does not apply it (client.js's
//     tests check that deltas round-trip). Exactly-once is checked on the
//     message ids, which deltas carry: each must be above the last
//     (otherwise it is duplicated), and lost is published − distinct ids.
//     A delta's latency runs from the millisecond in its id — when the
//     edge stored it, which leaves out the publish's own HTTP round trip
//     and has millisecond resolution — a full message's from its send time
//     as usual. The report adds "deltas" (JSON: deltas, full_messages).
//
// # baseline
//
//	edge-bench baseline --subs N --rate R --size BYTES --duration D \
//	    [--ramp-batch 500] [--drain 5s] [--sources ...] [--json]
//
// baseline runs a plain TCP fan-out server and N plain TCP clients on
// loopback in this process: the server writes each message to every
// connection with one write per delivery (from one writer goroutine per
// CPU); each client reads fixed --size frames with the same payload. It
// reports the same figures as run, with one channel.
//
// # Output and limits
//
// Both print a table for people; with --json they print instead exactly one
// JSON line with every figure, under stable field names (figures that need
// --pid are null without it). The exit status is 0 when every expected
// message arrived exactly once, 1 when some were lost, duplicated or (with
// --conflate) reordered or the run failed, 2 for bad flags.
//
// Every run is bounded: --duration at most 10m, --subs at most 100,000,
// --drain at most 1m. The tool only targets loopback, the edge, Nchan or Centrifugo: --url, --redis and
// --sources must name 127.0.0.0/8, ::1 or localhost. Before connecting it
// raises its open-file soft limit to the hard limit (which workers inherit)
// and refuses to start, saying what to change, when a process's sockets
// would not fit — the subscribers plus --publishers in one process, N/K
// subscribers per worker, twice as many sockets for baseline; this machine
// allows 20,000 open files per process, so run --subs 50000 needs
// --workers 3 — or when the subscribers per --sources address would
// outnumber its client ports. The edge needs an open file per subscriber
// too: on this machine one edge process holds fewer than 20,000.
//
// # Examples
//
//	go run ./cmd/edge &                       # or any edge
//	go run ./cmd/edge-bench run --transport mix --subs 3000 --channels 3 \
//	    --rate 500 --size 100 --duration 10s --pid $(pgrep -n edge)
//	go run ./cmd/edge-bench baseline --subs 3000 --rate 500 --duration 10s
//
// 50,000 subscribers, in three worker processes over three source
// addresses (the edge needs an open-file limit above 50,000 for them,
// which this machine's 20,000 per process does not allow):
//
//	go run ./cmd/edge-bench run --transport ws --subs 50000 --channels 100 \
//	    --rate 10 --duration 10s --workers 3 --sources 127.0.0.2,127.0.0.3,127.0.0.4
//
// CI runs a two-second edge-bench run (300 subscribers over all three
// transports) against the built binary and fails on any lost or repeated
// message.
//
// # Measured numbers
//
// Measured on the project's development machine — 2 vCPUs (AMD EPYC),
// 24 GiB RAM, Debian, Linux 6.18, Go 1.26 — with the edge and the load
// tool sharing the two cores; the edge built with
// go build -o /tmp/edge ./cmd/edge and started with
// /tmp/edge --listen 127.0.0.1:18085, then
// edge-bench run --url http://127.0.0.1:18085 … --pid $(pidof edge).
// Numbers move by 10–30% from run to run; compare within one session.
// Each entry gives the target (of issue 4), what was measured, and the
// edge-bench command.
//
// Idle memory, 15,000 connections (target ≤ 8 KiB RSS each; issue 16's
// ≤ 5 KiB SSE, ≤ 6 KiB WebSocket): SSE 3.3–4.6 KiB, WebSocket 5.1–5.7 KiB
// (before idle connections were parked, 6.3–7.0 and 7.9–8.9 KiB,
// alternating with this in one session, load average 8–20), waiting
// long-poll 4.4–4.9 KiB (4.4–4.5 before, alternating, load average 2.5);
// on a quiet machine (load average 1.1–1.5) SSE 3.7 KiB, WebSocket
// 5.3 KiB; a fresh edge for each of
//
//	run --transport sse|ws|poll --subs 15000 --channels 100 --rate 10 --duration 1s --sources 127.0.0.2,127.0.0.3
//
// Fan-out, 5,000 subscribers on one channel, 100 B (target ≥ 80% of
// baseline): SSE 980,000/s, WebSocket 906,000/s, baseline 340,000/s on a
// quiet machine (load average 2.3; before the hub woke writers in
// chunks, alternating: 914,000 and 796,000/s); none lost.
//
//	run --transport sse --subs 5000 --channels 1 --rate 200 --duration 5s
//	baseline --subs 5000 --rate 200 --duration 5s
//
// Latency, 2,000 subscribers × 50 msg/s (target p99 ≤ 10 ms, p99.9 ≤
// 50 ms): on a quiet machine (load average 1.5–2) SSE p99 17 ms,
// WebSocket 14 ms, with 6.2 and 5.0 CPU-s per million deliveries (the
// build before chunked wakes, alternating: 20 and 25 ms, 9.2 and 9.7 s);
// none lost. Earlier, while other load ran: SSE p99 51–60 ms, WebSocket
// 64–70 ms; baseline at the same load: p50 13 ms, p99 31 ms, p99.9 47 ms.
//
//	run --transport sse --subs 2000 --channels 1 --rate 50 --duration 10s
//	baseline --subs 2000 --rate 50 --duration 6s
//	taskset -c 0 edge …   and   taskset -c 1 edge-bench …
//
// One channel per subscriber, 10,000 subscribers, 2,000 publishes/s
// (target p99 ≤ 10 ms, none lost): WebSocket p99 2.0 ms on a quiet
// machine (6.1 ms earlier under load), SSE p99 4.3 ms; none lost.
//
//	run --transport ws --subs 10000 --channels 10000 --rate 2000 --duration 10s --sources 127.0.0.2,127.0.0.3
//
// Catch-up of 10,000 missed messages (target ≤ 100 ms): SSE 9.7 ms,
// WebSocket 9.5 ms, long-poll 30 ms (10 answers of 1,000) on a quiet
// machine; 38, 41 and 67 ms earlier under load.
//
//	go test -run '^$' -bench CatchUp ./transports/
//
// Publish over HTTP, 64 concurrent publishers (target ≥ 20,000/s
// embedded, ≥ 10,000/s with Redis; issue 16's ≤ 15 µs of edge CPU per
// publish): the publish lane (go doc ./transports, "The publish lane")
// serves these. Back to back (--rate max), with the one SSE subscriber's
// deliveries counted in: 64,600–68,400/s at 15.8–17.1 µs of edge CPU per
// publish, of which about 2.6 µs is the delivery (perf: the writers' share);
// the build before the lane, alternating: 47,000–47,500/s at
// 25.7–26.7 µs. Paced at 40,000/s: 23.4–23.6 µs against 26.9–27.8 (each
// request then wakes the edge on its own). With wrk -c64 and no
// subscriber: 94,000–100,000/s at 12.0–13.0 µs (one run of four at 15.3),
// against 60,000–65,000/s at 19.8–21.0 µs through net/http. All with the
// load tool on the same two cores (load average 1.6–2.6), none lost.
// On --redis (a fresh redis-server), back to back: 30,000–33,400/s at
// 24–27 µs, against 23,900–26,200/s at 35–40 µs before the lane. In batches of 100 (--publishers 8
// --batch 100): 4.7–5.0 µs of edge CPU per message.
//
//	run --transport sse --subs 1 --rate max --duration 5s --publishers 64   (edge with and without --redis)
//	run --transport sse --subs 1 --rate 40000 --duration 5s --publishers 64
//	wrk -t2 -c64 -d5s -s post.lua 'http://127.0.0.1:18085/v1/publish?channel=a'   (post.lua: wrk.method = "POST"; wrk.body = string.rep("x", 100))
//
// Connection ramp (target ≥ 5,000/s): SSE 5,300–6,000/s, WebSocket
// 5,300/s, long-poll 6,100/s on a quiet machine; 4,500/s while other load
// runs (the idle-memory runs above). A ramp is CPU-bound here, so its
// figure is that of the edge and the tool together: per subscriber the
// tool spends about 0.2–0.3 ms of CPU (dial, handshake, first answer —
// mostly the kernel's loopback TCP), the edge about 0.2–0.3 ms (accept,
// net/http's request, the handshake, the join; most of it in system calls
// and net/http). 15,000 subscribers over 100 channels ramped at
// 2,100–3,200/s with another load test running on the machine, at best
// 3,800 (ws) to 4,700/s (sse).
//
// Why: an idle SSE or WebSocket connection (HTTP/1 without TLS, on Linux)
// holds no goroutine: it is parked with the edge's idle watcher, one epoll
// instance and one goroutine for all connections, which starts a goroutine
// only when the client sends something (a WebSocket pong or op) or leaves.
// What remains is heap: about 1.3 KiB for SSE (session, timers, socket)
// and 2.2 KiB for WebSocket (with gorilla's connection and a 320-byte
// reader), and the garbage of each connection's handshake that the
// collector has yet to reclaim when RSS is read. A goroutine blocked in a
// read, as each had before, added over 2 KiB of stack; over TLS and off
// Linux a connection still keeps one. A waiting long-poll has no
// goroutine either (go doc ./transports, "How a connection writes"). The
// fan-out beats the baseline because, unlike it, the edge coalesces what a
// connection has queued into one write: at 5,000 subscribers it spends
// about 1.2 s of CPU per million deliveries. The latency target is where
// this machine runs out: each delivery that goes out alone is one write to
// a socket, about 6 µs of kernel time on loopback here (63% of the edge's
// CPU in that run; on loopback the sender's system call also runs the
// receiver's TCP path), so one message to 2,000 sockets takes about 12 ms
// of one core before the load tool reads any of it; the edge uses about
// one core and the load tool the other. Even the plain TCP baseline, one
// write per delivery and nothing else, has a p99 of 31 ms at this load on
// this machine: the 10 ms target needs more cores (or the load tool on
// another machine) than this one has. Publishing is bounded the same way:
// the load tool spends 13–16 µs of CPU per HTTP publish (its hand-written
// keep-alive client; 30 µs with net/http's) and the edge 16–17 back to
// back (the handler about 2–4 µs; the rest is reading the request,
// writing the answer, their system calls and the SSE write), so the two
// together fill the two cores near 65,000/s. Under wrk -c64 a net/http
// server that answers a fixed JSON without reading the body costs
// 12.6–12.8 µs per keep-alive request here, as much as the lane's whole
// publish (12–13 µs), which is why publishes take the lane. With Redis
// the edge spends 24–27 µs per publish back to back (the round trip
// through go-redis) and Redis itself 6–8 µs running the function. A batch
// reads one request for many messages.
//
// Side by side with Nchan 1.3.6 (nginx 1.22.1, 2 workers, testdata/nchan.conf),
// fresh servers, each pair back to back, in one session (2026-12-07, load
// average 0.9–3.6, the load tool itself making most of it): 10,000
// subscribers over 100 channels, 1,000 msg/s of 128 B, every publisher at
// the rate asked; none lost or repeated. WebSocket nine pairs, SSE six;
// three of each at the final build on a quiet machine, the others at
// builds with the same write path (three of them while the machine was
// busier, those with Nchan at 8.5–10.9).
//
//	                                 edge               Nchan
//	CPU-s / 1M deliveries, WebSocket 7.0–9.1 (median    7.4–10.9 (median
//	                                 7.5; below Nchan   7.8)
//	                                 in 7 pairs of 9,
//	                                 1% and 6% above
//	                                 in 2; final build
//	                                 7.2–7.7)           7.6–7.8
//	CPU-s / 1M deliveries, SSE       7.0–7.8 (below     8.6–9.9
//	                                 in every pair)
//	p99, WebSocket                   5–36 ms            40–166 ms
//	p99, SSE                         6–16 ms            46–197 ms
//	idle RSS / connection at 10,000  SSE 3.8 KiB,       SSE 10.1 KiB,
//	                                 WS 5.5 KiB         WS 10.3 KiB
//
// (Nchan's idle figure is from an earlier session, the sum over master and
// workers; their PSS agrees within 0.1 KiB.) The split of each server's CPU
// (utime and stime from /proc over the run) shows where the two differ:
// the kernel's share is alike (5.2–8.5 s per run for both, the write and
// loopback path of one write system call per delivery); the edge's user
// time, 2.8–3.6 s per run at the start of this session (Nchan 1.9–2.3 in
// the same runs), is 2.1–3.1 s now (Nchan 2.0–3.1). Before issue 16's work the edge spent
// 12.6–14.3 (WebSocket) and 12.4–14.4 (SSE) CPU-s per million deliveries
// at this load, and 8.3–8.9 and 8.3–9.0 at the start of this session.
// Where the CPU went and what cut it: go doc ./transports, "How a
// connection writes".
//
//	nginx -c "$PWD/cmd/edge-bench/testdata/nchan.conf"; m=$(cat /tmp/nchan.pid)
//	run --target nchan --url http://127.0.0.1:8090 --transport ws|sse --subs 10000 --channels 100 \
//	    --rate 1000 --size 128 --duration 10s --pid "$m $(pgrep -P $m)"
//	/tmp/edge --listen 127.0.0.1:18085 --max-conns-per-ip 20000 &
//	run --url http://127.0.0.1:18085 --transport ws|sse --subs 10000 --channels 100 \
//	    --rate 1000 --size 128 --duration 10s --pid $!
//
// (idle memory: the same with --rate 10 --duration 1s).
//
// Side by side with Centrifugo v6.9.1 on Redis, in a quiet session
// (2026-12-07, load average 1.2–3.0, the edge at c16ef08 with chunked
// wakes, three pairs, the same load and servers as below): edge --redis
// 9.3–9.6 CPU-s per million deliveries, p50 2.7–6.5 ms, p99 27.0–29.6 ms,
// RSS 6.9–7.7 KiB per connection, publishers at 999–1,000 msg/s;
// Centrifugo 12.8–13.3 CPU-s, p50 20.7–21.5 ms, p99 44.0–49.3 ms, RSS
// 46.6–52.0 KiB, publishers at 886–913 msg/s. Redis spent 0.60–0.63
// CPU-s per million deliveries under the edge and 0.41–0.42 under
// Centrifugo. None lost or repeated. The eight earlier pairs, on a busy
// machine and an older edge:
//
// Side by side with Centrifugo v6.9.1 (--target centrifugo,
// testdata/centrifugo-redis.json and testdata/centrifugo.json): 10,000
// WebSocket subscribers over 100 channels, 1,000 msg/s of 128 B asked for
// 10 s (--publishers 16), a fresh server and a fresh redis-server for every
// run, edge and Centrifugo runs alternating, in one session (2026-12-07)
// while other load tests shared the two cores; the edge at 5614388 (shared
// writers, coarse write deadlines) and, for two of the Redis pairs, at
// e57d1ff (which adds the batch publish). Eight runs of each on Redis (load
// average 1.4–9.1), three of each in memory (4.1–6.6); none lost or
// repeated.
// Neither always got the rate asked — server, Redis and load tool together
// need about the two cores — and the edge got more of it (Redis: edge
// 671–1,000 msg/s, Centrifugo 446–892; memory: 775–913 and 404–638), which
// if anything counts against its latency. Redis CPU is redis-server's
// utime+stime from the first publish to the end of the drain, read beside
// the run (not an edge-bench figure: --pid "SERVER REDIS" would sum it in,
// RSS included).
//
//	                                 edge --redis    Centrifugo, Redis engine
//	server CPU-s / 1M deliveries     8.3–9.5         11.9–14.0
//	Redis CPU-s / 1M deliveries      0.37–0.64       0.37–0.45
//	p50                              2–30 ms         20–43 ms
//	p99                              28–923 ms       61–2,064 ms
//	  (median of 8)                  83 ms           124 ms
//	RSS / connection after the ramp  10.1–11.3 KiB   45–52 KiB
//
//	                                 edge, embedded  Centrifugo, memory engine
//	server CPU-s / 1M deliveries     8.4–9.0         13.3–14.9
//	p50                              2.5–23 ms       25–33 ms
//	p99                              88–117 ms       145–298 ms
//	RSS / connection after the ramp  7.9–8.2 KiB     45–48 KiB
//
// So on Redis the edge spends about 30% less CPU per delivery than
// Centrifugo's Redis engine, Redis spends about as much for either (the
// edge's a little more in some runs), and their p99 is of the same order
// (the edge's lower in four of eight pairs, its median lower); both had
// runs with a long tail when the machine was busiest (edge 365 and 923 ms,
// Centrifugo 2.1 s). In memory the edge is ahead on CPU,
// p50 and p99. A perf profile of the edge on --redis (perf record -g -p PID
// -- sleep 6, in runs left out of the table) against the embedded edge at
// the same load: the same shape — 64–67% kernel (the
// writes and the loopback receive path they drive; the writers' turn is
// 78% inclusive), Hub.deliver 2.8% in both. What Redis adds is small: the
// publish's pipelined round trip through go-redis (resume.(*Redis).Publish,
// 2.5%), reading the relay (go-redis PubSub.Receive, 0.3%) and parsing its
// messages (0.1%), and about 1.3% more garbage collection — some 0.4 CPU-s
// per million deliveries. On --redis the fan-out runs on the one goroutine
// that reads the pub/sub connection (resume.(*Redis).receive → relay →
// Hub.deliver), where embedded it runs on each publish's handler;
// Centrifugo spreads pub/sub messages over runtime.NumCPU() goroutines by a
// hash of the channel. Centrifugo's own profile at that load: 47% kernel;
// fan-out on its pub/sub processors 16% inclusive (its enqueue 7.7%); a
// long-lived writer goroutine per connection waiting on a sync.Cond;
// SetWriteDeadline 5%; its Redis client (rueidis) about 1%.
//
// Before the shared writers (at 0b06e04), ten alternating runs of each at
// load 3.7–21 gave the edge 11.1–14.6 CPU-s per million on --redis against
// Centrifugo's 13.0–15.8, a p99 of 101–3,456 ms against 88–780, and a
// profile with 15–16% in goroutine stack growth under the writer started
// per burst and 7% in SetWriteDeadline, both gone since. In memory, then:
// edge 11.8–13.3, Centrifugo 11.9–12.2 CPU-s per million, Centrifugo's
// publishers reaching 980–1,000 msg/s; its 13.3–14.9 above came with
// 404–638 msg/s, so part of that gap may be the rate it was given.
//
//	redis-server --port 16400 --save '' --appendonly no &
//	CENTRIFUGO_ENGINE_REDIS_ADDRESS=redis://127.0.0.1:16400 \
//	    centrifugo -c cmd/edge-bench/testdata/centrifugo-redis.json &   # or centrifugo.json
//	run --target centrifugo --url http://127.0.0.1:8091 --transport ws --subs 10000 --channels 100 \
//	    --rate 1000 --size 128 --duration 10s --sources 127.0.0.2,127.0.0.3 --pid $!
//	go build -o /tmp/edge-c ./cmd/edge
//	/tmp/edge-c --listen 127.0.0.1:18085 --max-conns-per-ip 20000 --redis redis://127.0.0.1:16400 &   # or without --redis
//	run --url http://127.0.0.1:18085 --transport ws --subs 10000 --channels 100 \
//	    --rate 1000 --size 128 --duration 10s --sources 127.0.0.2,127.0.0.3 --pid $!
//
// Fan-out through the hub alone (publish of a 100-byte message until every
// subscriber session has taken it),
// go test -run=^$ -bench=Fanout -benchtime=2s ./edge/:
//
//	subscribers  ns/publish  deliveries/s  allocs/publish
//	          1         986        1.01 M               2
//	        100      12,917        7.74 M               2
//	     10,000     302,250        33.1 M              13
//
// Allocations per publish do not grow with subscribers: the frame and its
// encodings are shared (BenchmarkFrameEncodeOnce: 1.000 builds per frame
// whether 1 or 10,000 readers ask for it). All the core's benchmarks:
// go test -run=^$ -bench=. -benchtime=2s ./edge/.
//
// # The fleet, measured
//
// Issue 17's fleet: 8 edge processes on a 3-master, 3-replica Redis
// Cluster, 96,000 WebSocket subscribers over 1,000 channels from 5
// edge-bench workers on 5 source addresses, 100 msg/s of 100 bytes for
// 60 s (9,600 deliveries/s: the point is the connection count). Everything
// — Redis, the edges, the workers, the publisher — on the 2 cores above,
// which other work shared too; the load average at each run's start is
// given (the run itself adds about 20). Measured with the edge and
// edge-bench of commit 4065f37, before the cluster-following work of
// issue 17 was merged. A
// process may open 20,000 files here, so a node holds its 12,000
// subscribers (and, after the storm, 13,700), a worker its 19,200, and a
// source address its 19,200 of ~28,000 client ports; the runs used 3–4 GiB
// of the 24. The commands, by hand in one shell:
//
//	D=$(mktemp -d)
//	for p in 7001 7002 7003 7004 7005 7006; do
//	  redis-server --port $p --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file $D/nodes-$p.conf \
//	      --dir $D --save '' --appendonly no --daemonize yes --pidfile $D/redis-$p.pid --logfile $D/redis-$p.log
//	done
//	redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 \
//	    127.0.0.1:7004 127.0.0.1:7005 127.0.0.1:7006 --cluster-replicas 1 --cluster-yes
//	go build -o $D/edge ./cmd/edge && go build -o $D/edge-bench ./cmd/edge-bench
//	for i in 0 1 2 3 4 5 6 7; do     # fresh nodes before every run
//	  (ulimit -n 20000; exec $D/edge --listen 127.0.0.1:1810$i --redis-cluster \
//	      --redis redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
//	      --max-conns-per-ip 20000 > $D/edge-$i.log 2>&1) &
//	  echo $! > $D/edge-$i.pid
//	done
//	URLS=http://127.0.0.1:18100,http://127.0.0.1:18101,http://127.0.0.1:18102,http://127.0.0.1:18103,\
//	http://127.0.0.1:18104,http://127.0.0.1:18105,http://127.0.0.1:18106,http://127.0.0.1:18107
//	redis_cpu() { for f in $D/redis-*.pid; do awk '{print $14+$15}' /proc/$(cat $f)/stat; done | paste -sd+ | bc; }
//	$D/edge-bench run --url $URLS --transport ws --subs 96000 --channels 1000 --rate 100 --duration 60s \
//	    --workers 5 --sources 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6 \
//	    --pid "$(cat $D/edge-*.pid | paste -sd,)" 2> $D/progress &
//	until grep -q publishing $D/progress; do sleep 0.5; done; c0=$(redis_cpu)
//	wait $!; echo "Redis CPU: $(( $(redis_cpu) - c0 )) ticks of 10 ms"
//
// Redis CPU is the six redis-server processes' utime+stime
// (/proc/PID/stat) from the first publish to the end of the run; edge
// RSS per connection and CPU are summed over the 8 nodes (--pid).
//
//	load avg  ramp              delivered/s  p50     p99     p99.9   RSS/conn  edge CPU (per M)  Redis CPU  lost  dup
//	1.1       24.7 s (3,888/s)  9,600        2.8 ms  50 ms   103 ms  5.4 KiB   37.3 s (64.7 s)   2.4 s      0     0
//	22        31.8 s (3,021/s)  9,597        5.8 ms  323 ms  638 ms  5.9 KiB   37.0 s (64.2 s)   2.5 s      0     0
//
// The storm: the same run with --reconnect --drain 30s, --pid naming the
// seven nodes that live (a killed pid cannot be read), and node 3 killed
// 30 s into the publishing:
//
//	until grep -q publishing $D/progress; do sleep 0.5; done; sleep 30; kill -9 $(cat $D/edge-3.pid)
//
// Its 12,000 subscribers reconnect to the other seven with their cursors;
// publishes that went to it are retried through another node with their
// Idempotency-Key. "All back" is the time from the first connection loss
// until the last of them was ready again; "refused" the 429s of
// --resume-rate (default 2000/s per node) they met; "p99 undisturbed" the
// p99 of every delivery to the other 84,000 (and to the 12,000 before
// the kill; a reconnect count above 12,000 means a few others lost their
// connection too, and came back). Every run: 576,000 of 576,000
// delivered, 0 lost, 0 duplicated, 0 gaps, 0 publish errors, no
// subscriber still down.
//
//	transport  edge flags         load avg  reconnects  refused  all back  p99 undisturbed  p99 all   Redis CPU
//	ws         (defaults)         26        12,000      0        5.5 s     1,476 ms         1,862 ms  3.4 s
//	ws         (defaults)         17        12,000      2        8.8 s     864 ms           1,510 ms  3.4 s
//	ws         (defaults)         15        12,002      0        4.6 s     466 ms           587 ms    3.5 s
//	ws         --resume-rate 500  19        12,000      384      8.9 s     1,023 ms         1,225 ms  2.9 s
//	mix        (defaults)         16        12,008      200      14.5 s    1,493 ms         1,845 ms  9.1 s
//
// Nothing is lost or repeated, and the other nodes do not fall over, but on
// two cores the flood is felt by everyone: 12,000 WebSocket handshakes and
// resumes (history reads), and the workers' side of them, take the
// machine for seconds, and the other subscribers' deliveries wait in the
// same queues (their p99 0.5–1.5 s against 50–320 ms without the kill).
// Their first tries are spread over one second and the kernel dropped no
// connection (TcpExtListenOverflows stayed 0; the survivors held all
// 96,000 sockets 5 s after the kill), so the rest of "all back" is that
// saturation: the time until each resume was read and answered. A lower
// --resume-rate turns some of it into 429s, which the clients wait out. With mix, a third of the subscribers long-poll, and
// each poll reads the stream: Redis does four times the work.
//
// # The fleet through a failover, a resharding and a dead master
//
// The same run, with the edge of commit c179844 (issue 17's cluster
// following merged) and this edge-bench (8 fresh nodes each time, on the
// one cluster, which the faults leave whole), with --reconnect --drain
// 30s, and 30 s into the publishing one of: a failover of master 7001
// (its replica 7004 here; the next run fails it back),
//
//	until grep -q publishing $D/progress; do sleep 0.5; done; sleep 30
//	redis-cli -p 7004 CLUSTER FAILOVER
//
// a resharding of 1,000 slots from 7001 to 7002 (the next runs move
// 1,000 back, and 1,000 from 7003 to 7001),
//
//	redis-cli --cluster reshard 127.0.0.1:7001 --cluster-from $(redis-cli -p 7001 CLUSTER MYID) \
//	    --cluster-to $(redis-cli -p 7002 CLUSTER MYID) --cluster-slots 1000 --cluster-yes
//
// or a kill -9 of master 7001, whose replica takes over after the
// cluster-node-timeout (15 s, the default) — it is then restarted with
// its first command, and rejoins as a replica:
//
//	kill -9 $(cat $D/redis-7001.pid)
//
// "Took" is the fault's time: until the replica's ROLE said master, or
// redis-cli's reshard returned. "Relays followed" is when the last of the
// 8 nodes relayed the moved channels from their new master (its log line
// "channels' slots moved to other masters"), after the fault began.
// Redis CPU as above (not for a kill, whose redis-server restarts);
// publish retries were counted from the third failover on.
//
//	fault                    load avg  took    relays followed   published (errors, retries)  delivered/expected   p50      p99       p99.9     RSS/conn  Redis CPU
//	failover 7001→7004       8.7       0.20 s  0.12 s            6,000 (0, –)                 576,000 / 576,000    2.6 ms   29 ms     111 ms    5.8 KiB   3.0 s
//	failover 7004→7001       12.8      0.08 s  0.42 s            6,000 (0, –)                 576,000 / 576,000    3.6 ms   134 ms    289 ms    5.5 KiB   3.3 s
//	failover 7004→7001       9.0       0.13 s  0.13 s            6,000 (0, 0)                 576,000 / 576,000    3.4 ms   166 ms    348 ms    5.5 KiB   3.1 s
//	reshard 7001→7002        11.8      4.57 s  4.62 s            6,000 (0, 0)                 576,000 / 576,000    2.9 ms   114 ms    256 ms    6.0 KiB   4.4 s
//	reshard 7002→7001        15.3      3.66 s  3.74 s            6,000 (0, 0)                 576,000 / 576,000    3.3 ms   247 ms    520 ms    5.7 KiB   4.0 s
//	reshard 7003→7001        15.4      4.90 s  4.93 s            6,000 (0, 0)                 576,000 / 576,000    4.4 ms   315 ms    533 ms    5.7 KiB   4.3 s
//	kill -9 7001             17.9      19.1 s  19.6 s            5,968 (32, 929)              572,928 / 572,928    20 ms    512 ms    3,657 ms  5.6 KiB   –
//	kill -9 7004             9.4       19.1 s  21.5 s            5,968 (32, 1,041)            572,928 / 572,928    3.3 ms   2,550 ms  7,449 ms  6.2 KiB   –
//	kill -9 7001, 400 p.     7.4       21.5 s  23.2 s            5,424 (576, 15,095)          520,704 / 520,704    2.7 ms   4,496 ms  5,972 ms  5.5 KiB   –
//
// Every run: 0 lost, 0 duplicated, 0 gaps, no subscriber disconnected
// (the faults are behind the nodes: the relay follows them, the clients
// see nothing but latency). The failed-over or resharded channels' edge
// logs show the relay's connection to the old master end ("redis relay
// connection lost … its slot moved to another master", or on a
// resharding "MOVED" when it resubscribed before its client had learnt
// the new layout) and the channels handed to the new master, which the
// relay subscribes and fills from the stream after the last id it
// delivered. A failover is over in a tenth of a second, a resharding when
// its last slot has moved; no publish failed or needed another node:
// the edge's Redis client follows MOVED and ASK by itself. A resharding
// costs the relay more than it needs: each moved slot that holds a
// channel a node relays ends that node's whole connection to the old
// master, which then resubscribes and fills every channel it still
// relays from there — 5–14 reconnects per node in each resharding, for
// the 4–10 of its 125 channels that moved. Cheap at this size; with
// thousands of channels per master, a resharding would read each of their
// streams once per moved slot.
//
// A kill -9 is different: for the ~19 s until the replica is promoted,
// the edge answers a publish to the dead master's third of the channels
// with 503 (after ~0.1 s: its Redis client dials the dead master), and
// edge-bench tries it on every node three times (about 7 s) before it
// counts as an error, which is not expected anywhere, so it is not lost:
// "lost" counts only acknowledged messages that a subscriber never got.
// An acknowledged message that the dead master had not yet sent to its
// replica would be lost from the stream (Redis replicates
// asynchronously): a node that had relayed it finds it gone when it fills
// the channel from the new master, records the loss in the stream, and
// closes the channel's sessions, whose clients resume and get a gap; a
// subscriber that never got it would count it lost. None of the three
// runs had one (0 gaps, no "were lost before this node could relay them"
// in any log): on loopback the replica was never behind. With the
// default 16 publishers, all of them were soon busy retrying the dead
// master's messages, so the publishing of every channel stalled until the
// promotion and the backlog went out after it (32 errors: 16 publishers
// × two 7-s rounds), and as latency counts from a message's first
// try (not from when it was due), the stall is hidden from it. With
// --publishers 400 every message is tried when due: 576 of the ~710
// messages due for the dead master's channels in the 21.5 s failed, the
// last few seconds' were stored after the promotion (p99 4.5 s), and the
// other channels' went on (p50 2.7 ms). The relays
// follow the promotion 0.5–2.4 s late: they redial the dead master with a
// backoff of up to 2 s, and learn the new layout when a redial fails.
//
// Afterwards: kill $(cat $D/edge-*.pid) $(cat $D/redis-*.pid).
package main
