package edge

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the whole configuration of an edge node. The zero value of
// every field means "the default"; WithDefaults fills them in and Validate
// reports every problem at once.
type Config struct {
	// Listen is the address to serve on. Zero means "127.0.0.1:8080".
	Listen string

	// Redis is the URL of the Redis that holds history and relays
	// messages between nodes (redis://host:port[/db]), or with
	// RedisCluster the comma-separated URLs of Redis Cluster nodes. Zero
	// means the embedded single-node store.
	Redis string
	// RedisCluster says that Redis names Redis Cluster nodes. Several
	// URLs without RedisSentinelMaster mean a cluster too.
	RedisCluster bool
	// RedisSentinelMaster, when set, says that Redis names Redis Sentinels
	// (comma-separated URLs) that monitor the master of this name.
	RedisSentinelMaster string
	// Ingest is a Redis channel pattern (PSUBSCRIBE syntax, e.g. "news.*")
	// whose plain PUBLISH messages the edge stores and relays as messages
	// of the channel of the same name. Zero means none. Needs Redis.
	Ingest string

	// HistorySize is how many messages each channel retains. Zero means 1000.
	HistorySize int
	// HistoryTTL is how long a message is retained. Zero means 1h.
	HistoryTTL time.Duration
	// HistoryMemory bounds the bytes of payload the embedded store holds
	// over all channels; past it the oldest messages are trimmed (and a
	// resume into them gets a gap). Zero means 256 MiB.
	HistoryMemory int64

	// MaxPayload is the largest message payload in bytes. Zero means 64 KiB.
	MaxPayload int
	// MaxChannels is how many channels one connection may subscribe to.
	// Zero means 64.
	MaxChannels int
	// QueueBytes bounds what may wait in one connection's outgoing queue;
	// a connection past it is closed as a slow consumer. Zero means 1 MiB
	// (and never less than 2×MaxPayload).
	QueueBytes int

	// Heartbeat is the interval of SSE comments and WebSocket pings. Zero
	// means 25s. Clients may ask for a value between HeartbeatMin and
	// HeartbeatMax (battery).
	Heartbeat time.Duration
	// HeartbeatMin and HeartbeatMax bound a client's heartbeat= request;
	// a value outside them is refused. Zero means 5s and 5m.
	HeartbeatMin, HeartbeatMax time.Duration

	// PollTimeout is how long a long-poll request is held when no message
	// is available. Zero means 25s.
	PollTimeout time.Duration
	// PollTimeoutMax bounds a client's timeout= request; a larger one is
	// refused. Zero means 60s.
	PollTimeoutMax time.Duration
	// PollLingerMax bounds a client's linger= request; a larger one is
	// refused. Zero means 5s.
	PollLingerMax time.Duration

	// SSERetry is the reconnect delay sent in SSE "retry:". Zero means 2s.
	SSERetry time.Duration

	// BodyTimeout is how long a request body (a publish) may bring no
	// byte before it is cut with a 408. Zero means 30s.
	BodyTimeout time.Duration

	// PublishKeys are API keys for publishing: "Authorization: Bearer
	// KEY" with any of them may publish to every channel. Zero means none.
	PublishKeys []string
	// InsecurePublish lets anyone publish without a key or token. Zero
	// means anonymous publishing only from loopback, and only while no
	// publish key is set.
	InsecurePublish bool
	// JWTSecret is the HS256 key of subscriber and publisher tokens.
	JWTSecret string
	// JWTPublicKeys are PEM files of RS256, ES256 and EdDSA public keys.
	JWTPublicKeys []string
	// JWKSURL is where token keys are fetched (and refreshed) from.
	JWKSURL string
	// JWTAudiences, when set, make a token's "aud" claim required: it must
	// name one of them.
	JWTAudiences []string
	// JWTIssuer, when set, makes a token's "iss" claim required and equal
	// to it.
	JWTIssuer string
	// Anonymous lists channel patterns ("public:*") that need no token
	// once a JWT key is configured. Without JWT keys every channel is
	// anonymous.
	Anonymous []string
	// ClientPublish lists channel patterns that WebSocket clients may
	// publish to without a token's publish right.
	ClientPublish []string

	// MaxConns bounds connections in all; MaxConnsPerIP those from one
	// client IP. Zero means 100000 and 1000.
	MaxConns, MaxConnsPerIP int
	// SubscribeRate bounds subscribes per second on one client
	// connection: WebSocket subscribe ops, and new SSE or WebSocket
	// streams (HTTP/2 carries many on one connection). Long-polls, paced
	// by their messages, are not counted. Zero means 20.
	SubscribeRate int
	// PublishRate bounds HTTP publishes per second per publish key,
	// token subject or (anonymous) client IP. Zero means no bound.
	PublishRate int
	// ClientPublishRate bounds publishes per second on one WebSocket
	// connection. Zero means 50.
	ClientPublishRate int

	// CORSOrigin lists the origins (comma-separated, or "*" for any)
	// allowed to use the HTTP endpoints and open WebSockets from a
	// browser page of another origin. Zero means same-origin only.
	CORSOrigin string

	// DrainTimeout bounds a graceful shutdown. Zero means 10s.
	DrainTimeout time.Duration
	// DrainDelay is how long a stopping edge keeps serving, with /readyz
	// answering 503, before it drains: time for a load balancer to take
	// it out so that no new connection meets a closed listener. Zero
	// means none.
	DrainDelay time.Duration

	// TLS is how the edge terminates TLS: "off" (plain HTTP, e.g. behind a
	// load balancer), "self-signed", "files" or "acme". Zero means "off".
	TLS string
	// CertFile and KeyFile are the PEM files of TLS "files".
	CertFile, KeyFile string
	// Domains are the names TLS "acme" obtains certificates for (and
	// extra names of the self-signed certificate).
	Domains []string
	// Email is the ACME account's contact address.
	Email string
	// ACMECA is the ACME directory URL. Zero means Let's Encrypt.
	ACMECA string
	// ACMECARoots is a PEM file of the roots that the ACME CA's own HTTPS
	// endpoint is verified with (a private CA). Zero means the system's.
	ACMECARoots string
	// ACMEDir keeps ACME accounts and certificates on disk when there is
	// no Redis. Zero means certmagic's default directory.
	ACMEDir string
	// HTTPListen is the address of a plain-HTTP server for ACME HTTP-01
	// challenges that redirects everything else to https. Zero means none.
	HTTPListen string
	// OnDemand obtains certificates at the first handshake for names
	// approved by OnDemandAllow or OnDemandAsk.
	OnDemand bool
	// OnDemandAllow lists the names (or "*.suffix" patterns) approved for
	// on-demand certificates.
	OnDemandAllow []string
	// OnDemandAsk is a URL asked GET URL?domain=NAME about other names; a
	// 200 approves.
	OnDemandAsk string
	// OnDemandRate bounds on-demand approvals per minute. Zero means 10.
	OnDemandRate int
	// LogFormat is "text" or "json". Zero means "text".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error". Zero means "info".
	LogLevel string

	// HSTS, when positive, is the max-age of the Strict-Transport-Security
	// header on https answers. Zero means no header.
	HSTS time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Listen, "127.0.0.1:8080")
	setDefault(&c.HistorySize, 1000)
	setDefault(&c.HistoryTTL, time.Hour)
	setDefault(&c.HistoryMemory, 256<<20)
	setDefault(&c.MaxPayload, 64<<10)
	setDefault(&c.MaxChannels, 64)
	setDefault(&c.QueueBytes, 1<<20)
	if c.QueueBytes > 0 && c.QueueBytes < 2*c.MaxPayload {
		c.QueueBytes = 2 * c.MaxPayload
	}
	setDefault(&c.Heartbeat, 25*time.Second)
	setDefault(&c.HeartbeatMin, 5*time.Second)
	setDefault(&c.HeartbeatMax, 5*time.Minute)
	setDefault(&c.PollTimeout, 25*time.Second)
	setDefault(&c.PollTimeoutMax, 60*time.Second)
	setDefault(&c.PollLingerMax, 5*time.Second)
	setDefault(&c.SSERetry, 2*time.Second)
	setDefault(&c.BodyTimeout, 30*time.Second)
	setDefault(&c.LogFormat, "text")
	setDefault(&c.LogLevel, "info")
	setDefault(&c.MaxConns, 100000)
	setDefault(&c.MaxConnsPerIP, 1000)
	setDefault(&c.SubscribeRate, 20)
	setDefault(&c.ClientPublishRate, 50)
	setDefault(&c.DrainTimeout, 10*time.Second)
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// TokensEnabled reports whether a JWT key is configured (a secret, a PEM
// public key or a JWKS URL), so that subscribing needs a token except to
// anonymous channels.
func (c Config) TokensEnabled() bool {
	return c.JWTSecret != "" || len(c.JWTPublicKeys) > 0 || c.JWKSURL != ""
}

