package main

import (
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
		MaxChannels:    64,
		QueueBytes:     1 << 20,
		Heartbeat:      25 * time.Second,
		PollTimeout:    25 * time.Second,
		PollTimeoutMax: 60 * time.Second,
		PollLingerMax:  5 * time.Second,
		SSERetry:       2 * time.Second,
		BodyTimeout:    30 * time.Second,
		DrainTimeout:   10 * time.Second,
		MaxConns:       100000,
		MaxConnsPerIP:  1000,
		SubscribeRate:  20,
		LogFormat:      "text",
		LogLevel:       "info",

		ClientPublishRate: 50,
	}
	explicit := config{
		Listen:         "0.0.0.0:9000",
		HistorySize:    7,
		HistoryTTL:     time.Minute,
		HistoryMemory:  1 << 20,
		MaxPayload:     1024,
		MaxChannels:    2,
		QueueBytes:     4096,
		Heartbeat:      time.Minute,
		PollTimeout:    10 * time.Second,
		PollTimeoutMax: 20 * time.Second,
		PollLingerMax:  time.Second,
		SSERetry:       time.Second,
		BodyTimeout:    time.Minute,
		PublishKeys:    []string{"k"},
		CORSOrigin:     "https://app.example",
		DrainTimeout:   time.Minute,
		MaxConns:       10,
		MaxConnsPerIP:  5,
		SubscribeRate:  3,
		PublishRate:    4,
		LogFormat:      "json",
		LogLevel:       "debug",

		ClientPublishRate: 6,
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

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*config)
		wants []string // each must start one of the joined errors
	}{
		{"defaults", func(*config) {}, nil},
		{"bad listen", func(c *config) { c.Listen = "8080" }, []string{"listen:"}},
		{"negative history-size", func(c *config) { c.HistorySize = -1 }, []string{"history-size:"}},
		{"negative history-memory", func(c *config) { c.HistoryMemory = -1 }, []string{"history-memory:"}},
		{"negative history-ttl", func(c *config) { c.HistoryTTL = -time.Second }, []string{"history-ttl:"}},
		{"negative max-channels", func(c *config) { c.MaxChannels = -1 }, []string{"max-channels:"}},
		{"negative heartbeat", func(c *config) { c.Heartbeat = -time.Second }, []string{"heartbeat:"}},
		{"negative drain-timeout", func(c *config) { c.DrainTimeout = -time.Second }, []string{"drain-timeout:"}},
		{"negative sse-retry", func(c *config) { c.SSERetry = -time.Second }, []string{"sse-retry:"}},
		{"negative body-timeout", func(c *config) { c.BodyTimeout = -time.Second }, []string{"body-timeout:"}},
		{"negative poll-linger-max", func(c *config) { c.PollLingerMax = -time.Second }, []string{"poll-linger-max:"}},
		{"max-payload over 16 MiB", func(c *config) { c.MaxPayload, c.QueueBytes = 32<<20, 64<<20 }, []string{"max-payload:"}},
		{"poll-timeout over its max", func(c *config) { c.PollTimeout = 2 * time.Minute }, []string{"poll-timeout:"}},
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
			}
			if len(starts) != len(tt.wants) {
				t.Errorf("validate reported %d problems, want %d:\n%v", len(starts), len(tt.wants), err)
			}
			for _, w := range tt.wants {
				if !slices.ContainsFunc(starts, func(s string) bool { return strings.HasPrefix(s, w) }) {
					t.Errorf("no problem names %q:\n%v", w, err)
				}
			}
		})
	}
}
