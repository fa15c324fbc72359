package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	edgetls "github.com/edgeworks/edge/tls"
	"github.com/edgeworks/edge/transports"
)

// defaultListen is where the edge serves when --listen is not set.
const defaultListen = "127.0.0.1:8080"

// config holds every setting of the command, one field per flag; the
// environment and the config file set the same fields. A zero field means
// the default of the layer that uses it. withDefaults fills them in,
// validate checks them in the words of the flags, and the methods below
// build each layer's own configuration from them.
type config struct {
	Listen string // --listen

	Redis               string // --redis: comma-separated URLs
	RedisCluster        bool   // --redis-cluster
	RedisSentinelMaster string // --redis-sentinel-master
	Ingest              string // --ingest

	HistorySize   int           // --history-size
	HistoryTTL    time.Duration // --history-ttl
	HistoryMemory int64         // --history-memory

	MaxPayload  int // --max-payload
	MaxChannels int // --max-channels
	QueueBytes  int // --queue-bytes

	Heartbeat      time.Duration // --heartbeat
	PollTimeout    time.Duration // --poll-timeout
	PollTimeoutMax time.Duration // --poll-timeout-max
	PollLingerMax  time.Duration // --poll-linger-max
	SSERetry       time.Duration // --sse-retry
	BodyTimeout    time.Duration // --body-timeout

	PublishKeys       []string // --publish-key
	InsecurePublish   bool     // --insecure-publish
	JWTSecret         string   // --jwt-secret
	JWTPublicKeys     []string // --jwt-public-key
	JWKSURL           string   // --jwks-url
	JWTAudiences      []string // --jwt-audience
	JWTIssuer         string   // --jwt-issuer
	Anonymous         []string // --anonymous
	ClientPublish     []string // --client-publish
	MaxConns          int      // --max-conns
	MaxConnsPerIP     int      // --max-conns-per-ip
	SubscribeRate     int      // --subscribe-rate
	PublishRate       int      // --publish-rate
	ClientPublishRate int      // --client-publish-rate
	CORSOrigin        string   // --cors-origin

	DrainTimeout time.Duration // --drain-timeout
	DrainDelay   time.Duration // --drain-delay

	TLS               string        // --tls
	CertFile, KeyFile string        // --cert, --key
	Domains           []string      // --domain
	Email             string        // --email
	ACMECA            string        // --acme-ca
	ACMECARoots       string        // --acme-ca-roots
	ACMEDir           string        // --acme-dir
	HTTPListen        string        // --http-listen
	OnDemand          bool          // --on-demand
	OnDemandAllow     []string      // --on-demand-allow
	OnDemandAsk       string        // --on-demand-ask
	OnDemandRate      int           // --on-demand-rate
	HSTS              time.Duration // --hsts

	LogFormat string // --log-format
	LogLevel  string // --log-level
}

