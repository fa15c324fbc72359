package transports

import (
	"errors"
	"strings"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
)

// Config is the configuration of a Server: its transports, limits, who
// may publish and subscribe, and its drain. The zero value is a valid
// configuration: New fills every zero field with its default (see
// WithDefaults) and refuses a configuration that Validate refuses.
type Config struct {
	// Hub is the configuration of the server's hub. Its zero QueueBytes
	// means 1 MiB, and a queue is never smaller than 2×MaxPayload.
	Hub edge.Config

	// MaxPayload is the largest message payload in bytes, at most
	// edge.MaxPayloadLimit. Zero means edge.DefaultMaxPayload (64 KiB).
	MaxPayload int
	// MaxBatch is the most messages one batch publish (POST
	// /v1/publish/batch) may carry, at most MaxBatchLimit. Zero means
	// 1000.
	MaxBatch int

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
	// PollMemberGrace is how long a long-poll subscriber stays a
	// presence member after a poll's answer, waiting for its next poll
	// (a poll in flight keeps it a member however long it is held): its
	// leave is announced once this passes without one. Zero means 10s.
	PollMemberGrace time.Duration

	// SSERetry is the reconnect delay sent in SSE "retry:". Zero means 2s.
	SSERetry time.Duration

	// Compress says when subscribers' streams and answers are
	// compressed: SSE streams and long-poll answers with gzip where the
	// request's Accept-Encoding allows it, WebSocket messages with
	// permessage-deflate where the client offers it. CompressRequest
	// compresses for a subscribe with compress=1, CompressAlways for
	// every subscribe but one with compress=0, CompressNever for none
	// (compress=1 is then accepted and ignored). Zero means
	// CompressRequest: a compressed connection costs memory (see the
	// package documentation), so compression is opt-in.
	Compress CompressMode

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
	// JWTSecret is the HS256 key of subscriber and publisher tokens. Zero
	// means none.
	JWTSecret string
	// JWTPublicKeys are PEM files of RS256, ES256 and EdDSA public keys.
	// Zero means none.
	JWTPublicKeys []string
	// JWKSURL is where token keys are fetched (and refreshed) from. Zero
	// means none.
	JWKSURL string
	// JWTAudiences, when set, make a token's "aud" claim required: it must
	// name one of them. Zero means "aud" is not read.
	JWTAudiences []string
	// JWTIssuer, when set, makes a token's "iss" claim required and equal
	// to it. Zero means "iss" is not read.
	JWTIssuer string
	// Anonymous lists channel patterns ("public:*") that need no token
	// once a JWT key is configured. Without JWT keys every channel is
	// anonymous.
	Anonymous []string
	// ClientPublish lists channel patterns that WebSocket clients may
	// publish to without a token's publish right. Zero means none.
	ClientPublish []string
	// Presence lists channel patterns ("room:*", the patterns of
	// Anonymous) whose subscriptions are members, listed by GET
	// /v1/presence and announced as joins and leaves to subscribers that
	// ask; it sets Hub.Presence. The broker must implement
	// edge.Presence. Zero means no channel keeps presence.
	Presence []string
	// PresenceMaxMembers bounds the members one GET /v1/presence lists,
	// at most MaxPresenceMembersLimit; the count stays exact. Zero means
	// 1000.
	PresenceMaxMembers int

	// Domains are names of the edge besides loopback ones: a client on
	// loopback that names the edge by one of them (in Host) may publish
	// anonymously like one that names it localhost. Zero means none.
	Domains []string

	// MaxConns bounds connections in all; MaxConnsPerIP those from one
	// client IP. Zero means 100000 and 1000.
	MaxConns, MaxConnsPerIP int
	// SubscribeRate bounds subscribes per second on one client
	// connection: WebSocket subscribe ops, and new SSE or WebSocket
	// streams (HTTP/2 carries many on one connection). Long-polls, paced
	// by their messages, are not counted. Zero means 20.
	SubscribeRate int
	// ResumeRate bounds the subscribes with a cursor (SSE Last-Event-ID
	// or since=, WebSocket since=, a long-poll's since= on a new
	// connection) that the node admits a second, from all clients: over
	// it they are refused with 429 rate_limited and a Retry-After that
	// spreads them, before any history is read. A reconnect flood — the
	// subscribers of a node that died — is so served at this pace;
	// already connected sessions are never affected. Zero means 2000.
	ResumeRate int
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

	// HSTS, when positive, is the max-age of the Strict-Transport-Security
	// header on https answers. Zero means no header.
	HSTS time.Duration

	// DrainTimeout bounds a graceful shutdown. Zero means 10s.
	DrainTimeout time.Duration
	// DrainDelay is how long a stopping server keeps serving, with
	// /readyz answering 503, before it drains: time for a load balancer
	// to take it out so that no new connection meets a closed listener.
	// Zero means none.
	DrainDelay time.Duration
}

