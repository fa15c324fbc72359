// Command edge-bench is the load tool of the edge: it opens many
// subscribers against a running edge, publishes at a fixed rate with
// payloads that carry a sequence number and their send time, and reports
// what arrived — delivered messages/s, publish→deliver latency, lost and
// duplicated messages, the connection ramp, and (given the edge's pid) the
// edge's memory per connection and CPU per million deliveries. Its baseline
// mode measures a plain TCP fan-out on the same machine, so edge results can
// be read as a fraction of what loopback can do.
//
// Usage:
//
//	edge-bench run [flags]       load a running edge
//	edge-bench baseline [flags]  plain TCP fan-out in this process
//
// # run
//
//	edge-bench run --url http://127.0.0.1:8080 --transport ws|sse|poll|mix \
//	    --subs N --channels C --rate R --size BYTES --duration D \
//	    [--ramp-batch 500] [--publish http|redis --redis redis://127.0.0.1:6379] \
//	    [--publishers 16] [--drain 5s] [--pid PID] \
//	    [--sources 127.0.0.2,127.0.0.3,...] [--workers K] [--json]
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
// must run with --redis on the same Redis). Each payload is --size bytes:
// "seq=<n> t=<unix nanoseconds> " padded with 'x', where n counts the
// messages of that channel. Message m is due at start + m/R; a publisher
// that falls behind sends at once, so the achieved rate is reported too.
// Latency is measured from the moment the publisher sent the message.
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
//     publish to the end of the drain, per million deliveries.
//
// A message published to a channel nobody subscribes to is expected
// nowhere. Duplicates are detected in a window of the last 4,096 sequence
// numbers per subscriber: a message delayed past that window would count as
// lost and then duplicated, which the edge's in-order delivery rules out.
// Subscribers that fail to connect are left out of expected and counted as
// connect errors; connections that end during the run (e.g. closed as slow
// consumers) stay in expected, so what they miss counts as lost.
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
// message arrived exactly once, 1 when some were lost or duplicated or the
// run failed, 2 for bad flags.
//
// Every run is bounded: --duration at most 10m, --subs at most 100,000,
// --drain at most 1m. The tool only targets loopback: --url, --redis and
// --sources must name 127.0.0.0/8, ::1 or localhost. Before connecting it
// raises its open-file soft limit to the hard limit (which workers inherit)
// and refuses to start, saying what to change, when a process's sockets
// would not fit — the subscribers plus --publishers in one process, N/K
// subscribers per worker, twice as many sockets for baseline; this machine
// allows 20,000 open files per process, so run --subs 50000 needs
// --workers 3 — or when the subscribers per --sources address would
// outnumber its client ports. The edge needs an open file per subscriber
// too: on this machine one edge process holds fewer than 20,000.
package main
