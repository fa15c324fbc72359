package main

import (
	"flag"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	defaults := config{
		Listen:         "127.0.0.1:8080",
		HistorySize:    1000,
		HistoryTTL:     time.Hour,
		HistoryMemory:  256 << 20,
		MaxPayload:     64 << 10,
		MaxBatch:       1000,
		MaxChannels:    64,
		QueueBytes:     1 << 20,
		Heartbeat:      25 * time.Second,
		PollTimeout:    25 * time.Second,
		PollTimeoutMax: 60 * time.Second,
		PollLingerMax:  5 * time.Second,
		SSERetry:       2 * time.Second,
		BodyTimeout:    30 * time.Second,
		Compress:       "request",
		DrainTimeout:   10 * time.Second,
		MaxConns:       100000,
		MaxConnsPerIP:  1000,
		SubscribeRate:  20,
		ResumeRate:     2000,
		OnDemandRate:   10,
		LogFormat:      "text",
		LogLevel:       "info",

		ClientPublishRate: 50,
		IdempotencyWindow: 10 * time.Minute,

		PresenceMaxMembers: 1000,
	}
	explicit := config{
		Listen:         "0.0.0.0:9000",
		HistorySize:    7,
		HistoryTTL:     time.Minute,
		HistoryMemory:  1 << 20,
		MaxPayload:     1024,
		MaxBatch:       10,
		MaxChannels:    2,
		QueueBytes:     4096,
		Heartbeat:      time.Minute,
		PollTimeout:    10 * time.Second,
		PollTimeoutMax: 20 * time.Second,
		PollLingerMax:  time.Second,
		SSERetry:       time.Second,
		BodyTimeout:    time.Minute,
		Compress:       "never",
		PublishKeys:    []string{"k"},
		CORSOrigin:     "https://app.example",
		DrainTimeout:   time.Minute,
		MaxConns:       10,
		MaxConnsPerIP:  5,
		SubscribeRate:  3,
		ResumeRate:     5,
		PublishRate:    4,
		OnDemandRate:   3,
		LogFormat:      "json",
		LogLevel:       "debug",

		ClientPublishRate: 6,
		IdempotencyWindow: time.Second,

		PresenceMaxMembers: 9,
	}
	with := func(c config, f func(*config)) config { f(&c); return c }
	tests := []struct {
		name string
		in   config
		want config
	}{
		{"zero value", config{}, defaults},
		{"explicit values are kept", explicit, explicit},
		{"default queue raised to twice the payload",
			config{MaxPayload: 1 << 20},
			with(defaults, func(c *config) { c.MaxPayload, c.QueueBytes = 1<<20, 2<<20 })},
		{"small queue raised to twice the payload",
			config{MaxPayload: 1024, QueueBytes: 100},
			with(defaults, func(c *config) { c.MaxPayload, c.QueueBytes = 1024, 2048 })},
		{"queue of exactly twice the payload kept",
			config{MaxPayload: 1024, QueueBytes: 2048},
			with(defaults, func(c *config) { c.MaxPayload, c.QueueBytes = 1024, 2048 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("withDefaults =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := got.validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
			if again := got.withDefaults(); !reflect.DeepEqual(again, got) {
				t.Errorf("withDefaults is not idempotent: %+v", again)
			}
		})
	}
}

// Every check, of a layer or of the command's own, reports its problem
// under the flag at fault, naming the other settings it mentions as flags
// too; a problem two layers share is reported once.
func TestValidate(t *testing.T) {
	neg := -time.Second
	tests := []struct {
		name  string
		edit  func(*config)
		wants []string // each must start one of the joined errors
	}{
		{"defaults", func(*config) {}, nil},

		// The command's own settings.
		{"bad listen", func(c *config) { c.Listen = "8080" }, []string{`listen: "8080" is not host:port`}},
		{"bad log-format", func(c *config) { c.LogFormat = "xml" }, []string{`log-format: "xml"; use text or json`}},
		{"bad log-level", func(c *config) { c.LogLevel = "loud" }, []string{`log-level: "loud"; use debug`}},
		{"redis-cluster without redis", func(c *config) { c.RedisCluster = true }, []string{"redis-cluster: needs --redis"}},
		{"redis-sentinel-master without redis", func(c *config) { c.RedisSentinelMaster = "m" }, []string{"redis-sentinel-master: needs --redis"}},
		{"ingest without redis", func(c *config) { c.Ingest = "news.*" }, []string{"ingest: relaying plain PUBLISH traffic needs --redis"}},

		// The stores.
		{"negative history-size", func(c *config) { c.HistorySize = -1 }, []string{"history-size: -1 is negative"}},
		{"negative history-memory", func(c *config) { c.HistoryMemory = -1 }, []string{"history-memory: -1 is negative"}},
		{"negative history-ttl", func(c *config) { c.HistoryTTL = neg }, []string{"history-ttl: -1s is negative"}},
		{"sentinel and cluster", func(c *config) { c.Redis, c.RedisCluster, c.RedisSentinelMaster = "redis://a:1", true, "m" },
			[]string{"redis-sentinel-master: Sentinels and a Redis Cluster (--redis-cluster) exclude each other"}},

		// The server and its hub.
		{"negative max-channels", func(c *config) { c.MaxChannels = -1 }, []string{"max-channels: -1 is negative"}},
		{"negative queue-bytes", func(c *config) { c.QueueBytes = -1 }, []string{"queue-bytes: -1 is negative"}},
		{"negative max-payload", func(c *config) { c.MaxPayload = -1 }, []string{"max-payload: -1 is negative"}},
		{"negative heartbeat", func(c *config) { c.Heartbeat = neg }, []string{"heartbeat: -1s is negative"}},
		{"negative poll-timeout", func(c *config) { c.PollTimeout = neg }, []string{"poll-timeout: -1s is negative"}},
		{"negative poll-timeout-max", func(c *config) { c.PollTimeoutMax = neg },
			[]string{"poll-timeout-max: -1s is negative", "poll-timeout: 25s is over --poll-timeout-max"}},
		{"negative poll-linger-max", func(c *config) { c.PollLingerMax = neg }, []string{"poll-linger-max: -1s is negative"}},
		{"negative sse-retry", func(c *config) { c.SSERetry = neg }, []string{"sse-retry: -1s is negative"}},
		{"negative body-timeout", func(c *config) { c.BodyTimeout = neg }, []string{"body-timeout: -1s is negative"}},
		{"unknown compress", func(c *config) { c.Compress = "gzip" }, []string{`compress: "gzip"; use request, always or never`}},
		{"negative hsts", func(c *config) { c.HSTS = neg }, []string{"hsts: -1s is negative"}},
		{"negative drain-timeout", func(c *config) { c.DrainTimeout = neg }, []string{"drain-timeout: -1s is negative"}},
		{"negative drain-delay", func(c *config) { c.DrainDelay = neg }, []string{"drain-delay: -1s is negative"}},
		{"negative max-conns", func(c *config) { c.MaxConns = -1 }, []string{"max-conns: -1 is negative"}},
		{"negative max-conns-per-ip", func(c *config) { c.MaxConnsPerIP = -1 }, []string{"max-conns-per-ip: -1 is negative"}},
		{"negative subscribe-rate", func(c *config) { c.SubscribeRate = -1 }, []string{"subscribe-rate: -1 is negative"}},
		{"negative resume-rate", func(c *config) { c.ResumeRate = -1 }, []string{"resume-rate: -1 is negative"}},
		{"negative publish-rate", func(c *config) { c.PublishRate = -1 }, []string{"publish-rate: -1 is negative"}},
		{"negative client-publish-rate", func(c *config) { c.ClientPublishRate = -1 }, []string{"client-publish-rate: -1 is negative"}},
		{"max-payload over 16 MiB, reported once with Redis", func(c *config) { c.Redis, c.MaxPayload, c.QueueBytes = "redis://a:1", 32<<20, 64<<20 },
			[]string{"max-payload: 33554432 bytes is over the limit"}},
		{"poll-timeout over its max", func(c *config) { c.PollTimeout = 2 * time.Minute },
			[]string{"poll-timeout: 2m0s is over --poll-timeout-max (1m0s); lower it or raise --poll-timeout-max"}},
		{"token settings without a JWT key", func(c *config) {
			c.Anonymous, c.JWTAudiences, c.JWTIssuer = []string{"public:*"}, []string{"edge"}, "https://id.example"
		}, []string{
			"anonymous: only matters with a JWT key (--jwt-secret, --jwt-public-key or --jwks-url)",
			"jwt-audience: only matters with a JWT key", "jwt-issuer: only matters with a JWT key",
		}},

		// TLS.
		{"unknown tls mode", func(c *config) { c.TLS = "on" }, []string{`tls: "on" is not a mode; use off, self-signed, files or acme`}},
		{"files without a key", func(c *config) { c.TLS, c.CertFile = "files", "c.pem" }, []string{`tls: "files" needs --cert and --key`}},
		{"acme without names", func(c *config) { c.TLS = "acme" }, []string{`tls: "acme" needs --domain (at least one name) or --on-demand`}},
		{"cert and key without files", func(c *config) { c.TLS, c.CertFile, c.KeyFile = "self-signed", "c.pem", "k.pem" },
			[]string{`cert: only used when --tls is "files"`, `key: only used when --tls is "files"`}},
		{"on-demand without acme or approval", func(c *config) { c.TLS, c.OnDemand = "self-signed", true }, []string{
			`on-demand: only used when --tls is "acme"`, "on-demand: needs --on-demand-allow or --on-demand-ask",
		}},
		{"bad http-listen", func(c *config) { c.TLS, c.HTTPListen = "self-signed", "80" }, []string{`http-listen: "80" is not host:port`}},
		{"http-listen without tls", func(c *config) { c.HTTPListen = ":80" }, []string{"http-listen: only used with TLS (it redirects to https); set --tls"}},
		{"negative on-demand-rate", func(c *config) { c.OnDemandRate = -1 }, []string{"on-demand-rate: -1 is negative"}},

		{"several problems at once", func(c *config) {
			c.Listen = "no port"
			c.HistorySize = -5
			c.HistoryTTL = -time.Minute
			c.MaxPayload, c.QueueBytes = 32<<20, 64<<20
			c.PollTimeout = 2 * time.Minute
		}, []string{"listen:", "history-size:", "history-ttl:", "max-payload:", "poll-timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config{}.withDefaults()
			tt.edit(&c)
			err := c.validate()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Errorf("validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate = nil, want errors naming %v", tt.wants)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("validate returned %T, not an errors.Join", err)
			}
			var starts []string
			for _, e := range joined.Unwrap() {
				starts = append(starts, e.Error())
				if flag, _, _ := strings.Cut(e.Error(), ":"); !isFlag(flag) {
					t.Errorf("problem %q does not start with a flag", e)
				}
			}
			if len(starts) != len(tt.wants) {
				t.Errorf("validate reported %d problems, want %d:\n%v", len(starts), len(tt.wants), err)
			}
			for _, w := range tt.wants {
				if !slices.ContainsFunc(starts, func(s string) bool { return strings.HasPrefix(s, w) }) {
					t.Errorf("no problem starts %q:\n%v", w, err)
				}
			}
		})
	}
}

// isFlag reports whether the command has a flag called name.
func isFlag(name string) bool {
	return newFlagSet(new(config), new(command)).Lookup(name) != nil
}

// layerFlags maps every field of every layer's configuration, and nothing
// else, to a flag of the command or to "" (no flag): a field added to a
// layer fails here until the table says which flag sets it.
func TestLayerFlags(t *testing.T) {
	fields := make(map[string]reflect.Type)
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			switch {
			case !f.IsExported():
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+f.Name+".", f.Type)
			default:
				fields[prefix+f.Name] = f.Type
			}
		}
	}
	for _, l := range (config{}).layers() {
		walk(l.name+".", reflect.TypeOf(l.withDefaults()))
	}
	for _, path := range slices.Sorted(maps.Keys(fields)) {
		name, ok := layerFlags[path]
		switch {
		case !ok:
			t.Errorf("layerFlags has no row for %s; name the flag that sets it, or \"\" for none", path)
		case name != "" && !isFlag(name):
			t.Errorf("layerFlags maps %s to %q, which is not a flag", path, name)
		case name != "" && settingIndex[name] == nil:
			t.Errorf("layerFlags maps %s to %q, which no config field is tagged with", path, name)
		case name != "" && path != "redis.URLs" && !fields[path].ConvertibleTo(reflect.TypeFor[config]().FieldByIndex(settingIndex[name]).Type):
			t.Errorf("%s does not convert to the setting of --%s: withDefaults would not copy its default", path, name)
		}
	}
	for path := range layerFlags {
		if fields[path] == nil {
			t.Errorf("layerFlags has a row for %s, which is not a field of a layer's configuration", path)
		}
	}
}

// Every setting has the flag tag of a flag, and every flag but --config
// and --print-config sets a tagged setting.
func TestSettingTags(t *testing.T) {
	tagged := make(map[string]bool)
	settings := reflect.TypeFor[config]()
	for f := range settings.Fields() {
		tag := f.Tag.Get("flag")
		if !isFlag(tag) {
			t.Errorf("config.%s has flag tag %q, which is not a flag", f.Name, tag)
		}
		tagged[tag] = true
	}
	newFlagSet(new(config), new(command)).VisitAll(func(f *flag.Flag) {
		if !tagged[f.Name] && f.Name != configFlag && f.Name != printConfigFlag {
			t.Errorf("no config field is tagged with flag %q", f.Name)
		}
	})
}