// WithDefaults returns c with every zero field set to its default, and
// Hub.QueueBytes raised to 2×MaxPayload when it is smaller.
func (c Config) WithDefaults() Config {
	setDefault(&c.MaxPayload, edge.DefaultMaxPayload)
	setDefault(&c.MaxBatch, 1000)
	setDefault(&c.PresenceMaxMembers, 1000)
	setDefault(&c.MaxConns, 100000)
	setDefault(&c.Hub.MaxPollMembers, c.MaxConns)
	c.Hub = c.Hub.WithDefaults()
	if c.Hub.QueueBytes > 0 && c.Hub.QueueBytes < 2*c.MaxPayload {
		c.Hub.QueueBytes = 2 * c.MaxPayload
	}
	setDefault(&c.Heartbeat, 25*time.Second)
	setDefault(&c.HeartbeatMin, 5*time.Second)
	setDefault(&c.HeartbeatMax, 5*time.Minute)
	setDefault(&c.PollTimeout, 25*time.Second)
	setDefault(&c.PollTimeoutMax, 60*time.Second)
	setDefault(&c.PollLingerMax, 5*time.Second)
	setDefault(&c.PollMemberGrace, 10*time.Second)
	setDefault(&c.SSERetry, 2*time.Second)
	setDefault(&c.Compress, CompressRequest)
	setDefault(&c.BodyTimeout, 30*time.Second)
	setDefault(&c.MaxConnsPerIP, 1000)
	setDefault(&c.SubscribeRate, 20)
	setDefault(&c.ResumeRate, 2000)
	setDefault(&c.ClientPublishRate, 50)
	setDefault(&c.DrainTimeout, 10*time.Second)
	return c
}

// MaxBatchLimit bounds Config.MaxBatch, so that a batch body's bound
// (MaxBatch payloads in base64) stays a number.
const MaxBatchLimit = 100_000

// MaxPresenceMembersLimit bounds Config.PresenceMaxMembers, so that one
// answer stays a few megabytes.
const MaxPresenceMembersLimit = 10_000

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

// Validate reports every problem in c at once, each an *edge.FieldError
// that names the field and the fix. Call it on c.WithDefaults(); New does.
func (c Config) Validate() error {
	errs := edge.InField("Hub", c.Hub.Validate())
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxPayload", c.MaxPayload}, {"MaxBatch", c.MaxBatch},
		{"MaxConns", c.MaxConns}, {"MaxConnsPerIP", c.MaxConnsPerIP},
		{"SubscribeRate", c.SubscribeRate}, {"ResumeRate", c.ResumeRate}, {"PublishRate", c.PublishRate},
		{"ClientPublishRate", c.ClientPublishRate},
	} {
		edge.CheckNotNegative(&errs, f.name, f.v)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"Heartbeat", c.Heartbeat}, {"HeartbeatMin", c.HeartbeatMin}, {"HeartbeatMax", c.HeartbeatMax},
		{"PollTimeout", c.PollTimeout}, {"PollTimeoutMax", c.PollTimeoutMax}, {"PollLingerMax", c.PollLingerMax},
		{"PollMemberGrace", c.PollMemberGrace},
		{"SSERetry", c.SSERetry}, {"BodyTimeout", c.BodyTimeout}, {"HSTS", c.HSTS},
		{"DrainTimeout", c.DrainTimeout}, {"DrainDelay", c.DrainDelay},
	} {
		edge.CheckNotNegative(&errs, f.name, f.v)
	}
	edge.CheckMaxPayload(&errs, "MaxPayload", c.MaxPayload)
	validateCompress(&errs, c.Compress)
	if c.MaxBatch > MaxBatchLimit {
		errs = append(errs, edge.Invalid("MaxBatch", "%d is over %d; a backend with more sends several batches", c.MaxBatch, MaxBatchLimit))
	}
	edge.CheckNotNegative(&errs, "PresenceMaxMembers", c.PresenceMaxMembers)
	if c.PresenceMaxMembers > MaxPresenceMembersLimit {
		errs = append(errs, edge.Invalid("PresenceMaxMembers", "%d is over %d; the count of a channel's members is exact whatever the bound", c.PresenceMaxMembers, MaxPresenceMembersLimit))
	}
	for _, p := range c.Presence {
		if err := auth.ValidatePattern(p); err != nil {
			errs = append(errs, edge.Invalid("Presence", "%s", strings.TrimPrefix(err.Error(), "auth: ")))
		}
	}
	if c.HeartbeatMin > c.HeartbeatMax {
		errs = append(errs, edge.Invalid("HeartbeatMin", "%v is over %s (%v); lower it or raise %[2]s",
			c.HeartbeatMin, edge.FieldRef("HeartbeatMax"), c.HeartbeatMax))
	}
	if c.PollTimeout > c.PollTimeoutMax {
		errs = append(errs, edge.Invalid("PollTimeout", "%v is over %s (%v); lower it or raise %[2]s",
			c.PollTimeout, edge.FieldRef("PollTimeoutMax"), c.PollTimeoutMax))
	}
	if !c.TokensEnabled() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"Anonymous", len(c.Anonymous) > 0}, {"JWTAudiences", len(c.JWTAudiences) > 0}, {"JWTIssuer", c.JWTIssuer != ""}} {
			if f.set {
				errs = append(errs, edge.Invalid(f.name,
					"only matters with a JWT key (%s, %s or %s); without one no token is read and every channel is anonymous",
					edge.FieldRef("JWTSecret"), edge.FieldRef("JWTPublicKeys"), edge.FieldRef("JWKSURL")))
			}
		}
	}
	return errors.Join(errs...)
}
