package resume

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

// The fleet's settings.
//
// History size, history age and the largest payload must be the same on
// every node of a fleet: they govern streams that all nodes share. The
// fleet keeps them in one Redis hash, settingsKey, with a field per
// setting. The first node to start writes its own (Config.HistorySize,
// HistoryTTL, MaxPayload); every node reads them at start and whenever it
// loads the function again, and passes them with every FCALL as the
// function's options. A node whose configuration disagrees logs an error
// that names both values and the fix, and follows the fleet: one node's
// flags never re-trim the whole fleet's history, and a rolling restart with
// a typo keeps the fleet as it was.
//
// The function reads the key itself only for callers that pass no options
// (backends calling FCALL directly, and nodes of the previous release
// during a rolling upgrade), and not on Redis Cluster, where a function may
// touch only keys in its declared key's slot: there such callers get the
// defaults (or pass the options themselves), and a node of a fleet whose
// settings are not the defaults warns at start, naming the options to
// append.
//
// To change a setting, an operator writes the key (redis-cli HSET
// edge:settings history-size 5000), then restarts the nodes with the
// matching flags: each node follows the key from its next start.

// settingsKey names the hash of the fleet's settings.
const settingsKey = "edge:settings"

// The settings' names: the fields of settingsKey and the options of the
// publish function.
const (
	optHistorySize  = "history-size"
	optHistoryTTLMs = "history-ttl-ms"
	optMaxPayload   = "max-payload"
)

// The publish function's options of a publish with an idempotency key
// (PublishOnce), which are not fleet settings.
const (
	optIdempotencyKey   = "idempotency-key"
	optIdempotencyTTLMs = "idempotency-ttl-ms"
)

// fleetSettings are the settings a fleet shares, in the units of the key.
type fleetSettings struct {
	historySize  int64
	historyTTLMs int64
	maxPayload   int64
	// options are the settings as the publish function's options, boxed
	// once rather than on every publish.
	options [6]any
}

// withOptions returns s with its options filled in.
func (s fleetSettings) withOptions() fleetSettings {
	s.options = [...]any{optHistorySize, s.historySize, optHistoryTTLMs, s.historyTTLMs, optMaxPayload, s.maxPayload}
	return s
}

// settingsOf returns cfg's settings.
func settingsOf(cfg RedisConfig) fleetSettings {
	return fleetSettings{
		historySize:  int64(cfg.HistorySize),
		historyTTLMs: cfg.HistoryTTL.Milliseconds(),
		maxPayload:   int64(cfg.MaxPayload),
	}
}

// claimSettings writes each of this node's settings (ARGV) that the key
// (KEYS[1]) lacks and answers the fleet's.
var claimSettings = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'history-size', ARGV[1])
redis.call('HSETNX', KEYS[1], 'history-ttl-ms', ARGV[2])
redis.call('HSETNX', KEYS[1], 'max-payload', ARGV[3])
return redis.call('HMGET', KEYS[1], 'history-size', 'history-ttl-ms', 'max-payload')
`)

// learnSettings reads the fleet's settings, claiming them for this node's
// where the key has none, stores them for the publishes, and logs an
// error for each setting of this node's that disagrees.
func (r *Redis) learnSettings(ctx context.Context) (*fleetSettings, error) {
	own := settingsOf(r.cfg)
	reply, err := claimSettings.Run(ctx, r.rdb, []string{settingsKey}, own.historySize, own.historyTTLMs, own.maxPayload).Slice()
	if err != nil {
		return nil, fmt.Errorf("resume: read the fleet's settings (%s): %w", settingsKey, err)
	}
	fleet := own
	for i, s := range []struct {
		name    string
		own     *int64
		fleet   *int64
		setting string // as the node's configuration names it (flag and file)
		show    func(int64) string
	}{
		{optHistorySize, &own.historySize, &fleet.historySize, "history-size", func(n int64) string { return strconv.FormatInt(n, 10) }},
		{optHistoryTTLMs, &own.historyTTLMs, &fleet.historyTTLMs, "history-ttl", func(n int64) string { return (time.Duration(n) * time.Millisecond).String() }},
		{optMaxPayload, &own.maxPayload, &fleet.maxPayload, "max-payload", func(n int64) string { return strconv.FormatInt(n, 10) }},
	} {
		text, _ := reply[i].(string)
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n < 1 {
			r.log.Error("redis: the fleet's settings hold a malformed value; this node uses its own",
				"key", settingsKey, "setting", s.name, "fleet", edge.Clip(text), "node", *s.own,
				"fix", fmt.Sprintf("redis-cli HSET %s %s %d", settingsKey, s.name, *s.own))
			continue
		}
		*s.fleet = n
		if n != *s.own {
			r.log.Error("redis: this node's "+s.setting+" disagrees with the fleet's; this node follows the fleet",
				"key", settingsKey, "setting", s.name, "node", s.show(*s.own), "fleet", s.show(n),
				"fix", fmt.Sprintf("set this node's %s to %s like the fleet; or change the fleet's (redis-cli HSET %s %s %d) and restart the nodes with %s %s",
					s.setting, s.show(n), settingsKey, s.name, *s.own, s.setting, s.show(*s.own)))
		}
	}
	fleet = fleet.withOptions()
	if d := settingsOf(RedisConfig{}.WithDefaults()); r.cluster != nil &&
		(fleet.historySize != d.historySize || fleet.historyTTLMs != d.historyTTLMs || fleet.maxPayload != d.maxPayload) {
		r.log.Warn("redis: on Redis Cluster the function cannot read the fleet's settings: an FCALL edge_publish without options uses the defaults",
			"key", settingsKey, "fix", fmt.Sprintf("have backends that call FCALL edge_publish directly append: %s %d %s %d %s %d",
				optHistorySize, fleet.historySize, optHistoryTTLMs, fleet.historyTTLMs, optMaxPayload, fleet.maxPayload))
	}
	r.settings.Store(&fleet)
	return &fleet, nil
}

// currentSettings returns the fleet's settings, reading them when this node
// could not yet (Redis was down at start).
func (r *Redis) currentSettings(ctx context.Context) (*fleetSettings, error) {
	if s := r.settings.Load(); s != nil {
		return s, nil
	}
	return r.learnSettings(ctx)
}
