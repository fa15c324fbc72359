package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts the name of the environment variable of every flag:
// --history-size is EDGE_HISTORY_SIZE.
const envPrefix = "EDGE_"

// configFlag is the flag that names the JSON config file. It cannot be set
// from the file itself.
const configFlag = "config"

// printConfigFlag asks for the effective configuration instead of a
// server. Like --config it is a flag only, not a setting.
const printConfigFlag = "print-config"

// command holds what the command line says beyond the configuration.
type command struct {
	configPath  string
	printConfig bool
}

// loadConfig builds the configuration of the node from, highest precedence
// first: the command-line flags in args (without the program name), the
// EDGE_* environment variables read through getenv, the JSON config file
// named by --config or EDGE_CONFIG, and the defaults of the layers.
//
// It returns the configuration with its defaults filled in once validate
// passes. It returns flag.ErrHelp for -h or --help. Every other error names
// the flag, variable or file key at fault and its value; the problems in the
// environment and the config file are reported all at once.
func loadConfig(args []string, getenv func(string) string) (config, error) {
	cfg, _, err := load(args, getenv)
	return cfg, err
}

// load is loadConfig that also returns the command's other flags.
func load(args []string, getenv func(string) string) (config, command, error) {
	var (
		cfg config
		cmd command
	)
	fs := newFlagSet(&cfg, &cmd)
	if err := fs.Parse(args); err != nil {
		return config{}, cmd, err
	}
	if fs.NArg() > 0 {
		return config{}, cmd, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	path := cmd.configPath
	explicit := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !explicit[configFlag] {
		path = getenv(envName(configFlag))
	}

	var errs []error
	var file map[string]string
	if path != "" {
		var err error
		file, err = readConfigFile(path)
		errs = append(errs, err)
	}
	for _, key := range slices.Sorted(maps.Keys(file)) {
		switch {
		case key == configFlag || key == printConfigFlag:
			errs = append(errs, fmt.Errorf("config file %s: key %q is not allowed in a config file", path, key))
		case fs.Lookup(key) == nil:
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q (keys are the flag names, see -help)", path, key))
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFlag || f.Name == printConfigFlag || explicit[f.Name] {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v == "" && f.Name == "redis" {
			env = "EDGE_REDIS_URL" // the name Redis tooling commonly uses
		}
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s=%q: %w", path, f.Name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return config{}, cmd, err
	}

	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return config{}, cmd, err
	}
	return cfg, cmd, nil
}

// usage writes every flag, what it does and its default to w.
func usage(w io.Writer) {
	fs := newFlagSet(new(config), new(command))
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// newFlagSet returns the flags of the edge command. They store into cfg and,
// for --config and --print-config, into cmd; a flag left unset leaves its
// field zero.
// The flag set returns errors instead of exiting and prints nothing.
func newFlagSet(cfg *config, cmd *command) *flag.FlagSet {
	def := config{}.withDefaults()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)

	fs.StringVar(&cfg.Listen, "listen", "",
		fmt.Sprintf("serve on `ADDR` (host:port) (default %s)", def.Listen))
	fs.StringVar(&cfg.Redis, "redis", "",
		"keep history in and relay through the Redis at `URL` (redis://host:port), for a fleet of nodes; with -redis-cluster the comma-separated URLs of cluster nodes; also EDGE_REDIS_URL (default none: the embedded store)")
	fs.StringVar(&cfg.Ingest, "ingest", "",
		"store and relay plain Redis PUBLISH messages on channels matching `PATTERN` (e.g. news.*); one node at a time, elected with a Redis lease (default none)")
	fs.StringVar(&cfg.RedisSentinelMaster, "redis-sentinel-master", "",
		"treat -redis as Redis Sentinels and use the master they know as `NAME` (default none)")
	fs.BoolVar(&cfg.RedisCluster, "redis-cluster", false,
		"treat -redis as the nodes of a Redis Cluster (sharded pub/sub, one relay connection per master); several -redis URLs imply it")

	intVar(fs, &cfg.HistorySize, "history-size",
		fmt.Sprintf("retain the last `N` messages of each channel (default %d)", def.HistorySize))
	durationVar(fs, &cfg.HistoryTTL, "history-ttl",
		fmt.Sprintf("retain messages for `DURATION` (default %v)", def.HistoryTTL))
	int64Var(fs, &cfg.HistoryMemory, "history-memory",
		fmt.Sprintf("hold at most `BYTES` of payload in the embedded history over all channels, trimming the oldest (default %d)", def.HistoryMemory))
	durationVar(fs, &cfg.IdempotencyWindow, "idempotency-window",
		fmt.Sprintf("remember a publish's Idempotency-Key for `DURATION`: a retry within it returns the first id and stores nothing (default %v)", def.IdempotencyWindow))

	intVar(fs, &cfg.MaxPayload, "max-payload",
		fmt.Sprintf("refuse message payloads over `BYTES`, at most 16 MiB (default %d)", def.MaxPayload))
	intVar(fs, &cfg.MaxBatch, "max-batch",
		fmt.Sprintf("refuse a batch publish (POST /v1/publish/batch) of over `N` messages, at most 100000 (default %d)", def.MaxBatch))
	intVar(fs, &cfg.MaxChannels, "max-channels",
		fmt.Sprintf("let one connection subscribe to at most `N` channels (default %d)", def.MaxChannels))
	intVar(fs, &cfg.QueueBytes, "queue-bytes",
		fmt.Sprintf("close a connection as a slow consumer when over `BYTES` wait in its outgoing queue; at least twice -max-payload (default %d)", def.QueueBytes))

	durationVar(fs, &cfg.Heartbeat, "heartbeat",
		fmt.Sprintf("send SSE comments and WebSocket pings every `DURATION` (default %v)", def.Heartbeat))
	durationVar(fs, &cfg.PollTimeout, "poll-timeout",
		fmt.Sprintf("hold a long-poll request with no message for `DURATION`, at most -poll-timeout-max (default %v)", def.PollTimeout))
	durationVar(fs, &cfg.PollTimeoutMax, "poll-timeout-max",
		fmt.Sprintf("refuse a long-poll client's timeout= over `DURATION` with 400 (default %v)", def.PollTimeoutMax))
	durationVar(fs, &cfg.PollLingerMax, "poll-linger-max",
		fmt.Sprintf("refuse a long-poll client's linger= over `DURATION` with 400 (default %v)", def.PollLingerMax))
	durationVar(fs, &cfg.SSERetry, "sse-retry",
		fmt.Sprintf("ask SSE clients to reconnect after `DURATION` (retry:) (default %v)", def.SSERetry))
	fs.StringVar(&cfg.Compress, "compress", "",
		fmt.Sprintf("compress subscribers' streams (gzip for SSE and long-poll where Accept-Encoding allows it, permessage-deflate for WebSocket where offered): `MODE` request (when the subscribe asks with compress=1), always (unless it says compress=0) or never (compress=1 is ignored); a compressed SSE stream keeps about 2.5 KiB more and costs some 10 µs of CPU per delivery (default %s)", def.Compress))
	durationVar(fs, &cfg.BodyTimeout, "body-timeout",
		fmt.Sprintf("cut a request body (a publish) that brings no byte for `DURATION` with 408 (default %v)", def.BodyTimeout))

	listVar(fs, &cfg.PublishKeys, "publish-key",
		"let \"Authorization: Bearer `KEY`\" publish to every channel; repeatable (or comma-separated) for several keys; "+
			"prefer EDGE_PUBLISH_KEY or the config file, as flags show in ps (default none: anonymous publishing from loopback only)")
	fs.BoolVar(&cfg.InsecurePublish, "insecure-publish", false,
		"let anyone publish without a key or token, from anywhere (default off)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "",
		"verify HS256 tokens of subscribers and publishers with `SECRET`; prefer EDGE_JWT_SECRET (default none)")
	listVar(fs, &cfg.JWTPublicKeys, "jwt-public-key",
		"verify RS256, ES256 and EdDSA tokens with the public keys in PEM `FILE`; repeatable (default none)")
	fs.StringVar(&cfg.JWKSURL, "jwks-url", "",
		"verify tokens with the keys at JWKS `URL`, cached and refreshed (default none)")
	listVar(fs, &cfg.JWTAudiences, "jwt-audience",
		"with a JWT key: refuse tokens whose aud claim does not name `AUDIENCE`; repeatable (or comma-separated) to accept any of several (default aud is not read)")
	fs.StringVar(&cfg.JWTIssuer, "jwt-issuer", "",
		"with a JWT key: refuse tokens whose iss claim is not `ISSUER` (default iss is not read)")
	listVar(fs, &cfg.Anonymous, "anonymous",
		"with a JWT key: let channels matching `PATTERN` (e.g. public:*) be subscribed without a token; repeatable")
	listVar(fs, &cfg.ClientPublish, "client-publish",
		"let WebSocket clients publish to channels matching `PATTERN` without a token's publish right; repeatable")
	listVar(fs, &cfg.Presence, "presence",
		"keep presence on channels matching `PATTERN` (e.g. room:*): GET /v1/presence lists their subscribers fleet-wide, and subscribers with presence=1 hear joins and leaves; repeatable (default none)")
	intVar(fs, &cfg.PresenceMaxMembers, "presence-max-members",
		fmt.Sprintf("list at most `N` members in one GET /v1/presence answer, at most 10000; the count stays exact (default %d)", def.PresenceMaxMembers))
	fs.StringVar(&cfg.NodeName, "node-name", "",
		"name this node `NAME` in presence (a member's node, its connection ids' prefix); unique in the fleet, up to 64 bytes of A-Z a-z 0-9 _ - . : @ / (default the host name and a random suffix, new at each start)")
	intVar(fs, &cfg.MaxConns, "max-conns", fmt.Sprintf("accept at most `N` connections in all (default %d)", def.MaxConns))
	intVar(fs, &cfg.MaxConnsPerIP, "max-conns-per-ip", fmt.Sprintf("accept at most `N` connections from one client IP (default %d)", def.MaxConnsPerIP))
	intVar(fs, &cfg.SubscribeRate, "subscribe-rate",
		fmt.Sprintf("allow `N` subscribes a second on one connection (WebSocket subscribe ops, new SSE and WebSocket streams), then refuse with 429 or rate_limited (default %d)", def.SubscribeRate))
	intVar(fs, &cfg.ResumeRate, "resume-rate",
		fmt.Sprintf("admit `N` resuming subscribes (with a cursor: Last-Event-ID or since=; long-polls on a new connection) a second on this node, from all clients, then refuse with 429 rate_limited and a spread Retry-After before reading history, so that a reconnect flood is served at this pace (default %d)", def.ResumeRate))
	intVar(fs, &cfg.PublishRate, "publish-rate",
		"allow `N` HTTP publishes a second per publish key, token subject or anonymous client IP, then answer 429 (default no bound)")
	intVar(fs, &cfg.ClientPublishRate, "client-publish-rate",
		fmt.Sprintf("allow `N` publishes a second on one WebSocket, then answer rate_limited (default %d)", def.ClientPublishRate))
	fs.StringVar(&cfg.CORSOrigin, "cors-origin", "",
		"let browser pages from `ORIGIN` (comma-separated list, or * for any) use the HTTP endpoints and open WebSockets (default same-origin only)")

	durationVar(fs, &cfg.DrainTimeout, "drain-timeout",
		fmt.Sprintf("bound a graceful shutdown to `DURATION` (default %v)", def.DrainTimeout))
	durationVar(fs, &cfg.DrainDelay, "drain-delay",
		"on SIGTERM, keep serving for `DURATION` with /readyz answering 503, so a load balancer takes the node out before it drains (default none)")

	fs.StringVar(&cfg.TLS, "tls", "",
		"terminate TLS: `MODE` off (plain HTTP, e.g. behind a load balancer), self-signed (local development), files (-cert, -key) or acme (-domain, -email) (default off)")
	fs.StringVar(&cfg.CertFile, "cert", "", "with -tls files: the certificate `FILE` (PEM, leaf first), reloaded when it changes")
	fs.StringVar(&cfg.KeyFile, "key", "", "with -tls files: the private key `FILE` (PEM)")
	listVar(fs, &cfg.Domains, "domain",
		"with -tls acme: obtain a certificate for `NAME`; repeat it (or separate with commas) for several names")
	fs.StringVar(&cfg.Email, "email", "", "with -tls acme: the ACME account's contact `ADDR`, for expiry notices")
	fs.StringVar(&cfg.ACMECA, "acme-ca", "",
		"with -tls acme: the ACME directory `URL` (default Let's Encrypt, https://acme-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&cfg.ACMECARoots, "acme-ca-roots", "",
		"with -tls acme: trust the roots in PEM `FILE` for the ACME CA's HTTPS endpoint, for a private CA (default the system's roots)")
	fs.StringVar(&cfg.ACMEDir, "acme-dir", "",
		"with -tls acme and no -redis: keep ACME accounts and certificates in `DIR` (default certmagic's, ~/.local/share/certmagic)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "",
		"with -tls: serve plain HTTP on `ADDR` (e.g. :80) for ACME HTTP-01 challenges, redirecting everything else to https (default none)")
	fs.BoolVar(&cfg.OnDemand, "on-demand", false,
		"with -tls acme: obtain certificates at the first handshake for names that -on-demand-allow or -on-demand-ask approve")
	listVar(fs, &cfg.OnDemandAllow, "on-demand-allow",
		"approve `PATTERN` for on-demand certificates: a name, or *.suffix for one more label; repeatable")
	fs.StringVar(&cfg.OnDemandAsk, "on-demand-ask", "",
		"approve on-demand names that GET `URL`?domain=NAME answers with 200")
	intVar(fs, &cfg.OnDemandRate, "on-demand-rate",
		fmt.Sprintf("approve at most `N` new on-demand names a minute (default %d)", def.OnDemandRate))
	durationVar(fs, &cfg.HSTS, "hsts",
		"with -tls: send Strict-Transport-Security with max-age `DURATION` (e.g. 8760h) (default none)")

	fs.StringVar(&cfg.LogFormat, "log-format", "", "write logs as `FORMAT` text or json (default text)")
	fs.StringVar(&cfg.LogLevel, "log-level", "",
		"log at `LEVEL` debug, info, warn or error; SIGUSR1 switches to debug at run time, SIGUSR2 back (default info)")

	fs.StringVar(&cmd.configPath, configFlag, "",
		"read settings from the JSON object in `FILE`, keyed by flag name; flags and EDGE_* variables override it")
	fs.BoolVar(&cmd.printConfig, printConfigFlag, false,
		"print the effective configuration (flags over EDGE_* variables over the config file over defaults) as JSON, secrets masked, and exit")
	return fs
}

// listVar defines a repeatable flag whose values (each also a
// comma-separated list) append to *p.
func listVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		for v := range strings.SplitSeq(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*p = append(*p, v)
			}
		}
		return nil
	})
}

