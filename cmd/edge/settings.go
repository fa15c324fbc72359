package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/auth"
	"github.com/edgeworks/edge/resume"
	edgetls "github.com/edgeworks/edge/tls"
	"github.com/edgeworks/edge/transports"
)

// defaultListen is where the edge serves when --listen is not set.
const defaultListen = "127.0.0.1:8080"

// config holds every setting of the command, one field per flag, named by
// its flag tag; the environment and the config file set the same fields. A
// zero field means the default of the layer that uses it. withDefaults
// fills them in, validate checks them in the words of the flags, and the
// methods below build each layer's own configuration from them.
type config struct {
	Listen string `flag:"listen"`

	Redis               string `flag:"redis"` // comma-separated URLs
	RedisCluster        bool   `flag:"redis-cluster"`
	RedisSentinelMaster string `flag:"redis-sentinel-master"`
	Ingest              string `flag:"ingest"`

	HistorySize   int           `flag:"history-size"`
	HistoryTTL    time.Duration `flag:"history-ttl"`
	HistoryMemory int64         `flag:"history-memory"`

	IdempotencyWindow time.Duration `flag:"idempotency-window"`

	MaxPayload  int `flag:"max-payload"`
	MaxBatch    int `flag:"max-batch"`
	MaxChannels int `flag:"max-channels"`
	QueueBytes  int `flag:"queue-bytes"`

	Heartbeat      time.Duration `flag:"heartbeat"`
	PollTimeout    time.Duration `flag:"poll-timeout"`
	PollTimeoutMax time.Duration `flag:"poll-timeout-max"`
	PollLingerMax  time.Duration `flag:"poll-linger-max"`
	SSERetry       time.Duration `flag:"sse-retry"`
	BodyTimeout    time.Duration `flag:"body-timeout"`
	Compress       string        `flag:"compress"`

	PublishKeys       []string `flag:"publish-key"`
	InsecurePublish   bool     `flag:"insecure-publish"`
	JWTSecret         string   `flag:"jwt-secret"`
	JWTPublicKeys     []string `flag:"jwt-public-key"`
	JWKSURL           string   `flag:"jwks-url"`
	JWTAudiences      []string `flag:"jwt-audience"`
	JWTIssuer         string   `flag:"jwt-issuer"`
	Anonymous         []string `flag:"anonymous"`
	ClientPublish     []string `flag:"client-publish"`
	MaxConns          int      `flag:"max-conns"`
	MaxConnsPerIP     int      `flag:"max-conns-per-ip"`
	SubscribeRate     int      `flag:"subscribe-rate"`
	ResumeRate        int      `flag:"resume-rate"`
	PublishRate       int      `flag:"publish-rate"`
	ClientPublishRate int      `flag:"client-publish-rate"`
	CORSOrigin        string   `flag:"cors-origin"`

	DrainTimeout time.Duration `flag:"drain-timeout"`
	DrainDelay   time.Duration `flag:"drain-delay"`

	Presence           []string `flag:"presence"`
	PresenceMaxMembers int      `flag:"presence-max-members"`
	NodeName           string   `flag:"node-name"`

	TLS           string        `flag:"tls"`
	CertFile      string        `flag:"cert"`
	KeyFile       string        `flag:"key"`
	Domains       []string      `flag:"domain"`
	Email         string        `flag:"email"`
	ACMECA        string        `flag:"acme-ca"`
	ACMECARoots   string        `flag:"acme-ca-roots"`
	ACMEDir       string        `flag:"acme-dir"`
	HTTPListen    string        `flag:"http-listen"`
	OnDemand      bool          `flag:"on-demand"`
	OnDemandAllow []string      `flag:"on-demand-allow"`
	OnDemandAsk   string        `flag:"on-demand-ask"`
	OnDemandRate  int           `flag:"on-demand-rate"`
	HSTS          time.Duration `flag:"hsts"`

	LogFormat string `flag:"log-format"`
	LogLevel  string `flag:"log-level"`
}

// withDefaults returns c with every zero setting set to the default of the
// layer that uses it, as that layer would fill it in.
func (c config) withDefaults() config {
	setDefault(&c.Listen, defaultListen)
	setDefault(&c.LogFormat, "text")
	setDefault(&c.LogLevel, "info")
	for _, l := range c.layers() {
		c.setFrom(l.name, reflect.ValueOf(l.withDefaults()), "")
	}
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// setFrom sets each setting of c to the field of the layer's
// configuration v that it maps to (see layerFlags), where the field's type
// converts to the setting's: all do but the Redis store's URLs, whose
// default is the command's own (no --redis: the embedded store). path is
// the path of v within the layer's configuration.
func (c *config) setFrom(layer string, v reflect.Value, path string) {
	settings := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		f, p := v.Type().Field(i), path+v.Type().Field(i).Name
		if !f.IsExported() {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			c.setFrom(layer, v.Field(i), p+".")
			continue
		}
		name := layerFlags[layer+"."+p]
		if name == "" {
			continue
		}
		s := settings.FieldByIndex(settingIndex[name])
		if f.Type.ConvertibleTo(s.Type()) {
			s.Set(v.Field(i).Convert(s.Type()))
		}
	}
}

