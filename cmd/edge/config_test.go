package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// filePath stands for the path of the test's config file in args and env.
const filePath = "<file>"

func TestLoadConfig(t *testing.T) {
	// Only getenv counts: the process environment must not leak in.
	t.Setenv("EDGE_LISTEN", "not-a-host-port")

	defaults := config{}.withDefaults()
	with := func(change func(*config)) config {
		var c config
		change(&c)
		return c.withDefaults()
	}

	// every sets each flag to something other than its default.
	every := []struct{ name, value string }{
		{"listen", "0.0.0.0:9000"},
		{"history-size", "500"},
		{"history-ttl", "30m"},
		{"history-memory", "1048576"},
		{"max-payload", "1024"},
		{"max-channels", "8"},
		{"queue-bytes", "4096"},
		{"heartbeat", "10s"},
		{"poll-timeout", "20s"},
		{"poll-timeout-max", "40s"},
		{"poll-linger-max", "2s"},
		{"sse-retry", "3s"},
		{"body-timeout", "45s"},
		{"compress", "always"},
		{"publish-key", "s3cret"},
		{"cors-origin", "https://example.com"},
		{"drain-timeout", "5s"},
		{"drain-delay", "2s"},
		{"tls", "acme"},
		{"domain", "a.example,b.example"},
		{"email", "ops@example.com"},
		{"acme-ca", "https://ca.example/dir"},
		{"acme-ca-roots", "/etc/edge/ca.pem"},
		{"acme-dir", "/var/lib/edge"},
		{"http-listen", ":8081"},
		{"on-demand", "true"},
		{"on-demand-allow", "*.c.example"},
		{"on-demand-ask", "https://api.example/allowed"},
		{"on-demand-rate", "5"},
		{"hsts", "1h"},
		{"insecure-publish", "true"},
		{"jwt-secret", "a-secret-of-at-least-32-bytes-long"},
		{"jwt-public-key", "/etc/edge/jwt.pem"},
		{"jwks-url", "https://id.example/jwks.json"},
		{"jwt-audience", "edge,edge-next"},
		{"jwt-issuer", "https://id.example"},
		{"anonymous", "public:*"},
		{"client-publish", "chat:*"},
		{"presence", "room:*,lobby"},
		{"presence-max-members", "50"},
		{"node-name", "edge-7"},
		{"max-conns", "500"},
		{"max-conns-per-ip", "50"},
		{"subscribe-rate", "5"},
		{"resume-rate", "300"},
		{"publish-rate", "100"},
		{"client-publish-rate", "7"},
		{"log-format", "json"},
		{"log-level", "debug"},
	}
	everyWant := config{
		Listen:         "0.0.0.0:9000",
		HistorySize:    500,
		HistoryTTL:     30 * time.Minute,
		HistoryMemory:  1 << 20,
		MaxPayload:     1024,
		MaxChannels:    8,
		QueueBytes:     4096,
		Heartbeat:      10 * time.Second,
		PollTimeout:    20 * time.Second,
		PollTimeoutMax: 40 * time.Second,
		PollLingerMax:  2 * time.Second,
		SSERetry:       3 * time.Second,
		BodyTimeout:    45 * time.Second,
		Compress:       "always",
		PublishKeys:    []string{"s3cret"},
		CORSOrigin:     "https://example.com",
		DrainTimeout:   5 * time.Second,
		DrainDelay:     2 * time.Second,
		TLS:            "acme",
		Domains:        []string{"a.example", "b.example"},
		Email:          "ops@example.com",
		ACMECA:         "https://ca.example/dir",
		ACMECARoots:    "/etc/edge/ca.pem",
		ACMEDir:        "/var/lib/edge",
		HTTPListen:     ":8081",
		OnDemand:       true,
		OnDemandAllow:  []string{"*.c.example"},
		OnDemandAsk:    "https://api.example/allowed",
		OnDemandRate:   5,
		HSTS:           time.Hour,

		InsecurePublish:   true,
		JWTSecret:         "a-secret-of-at-least-32-bytes-long",
		JWTPublicKeys:     []string{"/etc/edge/jwt.pem"},
		JWKSURL:           "https://id.example/jwks.json",
		JWTAudiences:      []string{"edge", "edge-next"},
		JWTIssuer:         "https://id.example",
		Anonymous:         []string{"public:*"},
		ClientPublish:     []string{"chat:*"},
		MaxConns:          500,
		MaxConnsPerIP:     50,
		SubscribeRate:     5,
		ResumeRate:        300,
		PublishRate:       100,
		ClientPublishRate: 7,
		LogFormat:         "json",
		LogLevel:          "debug",

		Presence:           []string{"room:*", "lobby"},
		PresenceMaxMembers: 50,
		NodeName:           "edge-7",
	}.withDefaults()
	var everyArgs []string
	everyEnv := make(map[string]string)
	for _, f := range every {
		if f.value == "true" { // a boolean flag takes no separate value
			everyArgs = append(everyArgs, "--"+f.name)
		} else {
			everyArgs = append(everyArgs, "--"+f.name, f.value)
		}
		everyEnv["EDGE_"+strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))] = f.value
	}
	// everyFile mixes JSON numbers and strings.
	const everyFile = `{
		"listen": "0.0.0.0:9000",
		"history-size": 500,
		"history-ttl": "30m",
		"history-memory": 1048576,
		"max-payload": "1024",
		"max-channels": 8,
		"queue-bytes": 4096,
		"heartbeat": "10s",
		"poll-timeout": "20s",
		"poll-timeout-max": "40s",
		"poll-linger-max": "2s",
		"sse-retry": "3s",
		"body-timeout": "45s",
		"compress": "always",
		"publish-key": "s3cret",
		"cors-origin": "https://example.com",
		"drain-timeout": "5s",
		"drain-delay": "2s",
		"tls": "acme",
		"domain": "a.example, b.example",
		"email": "ops@example.com",
		"acme-ca": "https://ca.example/dir",
		"acme-ca-roots": "/etc/edge/ca.pem",
		"acme-dir": "/var/lib/edge",
		"http-listen": ":8081",
		"on-demand": true,
		"on-demand-allow": "*.c.example",
		"on-demand-ask": "https://api.example/allowed",
		"on-demand-rate": 5,
		"hsts": "1h",
		"insecure-publish": true,
		"jwt-secret": "a-secret-of-at-least-32-bytes-long",
		"jwt-public-key": "/etc/edge/jwt.pem",
		"jwks-url": "https://id.example/jwks.json",
		"jwt-audience": "edge, edge-next",
		"jwt-issuer": "https://id.example",
		"anonymous": "public:*",
		"client-publish": "chat:*",
		"presence": "room:*, lobby",
		"presence-max-members": 50,
		"node-name": "edge-7",
		"max-conns": 500,
		"max-conns-per-ip": 50,
		"subscribe-rate": 5,
		"resume-rate": 300,
		"publish-rate": 100,
		"client-publish-rate": 7,
		"log-format": "json",
		"log-level": "debug"
	}`

	tests := []struct {
		name string
		args []string
		env  map[string]string
		// file, when not empty, is written to a temporary file whose path
		// replaces filePath in args and env.
		file string
		want config
		// wantErr lists what the error must mention; nil means no error.
		wantErr []string
		// wantIs, when set, must match the error with errors.Is.
		wantIs error
	}{
		{
			name: "defaults",
			want: defaults,
		},
		{
			name: "every flag",
			args: everyArgs,
			want: everyWant,
		},
		{
			name: "single dash and equals",
			args: []string{"-listen=0.0.0.0:1", "-history-size=7"},
			want: with(func(c *config) { c.Listen, c.HistorySize = "0.0.0.0:1", 7 }),
		},
		{
			name: "every env var",
			env:  everyEnv,
			want: everyWant,
		},
		{
			name: "every file key",
			args: []string{"--config", filePath},
			file: everyFile,
			want: everyWant,
		},
		{
			name: "EDGE_CONFIG names the file",
			env:  map[string]string{"EDGE_CONFIG": filePath},
			file: `{"history-size": 42}`,
			want: with(func(c *config) { c.HistorySize = 42 }),
		},
		{
			name: "--config beats EDGE_CONFIG",
			args: []string{"--config", filePath},
			env:  map[string]string{"EDGE_CONFIG": "/nonexistent/edge.json"},
			file: `{"history-size": 42}`,
			want: with(func(c *config) { c.HistorySize = 42 }),
		},
		{
			name: "flag beats env beats file",
			args: []string{"--config", filePath, "--history-size", "1"},
			env:  map[string]string{"EDGE_HISTORY_SIZE": "2", "EDGE_HISTORY_TTL": "2m"},
			file: `{"history-size": 3, "history-ttl": "3m", "max-channels": 3}`,
			want: with(func(c *config) {
				c.HistorySize = 1
				c.HistoryTTL = 2 * time.Minute
				c.MaxChannels = 3
			}),
		},
		{
			name:    "bad log settings",
			args:    []string{"--log-format", "xml", "--log-level", "loud"},
			wantErr: []string{"log-format", "text or json", "log-level", "debug, info, warn or error"},
		},
		{
			name: "repeated and comma-separated --domain",
			args: []string{"--tls", "acme", "--domain", "a.example", "--domain", "b.example, c.example"},
			want: with(func(c *config) { c.TLS, c.Domains = "acme", []string{"a.example", "b.example", "c.example"} }),
		},
		{
			name: "flag beats bad env",
			args: []string{"--heartbeat", "7s"},
			env:  map[string]string{"EDGE_HEARTBEAT": "x"},
			want: with(func(c *config) { c.Heartbeat = 7 * time.Second }),
		},
		{
			name: "empty env var is unset",
			args: []string{"--config", filePath},
			env:  map[string]string{"EDGE_PUBLISH_KEY": ""},
			file: `{"publish-key": "from-file"}`,
			want: with(func(c *config) { c.PublishKeys = []string{"from-file"} }),
		},
		{
			name: "file boolean becomes its text",
			args: []string{"--config", filePath},
			file: `{"publish-key": true}`,
			want: with(func(c *config) { c.PublishKeys = []string{"true"} }),
		},
		{
			name: "empty file object",
			args: []string{"--config", filePath},
			file: `{}`,
			want: defaults,
		},
		{
			name:    "unknown key in file",
			args:    []string{"--config", filePath},
			file:    `{"listen": "127.0.0.1:1", "histroy-size": 5}`,
			wantErr: []string{"edge.json", `unknown key "histroy-size"`},
		},
		{
			name:    "config key in file",
			args:    []string{"--config", filePath},
			file:    `{"config": "other.json"}`,
			wantErr: []string{"edge.json", `key "config"`},
		},
		{
			name:    "malformed JSON",
			args:    []string{"--config", filePath},
			file:    "{\n\"listen\": \"127.0.0.1:1\",\n}",
			wantErr: []string{"edge.json", "line 3"},
		},
		{
			name:    "file is not an object",
			args:    []string{"--config", filePath},
			file:    `["listen"]`,
			wantErr: []string{"edge.json", "want a JSON object"},
		},
		{
			name:    "data after the object",
			args:    []string{"--config", filePath},
			file:    `{"listen": "127.0.0.1:1"} {}`,
			wantErr: []string{"edge.json", "after the JSON object"},
		},
		{
			name:    "file value of the wrong JSON type",
			args:    []string{"--config", filePath},
			file:    `{"listen": null, "history-size": [1]}`,
			wantErr: []string{`"listen"`, "got null", `"history-size"`, "got an array"},
		},
		{
			name:    "bad value in file",
			args:    []string{"--config", filePath},
			file:    `{"history-size": "abc", "history-ttl": 30}`,
			wantErr: []string{"edge.json", `history-size="abc"`, `history-ttl="30"`},
		},
		{
			name:    "missing file",
			args:    []string{"--config", "/nonexistent/edge.json"},
			wantErr: []string{"/nonexistent/edge.json"},
		},
		{
			name:    "bad duration in env",
			env:     map[string]string{"EDGE_HEARTBEAT": "x"},
			wantErr: []string{`EDGE_HEARTBEAT="x"`, "duration"},
		},
		{
			name: "every env and file problem at once",
			args: []string{"--config", filePath},
			env:  map[string]string{"EDGE_POLL_TIMEOUT_MAX": "soon", "EDGE_MAX_PAYLOAD": "99999999999999999999"},
			file: `{"bogus": 1, "drain-timeout": "never"}`,
			wantErr: []string{
				`unknown key "bogus"`,
				`drain-timeout="never"`,
				`EDGE_POLL_TIMEOUT_MAX="soon"`,
				`EDGE_MAX_PAYLOAD="99999999999999999999"`, "out of range",
			},
		},
		{
			name:    "bad int in flag",
			args:    []string{"--history-size", "abc"},
			wantErr: []string{"history-size", `"abc"`},
		},
		{
			name:    "unknown flag",
			args:    []string{"--histroy-size", "5"},
			wantErr: []string{"histroy-size"},
		},
		{
			name:    "positional argument",
			args:    []string{"--listen", "127.0.0.1:1", "serve"},
			wantErr: []string{`unexpected argument "serve"`},
		},
		{
			name:   "--help",
			args:   []string{"--help"},
			wantIs: flag.ErrHelp,
		},
		{
			name:   "-h",
			args:   []string{"-h"},
			wantIs: flag.ErrHelp,
		},
		{
			name:    "validate: poll-timeout over the default max",
			args:    []string{"--poll-timeout", "90s"},
			wantErr: []string{"poll-timeout", "poll-timeout-max"},
		},
		{
			name:    "validate: token checks without a JWT key",
			args:    []string{"--jwt-audience", "edge", "--jwt-issuer", "https://id.example", "--anonymous", "public:*"},
			wantErr: []string{"jwt-audience: only matters with a JWT key", "jwt-issuer: only matters", "anonymous: only matters"},
		},
		{
			name:    "validate: presence",
			args:    []string{"--presence", "room:**x!", "--presence-max-members", "20000", "--node-name", "a node"},
			wantErr: []string{"presence: ", "presence-max-members: 20000 is over 10000", "node-name: "},
		},
		{
			name:    "validate: listen from env",
			env:     map[string]string{"EDGE_LISTEN": "nohost"},
			wantErr: []string{"listen", `"nohost"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "edge.json")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, filePath, path)
			}
			getenv := func(name string) string {
				return strings.ReplaceAll(tt.env[name], filePath, path)
			}

			got, err := loadConfig(args, getenv)

			if tt.wantErr == nil && tt.wantIs == nil {
				if err != nil {
					t.Fatalf("loadConfig(%q) error: %v", args, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("loadConfig(%q) =\n%+v\nwant\n%+v", args, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig(%q) = %+v, want an error", args, got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("loadConfig(%q) error = %v, want %v", args, err, tt.wantIs)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("loadConfig(%q) error = %q, want it to mention %q", args, err, s)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	out := b.String()
	for _, s := range []string{
		"-listen ADDR", "(default 127.0.0.1:8080)",
		"-history-size N", "(default 1000)",
		"-history-ttl DURATION", "(default 1h0m0s)",
		"-history-memory BYTES", "-max-payload BYTES", "-max-channels N",
		"-queue-bytes BYTES", "-heartbeat DURATION", "-poll-timeout DURATION",
		"-poll-timeout-max DURATION", "-poll-linger-max DURATION",
		"-sse-retry DURATION", "-body-timeout DURATION", "(default 30s)", "-publish-key KEY", "-cors-origin ORIGIN",
		"-drain-timeout DURATION", "-config FILE",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("usage does not mention %q:\n%s", s, out)
		}
	}
}
