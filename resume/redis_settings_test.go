package resume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/resume/redistest"
)

// logBuffer collects a node's log.
type logBuffer struct {
	mu sync.Mutex
	// mu guards b.
	b bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// settingsBackend is a Redis to test the fleet's settings on: how a node
// connects to it, and a way to run a command where a key lives.
type settingsBackend struct {
	name  string
	start func(t *testing.T) (resume.RedisConfig, func(t *testing.T, key string, args ...string) (string, error))
	// directGetsFleet: a direct FCALL without options gets the fleet's
	// settings; else (on a cluster, where the function cannot read them)
	// the defaults.
	directGetsFleet bool
}

var settingsBackends = []settingsBackend{
	{name: "standalone", directGetsFleet: true, start: func(t *testing.T) (resume.RedisConfig, func(*testing.T, string, ...string) (string, error)) {
		srv := redistest.Start(t)
		return resume.RedisConfig{URLs: []string{srv.URL()}}, func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }
	}},
	{name: "sentinel", directGetsFleet: true, start: func(t *testing.T) (resume.RedisConfig, func(*testing.T, string, ...string) (string, error)) {
		master := redistest.Start(t)
		sentinel := redistest.StartSentinel(t, master, "edgemaster")
		return resume.RedisConfig{URLs: []string{sentinel.URL()}, SentinelMaster: "edgemaster"},
			func(t *testing.T, _ string, args ...string) (string, error) { return master.Do(t, args...) }
	}},
	{name: "cluster", start: func(t *testing.T) (resume.RedisConfig, func(*testing.T, string, ...string) (string, error)) {
		c := redistest.StartCluster(t, 3)
		return resume.RedisConfig{URLs: strings.Split(c.URLs(), ",")}, func(t *testing.T, key string, args ...string) (string, error) {
			return c.MasterOf(t, key).Do(t, args...)
		}
	}},
}

// startSettingsNode starts a node with cfg's settings on the Redis that
// conn names and returns it with its log.
func startSettingsNode(t *testing.T, conn, cfg resume.RedisConfig) (*redisNode, *logBuffer) {
	t.Helper()
	log := new(logBuffer)
	cfg.URLs, cfg.SentinelMaster = conn.URLs, conn.SentinelMaster
	r, err := resume.NewRedis(cfg, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return runRedisNode(t, r), log
}

// The first node's settings become the fleet's, in edge:settings; a node
// whose flags disagree says so at error level, naming both values and the
// fix, and follows the fleet. A direct FCALL with only the documented
// arguments works, with the fleet's settings where the function can read
// them and the defaults on a cluster.
func TestRedisFleetSettings(t *testing.T) {
	const (
		published   = 300
		fleetSize   = 20
		fleetTTL    = 2 * time.Hour
		fleetMax    = 1000
		maxTrimmed  = fleetSize + 100 // MAXLEN ~ trims whole nodes of 100 entries
		nodeBSize   = 500
		directEvent = ""
	)
	for _, backend := range settingsBackends {
		t.Run(backend.name, func(t *testing.T) {
			conn, do := backend.start(t)
			ctx := context.Background()
			a, logA := startSettingsNode(t, conn, resume.RedisConfig{HistorySize: fleetSize, HistoryTTL: fleetTTL, MaxPayload: fleetMax})
			b, logB := startSettingsNode(t, conn, resume.RedisConfig{HistorySize: nodeBSize, MaxPayload: fleetMax})

			t.Run("the first node writes the fleet's settings", func(t *testing.T) {
				got, err := do(t, "edge:settings", "HGETALL", "edge:settings")
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{"history-size 20", "history-ttl-ms 7200000", "max-payload 1000"} {
					if !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
						t.Errorf("edge:settings = %s, want %s in it", got, want)
					}
				}
				if strings.Contains(logA.String(), "level=ERROR") {
					t.Errorf("the first node logged an error:\n%s", logA)
				}
			})

			t.Run("a disagreeing node says so loudly", func(t *testing.T) {
				log := logB.String()
				for _, want := range []string{
					`level=ERROR msg="redis: this node's history-size disagrees with the fleet's; this node follows the fleet" key=edge:settings setting=history-size node=500 fleet=20 fix="set this node's history-size to 20 like the fleet; or change the fleet's (redis-cli HSET edge:settings history-size 500) and restart the nodes with history-size 500"`,
					`level=ERROR msg="redis: this node's history-ttl disagrees with the fleet's; this node follows the fleet" key=edge:settings setting=history-ttl-ms node=1h0m0s fleet=2h0m0s fix="set this node's history-ttl to 2h0m0s like the fleet; or change the fleet's (redis-cli HSET edge:settings history-ttl-ms 3600000) and restart the nodes with history-ttl 1h0m0s"`,
				} {
					if !strings.Contains(log, want) {
						t.Errorf("the node's log lacks\n%s\nit is:\n%s", want, log)
					}
				}
				if strings.Contains(log, "setting=max-payload") {
					t.Errorf("the node complains about the setting it agrees on:\n%s", log)
				}
			})

			t.Run("the disagreeing node follows the fleet", func(t *testing.T) {
				for i := range published {
					mustPublish(t, b, "kept", fmt.Sprint(i))
				}
				assertRetention(t, do, "kept", 1, maxTrimmed, time.Hour, fleetTTL)
				if _, err := b.Publish(ctx, "kept", "", make([]byte, fleetMax+1)); !errors.Is(err, edge.ErrPayloadTooLarge) {
					t.Errorf("a payload over the fleet's max-payload: %v, want an error wrapping edge.ErrPayloadTooLarge", err)
				}
			})

			t.Run("a direct FCALL with the documented arguments", func(t *testing.T) {
				key := "edge:{direct}"
				for i := range published {
					id, err := do(t, key, "FCALL", "edge_publish", "1", key, directEvent, fmt.Sprint(i))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := edge.ParseID(id); err != nil {
						t.Fatalf("FCALL answered %q", id)
					}
				}
				_, errTooLarge := do(t, key, "FCALL", "edge_publish", "1", key, directEvent, strings.Repeat("x", fleetMax+1))
				const warning = `level=WARN msg="redis: on Redis Cluster the function cannot read the fleet's settings: an FCALL edge_publish without options uses the defaults" key=edge:settings fix="have backends that call FCALL edge_publish directly append: history-size 20 history-ttl-ms 7200000 max-payload 1000"`
				if warned := strings.Contains(logA.String(), warning); warned == backend.directGetsFleet {
					t.Errorf("the node warns that direct FCALLs get the defaults: %v, want %v; its log:\n%s", warned, !backend.directGetsFleet, logA)
				}
				if backend.directGetsFleet {
					assertRetention(t, do, "direct", 1, maxTrimmed, time.Hour, fleetTTL)
					if errTooLarge == nil {
						t.Error("a payload over the fleet's max-payload was stored")
					}
				} else {
					assertRetention(t, do, "direct", published+1, published+1, 0, time.Hour)
					if errTooLarge != nil {
						t.Errorf("a payload within the default max-payload was refused: %v", errTooLarge)
					}
				}
			})

			t.Run("the nodes relay each other's messages", func(t *testing.T) {
				if err := a.Watch(ctx, "relayed"); err != nil {
					t.Fatal(err)
				}
				id := mustPublish(t, b, "relayed", "x")
				a.waitUntil(t, "relayed", id)
			})
		})
	}
}