// settingIndex finds the field of config of each flag, by its flag tag.
var settingIndex = func() map[string][]int {
	t := reflect.TypeFor[config]()
	index := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		index[t.Field(i).Tag.Get("flag")] = t.Field(i).Index
	}
	return index
}()

// layer is a configuration that c builds for one layer, by the name that
// prefixes its fields in layerFlags.
type layer struct {
	name         string
	validate     func() error
	withDefaults func() any
}

// layers returns the configurations that c builds: each layer's Validate
// and WithDefaults, by the name of the layer in layerFlags.
func (c config) layers() []layer {
	m, r, t, s := c.memoryConfig(), c.redisConfig(), c.transportsConfig(), c.tlsConfig(nil)
	return []layer{
		{"memory", m.Validate, func() any { return m.WithDefaults() }},
		{"redis", r.Validate, func() any { return r.WithDefaults() }},
		{"transports", t.Validate, func() any { return t.WithDefaults() }},
		{"tls", s.Validate, func() any { return s.WithDefaults() }},
	}
}

// memoryConfig is the configuration of the embedded store.
func (c config) memoryConfig() resume.MemoryConfig {
	return resume.MemoryConfig{
		HistorySize: c.HistorySize, HistoryTTL: c.HistoryTTL, HistoryMemory: c.HistoryMemory,
		IdempotencyWindow: c.IdempotencyWindow,
	}
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
		IdempotencyWindow: c.IdempotencyWindow,
		Presence:          c.presenceMatch(),
	}
}

// presenceMatch reports whether a channel keeps presence (--presence),
// for the Redis store, which must agree with the hub; nil without
// --presence.
func (c config) presenceMatch() func(string) bool {
	if len(c.Presence) == 0 {
		return nil
	}
	patterns := c.Presence
	return func(channel string) bool { return auth.MatchAny(patterns, channel) }
}

