package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds of every run.
const (
	maxDuration = 10 * time.Minute
	maxSubs     = 100_000
	maxDrain    = time.Minute
	maxRate     = 1_000_000
	maxBatch    = 1000 // the edge's default --max-batch
	maxSize     = 1 << 20
	maxWorkers  = 64
)

// Bounds and values of the measurement flags.
const (
	minConflate   = 50 * time.Millisecond
	maxConflate   = time.Minute
	maxKeyCount   = 1000 // well inside seqWindow: the last message of each key is checked
	deltaFossil   = "fossil"
	dashboardSize = 1024 // --size of --payload dashboard unless given
)

// Servers a run can load (--target).
const (
	targetEdge       = "edge"
	targetNchan      = "nchan"
	targetCentrifugo = "centrifugo"
)

// Transports a run can use.
const (
	transportWS   = "ws"
	transportSSE  = "sse"
	transportPoll = "poll"
	transportMix  = "mix"
)

// config is one run or baseline. Zero fields are not defaults: parse
// fills them from flags, and validate checks them.
type config struct {
	URLs       []*url.URL // the servers, http://loopback:port: one edge or the nodes of a fleet (run only)
	Target     string     // edge, nchan or centrifugo: the server's wire forms (run only)
	Transport  string     // ws, sse, poll or mix (run only)
	Subs       int        // subscribers
	Channels   int        // channels bench-0 … bench-(Channels-1) (run only)
	Rate       float64    // messages per second, over all channels; 0 with ClosedLoop
	ClosedLoop bool       // --rate max: each publisher sends again once answered (run only)
	Size       int        // payload bytes
	Duration   time.Duration
	RampBatch  int           // subscribers connected at a time
	Drain      time.Duration // wait for stragglers after the last publish
	Publish    string        // http or redis (run only)
	Redis      string        // redis://loopback:port for --publish redis
	Publishers int           // publishing goroutines (run only)
	Batch      int           // messages per publish request: 1, or a batch publish of up to Batch (run only)
	PIDs       []int         // the server's processes, empty for none (run only)
	Sources    []net.IP      // local addresses for client sockets, round-robin
	JSON       bool          // one JSON line instead of the table
	// Reconnect makes subscribers whose connection ends reconnect and
	// resume, and publishers retry through the next node (run only).
	Reconnect bool

	// CentrifugoKey is the server API key of --target centrifugo (run
	// only).
	CentrifugoKey string

	// Workers is how many processes run the subscribers (run only): with
	// 1 this one, with more that many worker processes while this one
	// publishes. WorkerIndex is which of them a worker process is (worker
	// only).
	Workers     int
	WorkerIndex int

	// Payload is the form of each message: plain ("seq=… t=… xxx") or
	// dashboard (a JSON state of about Size bytes, see dashboard.go).
	Payload string
	// WakeGap is how long a subscriber's connection must have been quiet
	// for its next read to count as a wake-up (see meter.go).
	WakeGap time.Duration
	// Conflate, Delta and Compress are subscribe options passed to the
	// edge (--target edge): conflate=Conflate (0: none), delta=Delta ("":
	// none) and compress=1.
	Conflate time.Duration
	Delta    string
	Compress bool
	// KeyCount is how many conflation keys publishes carry, round-robin
	// per channel, as key=k<i>; 0 for none (run only).
	KeyCount int
}

// total returns how many messages the run publishes at its fixed rate.
// A closed-loop run (--rate max) learns that only as it ends: its total
// is not known beforehand and this returns 0.
func (c config) total() int64 { return int64(c.Rate * c.Duration.Seconds()) }

// rateMax is the --rate of a closed loop, in any case ("max", "MAX").
const rateMax = "max"

// rateFlag is --rate: messages/s parsed as flag.Float64Var parses them,
// with the same errors, or "max" in any case for a closed loop.
type rateFlag struct{ c *config }