// assertRetention checks that channel's stream holds minLen to maxLen
// entries and expires after more than minTTL and at most maxTTL.
func assertRetention(t *testing.T, do func(*testing.T, string, ...string) (string, error), channel string, minLen, maxLen int, minTTL, maxTTL time.Duration) {
	t.Helper()
	key := "edge:{" + channel + "}"
	length, err := do(t, key, "XLEN", key)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(length); n < minLen || n > maxLen {
		t.Errorf("%s holds %s entries, want %d to %d", key, length, minLen, maxLen)
	}
	pttl, err := do(t, key, "PTTL", key)
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := strconv.Atoi(pttl); time.Duration(ms)*time.Millisecond <= minTTL || time.Duration(ms)*time.Millisecond > maxTTL {
		t.Errorf("%s expires in %sms, want more than %v and at most %v", key, pttl, minTTL, maxTTL)
	}
}

// A malformed value in the fleet's settings is reported, with the fix, and
// the node uses its own setting for it.
func TestRedisFleetSettingsMalformed(t *testing.T) {
	srv := redistest.Start(t)
	if _, err := srv.Do(t, "HSET", "edge:settings", "history-size", "lots", "history-ttl-ms", "3600000", "max-payload", "65536"); err != nil {
		t.Fatal(err)
	}
	n, log := startSettingsNode(t, resume.RedisConfig{URLs: []string{srv.URL()}}, resume.RedisConfig{HistorySize: 20})
	const want = `level=ERROR msg="redis: the fleet's settings hold a malformed value; this node uses its own" key=edge:settings setting=history-size fleet=lots node=20 fix="redis-cli HSET edge:settings history-size 20"`
	if !strings.Contains(log.String(), want) {
		t.Fatalf("the node's log lacks\n%s\nit is:\n%s", want, log)
	}
	do := func(t *testing.T, _ string, args ...string) (string, error) { return srv.Do(t, args...) }
	for i := range 300 {
		mustPublish(t, n, "m", fmt.Sprint(i))
	}
	assertRetention(t, do, "m", 1, 120, 0, time.Hour)
}
