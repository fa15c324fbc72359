package resume_test

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge/configtest"
	"github.com/edgeworks/edge/resume"
)

func TestConfigWithDefaults(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		want := resume.MemoryConfig{HistorySize: 1000, HistoryTTL: time.Hour, HistoryMemory: 256 << 20, IdempotencyWindow: 10 * time.Minute}
		for _, in := range []resume.MemoryConfig{{}, want} {
			if got := in.WithDefaults(); got != want {
				t.Errorf("%+v.WithDefaults() = %+v, want %+v", in, got, want)
			}
		}
		explicit := resume.MemoryConfig{HistorySize: 7, HistoryTTL: time.Minute, HistoryMemory: 1 << 20, IdempotencyWindow: time.Second}
		if got := explicit.WithDefaults(); got != explicit {
			t.Errorf("WithDefaults changed explicit values: %+v", got)
		}
	})
	t.Run("redis", func(t *testing.T) {
		want := resume.RedisConfig{URLs: []string{"redis://localhost:6379"}, HistorySize: 1000, HistoryTTL: time.Hour, MaxPayload: 64 << 10,
			IdempotencyWindow: 10 * time.Minute, PresenceTTL: 15 * time.Second}
		if got := (resume.RedisConfig{}).WithDefaults(); !reflect.DeepEqual(got, want) {
			t.Errorf("zero value WithDefaults = %+v, want %+v", got, want)
		}
		explicit := resume.RedisConfig{URLs: []string{"redis://a:1", "redis://b:2"}, Cluster: true, Ingest: "news.*",
			HistorySize: 7, HistoryTTL: time.Minute, MaxPayload: 1024, IdempotencyWindow: time.Second, PresenceTTL: 2 * time.Second}
		if got := explicit.WithDefaults(); !reflect.DeepEqual(got, explicit) {
			t.Errorf("WithDefaults changed explicit values: %+v", got)
		}
	})
}

// Validate names the fields at fault and reports every problem at once.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		wants []string // each must start one line of the error
	}{
		{"memory zero value", resume.MemoryConfig{}.Validate(), nil},
		{"memory every problem", resume.MemoryConfig{HistorySize: -1, HistoryTTL: -time.Second, HistoryMemory: -2}.Validate(),
			[]string{"HistorySize: -1 is negative", "HistoryTTL: -1s is negative", "HistoryMemory: -2 is negative"}},
		{"redis zero value", resume.RedisConfig{}.Validate(), nil},
		{"redis cluster and sentinel", resume.RedisConfig{Cluster: true, SentinelMaster: "m"}.Validate(),
			[]string{"SentinelMaster: Sentinels and a Redis Cluster (Cluster)"}},
		{"redis every problem", resume.RedisConfig{HistorySize: -1, HistoryTTL: -time.Second, MaxPayload: 32 << 20, IdempotencyWindow: -time.Second}.Validate(),
			[]string{"HistorySize:", "HistoryTTL:", "MaxPayload: 33554432 bytes is over the limit", "IdempotencyWindow: -1s is negative"}},
		{"redis idempotency window under a millisecond", resume.RedisConfig{IdempotencyWindow: time.Microsecond}.Validate(),
			[]string{"IdempotencyWindow: 1µs is under a millisecond"}},
		{"redis presence TTL out of bounds", errors.Join(resume.RedisConfig{PresenceTTL: -time.Second}.Validate(),
			resume.RedisConfig{PresenceTTL: time.Millisecond}.Validate(), resume.RedisConfig{PresenceTTL: 48 * time.Hour}.Validate()),
			[]string{"PresenceTTL: -1s is negative", "PresenceTTL: 1ms is under 1s", "PresenceTTL: 48h0m0s is over 24h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configtest.WantProblems(t, tt.err, tt.wants)
		})
	}
}

// The constructors refuse what Validate refuses: NewRedis with an error,
// NewMemory (which cannot fail) with a panic.
func TestConstructorsValidate(t *testing.T) {
	if _, err := resume.NewRedis(resume.RedisConfig{HistorySize: -1}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "HistorySize") {
		t.Errorf("NewRedis with a negative HistorySize: %v, want an error naming HistorySize", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "HistoryMemory") {
			t.Errorf("NewMemory with a negative HistoryMemory: recovered %v, want a panic naming HistoryMemory", r)
		}
	}()
	resume.NewMemory(resume.MemoryConfig{HistoryMemory: -1})
}