// String returns the flag's value as -h shows it.
func (f rateFlag) String() string {
	switch {
	case f.c == nil: // flag.PrintDefaults' zero value
		return "0"
	case f.c.ClosedLoop:
		return rateMax
	}
	return strconv.FormatFloat(f.c.Rate, 'g', -1, 64)
}

// Set parses s into the config.
func (f rateFlag) Set(s string) error {
	if strings.EqualFold(s, rateMax) {
		f.c.Rate, f.c.ClosedLoop = 0, true
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// The words of flag.Float64Var's errors.
		if errors.Is(err, strconv.ErrRange) {
			return errors.New("value out of range")
		}
		return errors.New("parse error")
	}
	f.c.Rate, f.c.ClosedLoop = v, false
	return nil
}

// flagSet returns the flags of a subcommand bound to c and to the raw
// strings that validate parses. The hidden subcommand "worker", which a
// run starts in its worker processes, takes run's flags and
// --worker-index.
func flagSet(name string, c *config, rawURL, sources, pids *string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edge-bench "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	if name == "worker" {
		fs.IntVar(&c.WorkerIndex, "worker-index", 0, "which of the --workers processes this is")
	}
	if name == "run" || name == "worker" {
		fs.StringVar(rawURL, "url", "http://127.0.0.1:8080", "the server to load (loopback only), or several separated by commas (the nodes of a fleet): subscriber i connects to URL i mod the number of URLs, and message m is published to URL m mod it")
		fs.StringVar(&c.Target, "target", targetEdge, "the server at --url: edge, nchan (nginx with the Nchan module, as cmd/edge-bench/testdata/nchan.conf configures it) or centrifugo (Centrifugo v6, as cmd/edge-bench/testdata/centrifugo*.json configure it; --transport ws only)")
		fs.StringVar(&c.CentrifugoKey, "centrifugo-api-key", "edge-bench", "the server API key (X-API-Key) of --target centrifugo, its http_api.key")
		fs.StringVar(&c.Transport, "transport", transportWS, "subscriber transport: ws, sse, poll or mix (round-robin)")
		fs.IntVar(&c.Channels, "channels", 1, "channels bench-0 … bench-(C-1); subscribers are spread round-robin")
		fs.StringVar(&c.Publish, "publish", "http", "publish over http (POST /v1/publish) or redis (FCALL edge_publish)")
		fs.StringVar(&c.Redis, "redis", "redis://127.0.0.1:6379", "Redis URL for --publish redis (loopback only)")
		fs.IntVar(&c.Publishers, "publishers", 16, "publishing goroutines (HTTP keep-alive connections); 1 with --conflate")
		fs.IntVar(&c.Batch, "batch", 1, fmt.Sprintf("messages per publish request: more than 1 sends batches (POST /v1/publish/batch) of up to `N` (at most %d), to measure the cost per message", maxBatch))
		fs.StringVar(pids, "pid", "", "the server's process ids, separated by commas or spaces (e.g. nginx's master and workers): report their summed RSS per connection and CPU per million deliveries")
		fs.BoolVar(&c.Reconnect, "reconnect", false, "subscribers whose connection ends reconnect to another --url (at random) with their cursor after a jittered backoff (or the wait the edge advises), as client.js does, instead of counting as ended early; publishes that fail are retried through the next --url with an Idempotency-Key (--target edge, --batch 1)")
		fs.StringVar(&c.Payload, "payload", payloadPlain, "message form: plain (\"seq=… t=… \" padded with x) or dashboard (a JSON object of about --size bytes, 1024 unless given, with about 40 fields of which each update changes a few; --target edge)")
		fs.DurationVar(&c.WakeGap, "wake-gap", 10*time.Millisecond, "a subscriber's read counts as a wake-up when its connection was quiet for at least this long before it (reads closer together are one burst); every long-poll answer counts too")
		fs.DurationVar(&c.Conflate, "conflate", 0, fmt.Sprintf("subscribe with conflate=`D` (%s to %s; --target edge): the edge sends per window only the latest message of each key, so the run checks order, duplicates and that the last message of each key arrived instead of counting skipped ones as lost", minConflate, maxConflate))
		fs.StringVar(&c.Delta, "delta", "", "subscribe with delta=`FORMAT` (fossil; --target edge): delta frames are counted, not applied")
		fs.BoolVar(&c.Compress, "compress", false, "subscribe with compress=1 (--target edge): Accept-Encoding: gzip on sse and poll, permessage-deflate offered on ws; the bytes counted are the compressed ones")
		fs.IntVar(&c.KeyCount, "key-count", 0, fmt.Sprintf("publishes carry the conflation key k0 … k(N-1), round-robin per channel (key= on POST /v1/publish, \"key\" in a batch, the key option of FCALL edge_publish; at most %d; 0 for none; --target edge)", maxKeyCount))
		fs.IntVar(&c.Workers, "workers", 1, fmt.Sprintf("processes that run the subscribers (at most %d); with more than 1 this one only publishes", maxWorkers))
	}
	fs.IntVar(&c.Subs, "subs", 100, fmt.Sprintf("subscribers (at most %d)", maxSubs))
	c.Rate = 100
	rateUsage := "`R`: messages published per second, over all channels"
	if name != "baseline" {
		rateUsage += `; or max: each --publishers goroutine publishes again as soon as its last publish was answered (a closed loop), to measure the server at saturation`
	}
	fs.Var(rateFlag{c}, "rate", rateUsage)
	fs.IntVar(&c.Size, "size", 100, fmt.Sprintf("payload bytes (at least %d)", minSize))
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, fmt.Sprintf("how long to publish (at most %s)", maxDuration))
	fs.IntVar(&c.RampBatch, "ramp-batch", 500, "subscribers connected at a time during the ramp")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, fmt.Sprintf("how long to wait for stragglers after the last publish (at most %s)", maxDrain))
	fs.StringVar(sources, "sources", "127.0.0.1", "comma-separated loopback addresses client sockets bind to, round-robin (about 28,000 sockets each)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON line instead of the table")
	return fs
}