// transportsConfig is the configuration of the HTTP server and its hub.
func (c config) transportsConfig() transports.Config {
	return transports.Config{
		Hub:        edge.Config{MaxChannels: c.MaxChannels, QueueBytes: c.QueueBytes, Node: c.NodeName},
		MaxPayload: c.MaxPayload, MaxBatch: c.MaxBatch,
		Heartbeat: c.Heartbeat, PollTimeout: c.PollTimeout, PollTimeoutMax: c.PollTimeoutMax, PollLingerMax: c.PollLingerMax,
		SSERetry: c.SSERetry, BodyTimeout: c.BodyTimeout, Compress: transports.CompressMode(c.Compress),
		PublishKeys: c.PublishKeys, InsecurePublish: c.InsecurePublish,
		JWTSecret: c.JWTSecret, JWTPublicKeys: c.JWTPublicKeys, JWKSURL: c.JWKSURL,
		JWTAudiences: c.JWTAudiences, JWTIssuer: c.JWTIssuer,
		Anonymous: c.Anonymous, ClientPublish: c.ClientPublish, Domains: c.Domains,
		Presence: c.Presence, PresenceMaxMembers: c.PresenceMaxMembers,
		MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP,
		SubscribeRate: c.SubscribeRate, ResumeRate: c.ResumeRate, PublishRate: c.PublishRate, ClientPublishRate: c.ClientPublishRate,
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

// layerFlags names the flag that sets each field of the layers'
// configurations, keyed by the layer's name in layers and the field's path
// as its Validate names it; "" marks a field that no flag sets, left at its
// default. It is the one place where a field meets its flag: validate
// names the layers' problems through it and withDefaults copies the
// layers' defaults back through it.
var layerFlags = map[string]string{
	"memory.HistorySize":       "history-size",
	"memory.HistoryTTL":        "history-ttl",
	"memory.HistoryMemory":     "history-memory",
	"memory.IdempotencyWindow": "idempotency-window",

	"redis.URLs":              "redis",
	"redis.Cluster":           "redis-cluster",
	"redis.SentinelMaster":    "redis-sentinel-master",
	"redis.Ingest":            "ingest",
	"redis.HistorySize":       "history-size",
	"redis.HistoryTTL":        "history-ttl",
	"redis.MaxPayload":        "max-payload",
	"redis.IdempotencyWindow": "idempotency-window",
	"redis.Presence":          "", // --presence's patterns, as the hub's (see presenceMatch)
	"redis.PresenceTTL":       "",

	"transports.Hub.MaxChannels":   "max-channels",
	"transports.Hub.QueueBytes":    "queue-bytes",
	"transports.MaxPayload":        "max-payload",
	"transports.MaxBatch":          "max-batch",
	"transports.Heartbeat":         "heartbeat",
	"transports.HeartbeatMin":      "",
	"transports.HeartbeatMax":      "",
	"transports.PollTimeout":       "poll-timeout",
	"transports.PollTimeoutMax":    "poll-timeout-max",
	"transports.PollLingerMax":     "poll-linger-max",
	"transports.PollMemberGrace":   "", // its default: a test's knob
	"transports.SSERetry":          "sse-retry",
	"transports.BodyTimeout":       "body-timeout",
	"transports.Compress":          "compress",
	"transports.PublishKeys":       "publish-key",
	"transports.InsecurePublish":   "insecure-publish",
	"transports.JWTSecret":         "jwt-secret",
	"transports.JWTPublicKeys":     "jwt-public-key",
	"transports.JWKSURL":           "jwks-url",
	"transports.JWTAudiences":      "jwt-audience",
	"transports.JWTIssuer":         "jwt-issuer",
	"transports.Anonymous":         "anonymous",
	"transports.ClientPublish":     "client-publish",
	"transports.Domains":           "domain",
	"transports.MaxConns":          "max-conns",
	"transports.MaxConnsPerIP":     "max-conns-per-ip",
	"transports.SubscribeRate":     "subscribe-rate",
	"transports.ResumeRate":        "resume-rate",
	"transports.PublishRate":       "publish-rate",
	"transports.ClientPublishRate": "client-publish-rate",
	"transports.CORSOrigin":        "cors-origin",
	"transports.HSTS":              "hsts",
	"transports.DrainTimeout":      "drain-timeout",
	"transports.DrainDelay":        "drain-delay",

	"transports.Hub.Presence":       "", // set from transports.Presence
	"transports.Hub.Node":           "node-name",
	"transports.Hub.MaxPollMembers": "", // --max-conns, as transports sets it
	"transports.Presence":           "presence",
	"transports.PresenceMaxMembers": "presence-max-members",

	"tls.Mode":               "tls",
	"tls.Listen":             "listen",
	"tls.HTTPListen":         "http-listen",
	"tls.CertFile":           "cert",
	"tls.KeyFile":            "key",
	"tls.ReloadInterval":     "",
	"tls.Domains":            "domain",
	"tls.Email":              "email",
	"tls.CA":                 "acme-ca",
	"tls.CARoots":            "", // read from --acme-ca-roots by newTerminator
	"tls.StorageDir":         "acme-dir",
	"tls.Redis":              "", // the client of the Redis store, by newTerminator
	"tls.OnDemand":           "on-demand",
	"tls.OnDemandAllow":      "on-demand-allow",
	"tls.OnDemandAsk":        "on-demand-ask",
	"tls.OnDemandRate":       "on-demand-rate",
	"tls.RenewCheckInterval": "",
	"tls.RenewalWindowRatio": "",
	"tls.Log":                "",
}

// validate reports every problem in c at once, each starting with the
// flag at fault and saying the fix: the problems of the layers'
// configurations, named through layerFlags, and those of the settings that
// no layer owns. Call it on c.withDefaults().
func (c config) validate() error {
	var errs []error
	seen := make(map[string]bool) // two layers may share a field, and so a problem
	for _, l := range c.layers() {
		for _, e := range edge.Problems(l.validate()) {
			e = inFlagWords(l.name, e)
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e)
			}
		}
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RedisSentinelMaster != "" && c.Redis == "" {
		bad("redis-sentinel-master: needs --redis with the URLs of the Sentinels")
	}
	if c.Ingest != "" && c.Redis == "" {
		bad("ingest: relaying plain PUBLISH traffic needs --redis")
	}
	if c.RedisCluster && c.Redis == "" {
		bad("redis-cluster: needs --redis with the URLs of the cluster's nodes")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format: %q; use text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level: %q; use debug, info, warn or error", c.LogLevel)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port (e.g. 127.0.0.1:8080): %w", c.Listen, err)
	}
	return errors.Join(errs...)
}

// inFlagWords returns the problem err of the configuration of the named
// layer as "flag: problem", naming every field by its flag as layerFlags
// does: the field at fault bare, those it refers to as --flag. A field
// without a flag keeps its path; an error that is not an
// *edge.FieldError is returned as it is.
func inFlagWords(layer string, err error) error {
	var fe *edge.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name := func(dashes string) func(path string) string {
		return func(path string) string {
			if f := layerFlags[layer+"."+path]; f != "" {
				return dashes + f
			}
			return path
		}
	}
	return &flagError{flag: name("")(fe.Field), problem: fe.Problem(name("--")), err: fe}
}

// flagError is a layer's problem in the words of the flags.
type flagError struct {
	flag, problem string
	err           *edge.FieldError
}

func (e *flagError) Error() string { return e.flag + ": " + e.problem }

// Unwrap returns the layer's own error.
func (e *flagError) Unwrap() error { return e.err }
