package transports_test

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/configtest"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

func TestConfigWithDefaults(t *testing.T) {
	defaults := transports.Config{
		Hub:            edge.Config{MaxChannels: 64, QueueBytes: 1 << 20, MaxPollMembers: 100000},
		MaxPayload:     64 << 10,
		MaxBatch:       1000,
		Heartbeat:      25 * time.Second,
		HeartbeatMin:   5 * time.Second,
		HeartbeatMax:   5 * time.Minute,
		PollTimeout:    25 * time.Second,
		PollTimeoutMax: 60 * time.Second,
		PollLingerMax:  5 * time.Second,
		SSERetry:       2 * time.Second,
		BodyTimeout:    30 * time.Second,
		Compress:       transports.CompressRequest,
		MaxConns:       100000,
		MaxConnsPerIP:  1000,
		SubscribeRate:  20,
		ResumeRate:     2000,
		DrainTimeout:   10 * time.Second,

		ClientPublishRate: 50,

		PresenceMaxMembers: 1000,
		PollMemberGrace:    10 * time.Second,
	}
	with := func(f func(*transports.Config)) transports.Config { c := defaults; f(&c); return c }
	tests := []struct {
		name string
		in   transports.Config
		want transports.Config
	}{
		{"zero value", transports.Config{}, defaults},
		{"long-poll members bounded by MaxConns",
			transports.Config{MaxConns: 7},
			with(func(c *transports.Config) { c.MaxConns, c.Hub.MaxPollMembers = 7, 7 })},
		{"default queue raised to twice the payload",
			transports.Config{MaxPayload: 1 << 20},
			with(func(c *transports.Config) { c.MaxPayload, c.Hub.QueueBytes = 1<<20, 2<<20 })},
		{"small queue raised to twice the payload",
			transports.Config{MaxPayload: 1024, Hub: edge.Config{QueueBytes: 100}},
			with(func(c *transports.Config) { c.MaxPayload, c.Hub.QueueBytes = 1024, 2048 })},
		{"queue of exactly twice the payload kept",
			transports.Config{MaxPayload: 1024, Hub: edge.Config{QueueBytes: 2048}},
			with(func(c *transports.Config) { c.MaxPayload, c.Hub.QueueBytes = 1024, 2048 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.WithDefaults()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WithDefaults =\n%+v\nwant\n%+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if again := got.WithDefaults(); !reflect.DeepEqual(again, got) {
				t.Errorf("WithDefaults is not idempotent: %+v", again)
			}
		})
	}
}

// Validate names the fields at fault, never a command-line flag, and
// reports every problem at once; New refuses what Validate refuses.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*transports.Config)
		wants []string // each must start one line of the error
	}{
		{"defaults", func(*transports.Config) {}, nil},
		{"negative hub queue", func(c *transports.Config) { c.Hub.QueueBytes = -1 }, []string{"Hub.QueueBytes: -1 is negative"}},
		{"negative heartbeat", func(c *transports.Config) { c.Heartbeat = -time.Second }, []string{"Heartbeat: -1s is negative"}},
		{"negative rate", func(c *transports.Config) { c.PublishRate = -1 }, []string{"PublishRate: -1 is negative"}},
		{"negative batch", func(c *transports.Config) { c.MaxBatch = -1 }, []string{"MaxBatch: -1 is negative"}},
		{"batch over the limit", func(c *transports.Config) { c.MaxBatch = transports.MaxBatchLimit + 1 }, []string{"MaxBatch: 100001 is over 100000"}},
		{"payload over the limit", func(c *transports.Config) { c.MaxPayload = 32 << 20 }, []string{"MaxPayload: 33554432 bytes is over the limit"}},
		{"inverted heartbeat bounds", func(c *transports.Config) { c.HeartbeatMin, c.HeartbeatMax = time.Hour, time.Minute }, []string{"HeartbeatMin: 1h0m0s is over HeartbeatMax"}},
		{"unknown compress mode", func(c *transports.Config) { c.Compress = "gzip" }, []string{`Compress: "gzip"; use request, always or never`}},
		{"poll timeout over its max", func(c *transports.Config) { c.PollTimeout = 2 * time.Minute }, []string{"PollTimeout: 2m0s is over PollTimeoutMax"}},
		{"token checks without a JWT key", func(c *transports.Config) {
			c.Anonymous, c.JWTAudiences, c.JWTIssuer = []string{"public:*"}, []string{"edge"}, "https://id.example"
		}, []string{"Anonymous: only matters", "JWTAudiences: only matters", "JWTIssuer: only matters"}},
		{"token checks with a JWT key", func(c *transports.Config) {
			c.JWTSecret, c.Anonymous = "a-secret-of-at-least-32-bytes-long", []string{"public:*"}
		}, nil},
		{"every problem at once", func(c *transports.Config) {
			c.Hub.MaxChannels, c.Hub.QueueBytes = -1, -1
			c.DrainDelay = -time.Second
			c.PollTimeout = 2 * time.Minute
		}, []string{"Hub.MaxChannels:", "Hub.QueueBytes:", "DrainDelay:", "PollTimeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transports.Config{}.WithDefaults()
			tt.edit(&c)
			err := c.Validate()
			configtest.WantProblems(t, err, tt.wants)
			_, newErr := transports.New(c, resume.NewMemory(resume.MemoryConfig{}), slog.New(slog.DiscardHandler))
			if (newErr == nil) != (err == nil) || (err != nil && !strings.Contains(newErr.Error(), err.Error())) {
				t.Errorf("New = %v, want Validate's %v", newErr, err)
			}
		})
	}
}