// Validate reports every problem in c at once, naming the field and the
// fix. Call it on c.WithDefaults().
func (c Config) Validate() error {
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
	if !c.TokensEnabled() {
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
		{"sse-retry", int64(c.SSERetry)}, {"body-timeout", int64(c.BodyTimeout)}, {"heartbeat-min", int64(c.HeartbeatMin)},
		{"heartbeat-max", int64(c.HeartbeatMax)}, {"poll-timeout-max", int64(c.PollTimeoutMax)},
		{"poll-linger-max", int64(c.PollLingerMax)},
	}
	for _, p := range positive {
		if p.v < 0 {
			bad("%s: must be positive, got a negative value", p.name)
		}
	}
	if c.MaxPayload > 16<<20 {
		bad("max-payload: %d bytes is over the 16 MiB limit", c.MaxPayload)
	}
	if c.HeartbeatMin > c.HeartbeatMax {
		bad("heartbeat: the client bounds are inverted (min %v > max %v)", c.HeartbeatMin, c.HeartbeatMax)
	}
	if c.PollTimeout > c.PollTimeoutMax {
		bad("poll-timeout: %v is over poll-timeout-max %v; raise poll-timeout-max or lower poll-timeout", c.PollTimeout, c.PollTimeoutMax)
	}
	return errors.Join(errs...)
}