// parseConfig parses the flags of subcommand name ("run", "baseline" or
// "worker").
// It returns flag.ErrHelp for -h, after printing the usage to out.
func parseConfig(name string, args []string, out io.Writer) (config, error) {
	var c config
	var rawURL, sources, pids string
	fs := flagSet(name, &c, &rawURL, &sources, &pids, out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: edge-bench %s [flags]\n\n%s\n\nFlags:\n", name, summaries[name])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if c.Payload == payloadDashboard && !given["size"] {
		c.Size = dashboardSize
	}
	if c.Conflate > 0 && !given["publishers"] {
		c.Publishers = 1 // see checkMeasure
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q; every setting is a flag (see -h)", fs.Arg(0))
	}
	return c, c.finish(name, rawURL, sources, pids)
}

// summaries say what each subcommand does, for -h.
var summaries = map[string]string{
	"run": `Opens --subs subscribers to a running edge over --channels channels, publishes
--rate messages/s (or, with --rate max, each publisher's next as soon as its
last was answered) of --size bytes for --duration, and reports delivered/s,
publish→deliver latency, lost and duplicated messages, the connection ramp
and, with --pid, the edge's RSS per connection and CPU per million deliveries.`,
	"worker": `A worker process of "edge-bench run --workers K", which starts it; it
talks JSON lines to its parent over stdin and stdout. Not for direct use.`,
	"baseline": `Runs a plain TCP fan-out in this process: a server writes each message to
--subs loopback connections with one write per delivery. Reports the same
figures as run, the ceiling edge results can be read against.`,
}