// withDefaults returns c with every zero setting set to the default of the
// layer that uses it, as that layer would fill it in.
func (c config) withDefaults() config {
	setDefault(&c.Listen, defaultListen)
	setDefault(&c.LogFormat, "text")
	setDefault(&c.LogLevel, "info")

	m := c.memoryConfig().WithDefaults()
	c.HistorySize, c.HistoryTTL, c.HistoryMemory = m.HistorySize, m.HistoryTTL, m.HistoryMemory

	t := c.transportsConfig().WithDefaults()
	c.MaxChannels, c.QueueBytes, c.MaxPayload = t.Hub.MaxChannels, t.Hub.QueueBytes, t.MaxPayload
	c.Heartbeat, c.PollTimeout, c.PollTimeoutMax, c.PollLingerMax = t.Heartbeat, t.PollTimeout, t.PollTimeoutMax, t.PollLingerMax
	c.SSERetry, c.BodyTimeout, c.DrainTimeout = t.SSERetry, t.BodyTimeout, t.DrainTimeout
	c.MaxConns, c.MaxConnsPerIP = t.MaxConns, t.MaxConnsPerIP
	c.SubscribeRate, c.ClientPublishRate = t.SubscribeRate, t.ClientPublishRate
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// memoryConfig is the configuration of the embedded store.
func (c config) memoryConfig() resume.MemoryConfig {
	return resume.MemoryConfig{HistorySize: c.HistorySize, HistoryTTL: c.HistoryTTL, HistoryMemory: c.HistoryMemory}
}

// redisConfig is the configuration of the Redis store; use it when c.Redis is
// set.
func (c config) redisConfig() resume.RedisConfig {
	var urls []string
	for u := range strings.SplitSeq(c.Redis, ",") {
		urls = append(urls, strings.TrimSpace(u))
	}
	return resume.RedisConfig{
		URLs: urls, Cluster: c.RedisCluster, SentinelMaster: c.RedisSentinelMaster, Ingest: c.Ingest,
		HistorySize: c.HistorySize, HistoryTTL: c.HistoryTTL, MaxPayload: c.MaxPayload,
	}
}

// transportsConfig is the configuration of the HTTP server and its hub.
func (c config) transportsConfig() transports.Config {
	return transports.Config{
		Hub:        edge.Config{MaxChannels: c.MaxChannels, QueueBytes: c.QueueBytes},
		MaxPayload: c.MaxPayload,
		Heartbeat:  c.Heartbeat, PollTimeout: c.PollTimeout, PollTimeoutMax: c.PollTimeoutMax, PollLingerMax: c.PollLingerMax,
		SSERetry: c.SSERetry, BodyTimeout: c.BodyTimeout,
		PublishKeys: c.PublishKeys, InsecurePublish: c.InsecurePublish,
		JWTSecret: c.JWTSecret, JWTPublicKeys: c.JWTPublicKeys, JWKSURL: c.JWKSURL,
		JWTAudiences: c.JWTAudiences, JWTIssuer: c.JWTIssuer,
		Anonymous: c.Anonymous, ClientPublish: c.ClientPublish, Domains: c.Domains,
		MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP,
		SubscribeRate: c.SubscribeRate, PublishRate: c.PublishRate, ClientPublishRate: c.ClientPublishRate,
		CORSOrigin: c.CORSOrigin, HSTS: c.HSTS,
		DrainTimeout: c.DrainTimeout, DrainDelay: c.DrainDelay,
	}
}

// tlsConfig is the configuration of TLS termination, without what needs a
// running store or a file read (Redis, CARoots: see newTerminator).
func (c config) tlsConfig(log *slog.Logger) edgetls.Config {
	return edgetls.Config{
		Mode:          edgetls.Mode(c.TLS),
		Listen:        c.Listen,
		HTTPListen:    c.HTTPListen,
		CertFile:      c.CertFile,
		KeyFile:       c.KeyFile,
		Domains:       c.Domains,
		Email:         c.Email,
		CA:            c.ACMECA,
		StorageDir:    c.ACMEDir,
		OnDemand:      c.OnDemand,
		OnDemandAllow: c.OnDemandAllow,
		OnDemandAsk:   c.OnDemandAsk,
		OnDemandRate:  c.OnDemandRate,
		Log:           log,
	}
}

// tokensEnabled reports whether a JWT key is set (--jwt-secret,
// --jwt-public-key or --jwks-url).
func (c config) tokensEnabled() bool { return c.transportsConfig().TokensEnabled() }

// validate reports every problem in c at once, naming the flag and the
// fix. Call it on c.withDefaults().
func (c config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RedisCluster && c.RedisSentinelMaster != "" {
		bad("redis-sentinel-master: Sentinel and --redis-cluster exclude each other")
	}
	if c.RedisSentinelMaster != "" && c.Redis == "" {
		bad("redis-sentinel-master: needs --redis with the URLs of the Sentinels")
	}
	if c.Ingest != "" && c.Redis == "" {
		bad("ingest: relaying plain PUBLISH traffic needs --redis")
	}
	if c.RedisCluster && c.Redis == "" {
		bad("redis-cluster: needs --redis with the URLs of the cluster's nodes")
	}
	switch c.TLS {
	case "", "off", "self-signed":
	case "files":
		if c.CertFile == "" || c.KeyFile == "" {
			bad("tls: files needs --cert FILE and --key FILE (PEM)")
		}
	case "acme":
		if len(c.Domains) == 0 && !c.OnDemand {
			bad("tls: acme needs --domain NAME (repeat it for several names) or --on-demand")
		}
	default:
		bad("tls: %q is not a mode; use off, self-signed, files or acme", c.TLS)
	}
	if (c.CertFile != "" || c.KeyFile != "") && c.TLS != "files" {
		bad("cert, key: only used with --tls files")
	}
	if c.OnDemand && c.TLS != "acme" {
		bad("on-demand: needs --tls acme")
	}
	if c.OnDemand && len(c.OnDemandAllow) == 0 && c.OnDemandAsk == "" {
		bad("on-demand: needs --on-demand-allow PATTERN or --on-demand-ask URL, or any name could make the edge order certificates")
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			bad("http-listen: %q is not host:port (e.g. :80): %v", c.HTTPListen, err)
		}
		if c.TLS == "" || c.TLS == "off" {
			bad("http-listen: only with TLS (it redirects to https); use --tls")
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format: %q; use text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level: %q; use debug, info, warn or error", c.LogLevel)
	}
	if c.HSTS < 0 || c.OnDemandRate < 0 {
		bad("hsts, on-demand-rate: must be positive, got a negative value")
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"max-conns", c.MaxConns}, {"max-conns-per-ip", c.MaxConnsPerIP}, {"subscribe-rate", c.SubscribeRate}, {"publish-rate", c.PublishRate}, {"client-publish-rate", c.ClientPublishRate}} {
		if p.v < 0 {
			bad("%s: must be positive, got %d", p.name, p.v)
		}
	}
	if !c.tokensEnabled() {
		for _, s := range []struct {
			name string
			set  bool
		}{{"anonymous", len(c.Anonymous) > 0}, {"jwt-audience", len(c.JWTAudiences) > 0}, {"jwt-issuer", c.JWTIssuer != ""}} {
			if s.set {
				bad("%s: only matters with a JWT key (--jwt-secret, --jwt-public-key or --jwks-url); without one no token is read and every channel is anonymous", s.name)
			}
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port (e.g. 127.0.0.1:8080): %v", c.Listen, err)
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"history-size", int64(c.HistorySize)}, {"history-memory", c.HistoryMemory},
		{"max-payload", int64(c.MaxPayload)}, {"max-channels", int64(c.MaxChannels)},
		{"queue-bytes", int64(c.QueueBytes)},
		{"history-ttl", int64(c.HistoryTTL)}, {"heartbeat", int64(c.Heartbeat)},
		{"poll-timeout", int64(c.PollTimeout)}, {"drain-timeout", int64(c.DrainTimeout)}, {"drain-delay", int64(c.DrainDelay)},
		{"sse-retry", int64(c.SSERetry)}, {"body-timeout", int64(c.BodyTimeout)},
		{"poll-timeout-max", int64(c.PollTimeoutMax)},
		{"poll-linger-max", int64(c.PollLingerMax)},
	}
	for _, p := range positive {
		if p.v < 0 {
			bad("%s: must be positive, got a negative value", p.name)
		}
	}
	if c.MaxPayload > edge.MaxPayloadLimit {
		bad("max-payload: %d bytes is over the 16 MiB limit", c.MaxPayload)
	}
	if c.PollTimeout > c.PollTimeoutMax {
		bad("poll-timeout: %v is over poll-timeout-max %v; raise poll-timeout-max or lower poll-timeout", c.PollTimeout, c.PollTimeoutMax)
	}
	return errors.Join(errs...)
}