// intVar defines a flag that stores a base-10 integer in *p.
func intVar(fs *flag.FlagSet, p *int, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		n, err := parseInt(s, strconv.IntSize)
		if err != nil {
			return err
		}
		*p = int(n)
		return nil
	})
}

// int64Var defines a flag that stores a base-10 integer in *p.
func int64Var(fs *flag.FlagSet, p *int64, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		n, err := parseInt(s, 64)
		if err != nil {
			return err
		}
		*p = n
		return nil
	})
}

// durationVar defines a flag that stores a time.ParseDuration value in *p.
func durationVar(fs *flag.FlagSet, p *time.Duration, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 5m: %w", err)
		}
		*p = d
		return nil
	})
}

// parseInt parses s as a base-10 integer that fits in bitSize bits, with
// an error that says what was expected.
func parseInt(s string, bitSize int) (int64, error) {
	n, err := strconv.ParseInt(s, 10, bitSize)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("out of range for a %d-bit integer", bitSize)
	case err != nil:
		return 0, errors.New("want a whole number")
	}
	return n, nil
}

// envName returns the environment variable of the flag called name:
// EDGE_ and the name in upper case with dashes as underscores.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// readConfigFile reads the JSON object in the file at path and returns each
// of its values as the text a flag would take: strings as they are, numbers
// as written, booleans as true or false. It returns what it could convert
// along with every problem it found.
func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			line := 1 + bytes.Count(data[:min(int(syntax.Offset), len(data))], []byte("\n"))
			return nil, fmt.Errorf("config file %s: line %d: %w", path, line, err)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config file %s: unexpected data after the JSON object", path)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config file %s: want a JSON object such as {\"listen\": \"127.0.0.1:8080\"}", path)
	}

	values := make(map[string]string, len(obj))
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		switch v := obj[key].(type) {
		case string:
			values[key] = v
		case json.Number:
			values[key] = v.String()
		case bool:
			values[key] = strconv.FormatBool(v)
		default:
			errs = append(errs, fmt.Errorf("config file %s: %q: want a string, number or boolean, got %s", path, key, jsonKind(v)))
		}
	}
	return values, errors.Join(errs...)
}

// jsonKind names the kind of a decoded JSON value that is not a string,
// number or boolean.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