// finish parses the raw flags of subcommand name and checks every
// setting, reporting all problems at once.
func (c *config) finish(name, rawURL, sources, pids string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if name == "run" || name == "worker" {
		c.URLs = nil
		for raw := range strings.SplitSeq(rawURL, ",") {
			raw = strings.TrimSpace(raw)
			u, err := url.Parse(raw)
			switch {
			case err != nil:
				bad("--url %q: %v", raw, err)
			case u.Scheme != "http" || u.Host == "":
				bad("--url %q: give http://HOST:PORT (TLS is not supported)", raw)
			default:
				if err := checkLoopback("--url", u.Hostname()); err != nil {
					errs = append(errs, err)
				}
				c.URLs = append(c.URLs, u)
			}
		}
		switch c.Transport {
		case transportWS, transportSSE, transportPoll, transportMix:
		default:
			bad("--transport %q: use ws, sse, poll or mix", c.Transport)
		}
		switch c.Target {
		case targetEdge:
		case targetNchan:
			if c.Publish != "http" {
				bad("--publish %s: --target nchan publishes over http (POST /pub/<channel>)", c.Publish)
			}
		case targetCentrifugo:
			if c.Publish != "http" {
				bad("--publish %s: --target centrifugo publishes over http (POST /api/publish)", c.Publish)
			}
			if c.Transport != transportWS {
				bad("--transport %s: --target centrifugo subscribes over ws only", c.Transport)
			}
			if c.CentrifugoKey == "" {
				bad("--centrifugo-api-key is empty: give Centrifugo's http_api.key")
			}
		default:
			bad("--target %q: use edge, nchan or centrifugo", c.Target)
		}
		if c.Channels < 1 || c.Channels > maxSubs {
			bad("--channels %d: give 1 to %d", c.Channels, maxSubs)
		}
		switch c.Publish {
		case "http":
		case "redis":
			u, err := url.Parse(c.Redis)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
				bad("--redis %q: give redis://HOST:PORT", c.Redis)
			} else if err := checkLoopback("--redis", u.Hostname()); err != nil {
				errs = append(errs, err)
			}
		default:
			bad("--publish %q: use http or redis", c.Publish)
		}
		if c.Publishers < 1 || c.Publishers > 1024 {
			bad("--publishers %d: give 1 to 1024", c.Publishers)
		}
		switch {
		case c.Batch < 1 || c.Batch > maxBatch:
			bad("--batch %d: give 1 to %d", c.Batch, maxBatch)
		case c.Batch > 1 && (c.Target != targetEdge || c.Publish != "http"):
			bad("--batch %d: batches are the edge's POST /v1/publish/batch (--target edge, --publish http)", c.Batch)
		}
		c.PIDs = nil
		for f := range strings.FieldsFuncSeq(pids, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			pid, err := strconv.Atoi(f)
			switch {
			case err != nil || pid < 0:
				bad("--pid %q: give process ids, separated by commas or spaces", f)
			case pid > 0: // 0 stands for none
				c.PIDs = append(c.PIDs, pid)
			}
		}
		if c.Reconnect && c.Target != targetEdge {
			bad("--reconnect: reconnecting with a cursor is the edge's (--target edge)")
		}
		if c.Reconnect && c.Batch > 1 {
			bad("--reconnect with --batch %d: only single publishes are retried with an Idempotency-Key; use --batch 1", c.Batch)
		}
		c.checkMeasure(bad)
		if c.Workers < 1 || c.Workers > maxWorkers {
			bad("--workers %d: give 1 to %d", c.Workers, maxWorkers)
		} else if c.Workers > c.Subs {
			bad("--workers %d: more processes than --subs %d", c.Workers, c.Subs)
		}
		if c.WorkerIndex < 0 || c.WorkerIndex >= c.Workers {
			bad("--worker-index %d: give 0 to --workers-1", c.WorkerIndex)
		}
	}
	if c.Subs < 1 || c.Subs > maxSubs {
		bad("--subs %d: give 1 to %d", c.Subs, maxSubs)
	}
	switch {
	case c.ClosedLoop && name == "baseline":
		bad("--rate max: baseline fans out at a fixed rate; give messages/s (the closed loop is run's)")
	case c.ClosedLoop:
	case !(c.Rate > 0 && c.Rate <= maxRate):
		bad("--rate %g: give more than 0 and at most %d messages/s", c.Rate, maxRate)
	}
	if c.Size < minSize || c.Size > maxSize {
		bad("--size %d: give %d to %d bytes", c.Size, minSize, maxSize)
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		bad("--duration %s: give more than 0 and at most %s", c.Duration, maxDuration)
	} else if !c.ClosedLoop && c.Rate > 0 && c.total() < 1 {
		bad("--rate %g × --duration %s publishes nothing; raise either", c.Rate, c.Duration)
	}
	if c.RampBatch < 1 {
		bad("--ramp-batch %d: give at least 1", c.RampBatch)
	}
	if c.Drain < 0 || c.Drain > maxDrain {
		bad("--drain %s: give 0 to %s", c.Drain, maxDrain)
	}
	c.Sources = nil
	for s := range strings.SplitSeq(sources, ",") {
		s = strings.TrimSpace(s)
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			bad("--sources: %q is not an IP address", s)
		case !ip.IsLoopback():
			bad("--sources: %s is not a loopback address (127.0.0.0/8 or ::1)", s)
		default:
			c.Sources = append(c.Sources, ip)
		}
	}
	return errors.Join(errs...)
}

// checkMeasure checks the settings of the bytes and wake-ups
// measurements: the payload form, the wake-up gap and the subscribe
// options passed to the edge.
func (c *config) checkMeasure(bad func(format string, args ...any)) {
	switch c.Payload {
	case payloadPlain:
	case payloadDashboard:
		if c.Target != targetEdge {
			bad("--payload dashboard: JSON payloads are measured on the edge (--target edge)")
		}
	default:
		bad("--payload %q: use plain or dashboard", c.Payload)
	}
	if c.WakeGap <= 0 || c.WakeGap > time.Minute {
		bad("--wake-gap %s: give more than 0 and at most 1m", c.WakeGap)
	}
	edgeOnly := func(flagName string) {
		if c.Target != targetEdge {
			bad("%s: a subscribe option of the edge (--target edge)", flagName)
		}
	}
	if c.Conflate != 0 {
		edgeOnly("--conflate")
		if c.Conflate < minConflate || c.Conflate > maxConflate {
			bad("--conflate %s: give %s to %s", c.Conflate, minConflate, maxConflate)
		}
		if c.Reconnect {
			bad("--conflate with --reconnect: a conflated run checks order per connection; drop --reconnect")
		}
		// One publisher stores the messages in the order of their
		// sequence numbers, so that the last of each key is the one the
		// edge must deliver and sequence order is id order.
		if c.Publishers > 1 {
			bad("--conflate with --publishers %d: a conflated run checks the last message of each key, which needs the messages stored in order; use --publishers 1 (the default with --conflate)", c.Publishers)
		}
	}
	switch c.Delta {
	case "":
	case deltaFossil:
		edgeOnly("--delta")
		if c.Conflate != 0 {
			bad("--delta with --conflate: the edge sends a conflated subscriber full messages; measure one of them at a time")
		}
	default:
		bad("--delta %q: use fossil", c.Delta)
	}
	if c.Compress {
		edgeOnly("--compress")
	}
	switch {
	case c.KeyCount < 0 || c.KeyCount > maxKeyCount:
		bad("--key-count %d: give 0 to %d", c.KeyCount, maxKeyCount)
	case c.KeyCount > 0 && c.Target != targetEdge:
		bad("--key-count %d: conflation keys are the edge's (--target edge)", c.KeyCount)
	}
}

// checkLoopback refuses a host that is not localhost or a loopback IP.
func checkLoopback(flagName, host string) error {
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: host %q is not loopback; edge-bench only targets 127.0.0.0/8, ::1 or localhost", flagName, host)
}
