package resume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
)

var (
	_ edge.Broker        = (*Redis)(nil)
	_ edge.LossReporter  = (*Redis)(nil)
	_ edge.OncePublisher = (*Redis)(nil)
)

// redisTimeout bounds one Redis round trip made for a client request.
const redisTimeout = 5 * time.Second

// Redis is the store of a fleet: history in one Redis Stream per channel,
// live relay through Redis sharded pub/sub, with one subscriber connection
// per node that subscribes only the channels with local subscribers.
//
// Messages are stored and relayed by one Redis Function call (see
// functionLibrary), with the fleet's retention settings from one Redis key
// (see redis_settings.go), so a message is either stored and relayed or the
// publisher gets an error. When the subscriber connection drops and comes
// back, every watched channel is filled from its stream after the last id
// this node delivered, so live subscribers miss nothing Redis stored.
//
// Gap detection: a cursor is consistent with a stream when it is "0-0", an
// entry of the stream, or at most the stream's max-deleted-entry-id. A
// cursor below the max-deleted id lost messages to trimming, or to a
// failover that a relay found lossy (see markLost; the history after the
// gap then starts after that id); a cursor that the stream never held
// (the stream expired, was flushed, or a failover lost it) cannot be
// proven complete. Both get Page.Gap; a cursor past the stream's last
// generated id (or any cursor but 0-0 without a stream) also gets
// Page.Ahead, with the position to continue from.
//
// Redis is safe for concurrent use. Run must be running for live relay.
type Redis struct {
	cfg     RedisConfig
	rdb     redis.UniversalClient // commands: a *redis.Client or a *redis.ClusterClient
	cluster *redis.ClusterClient  // nil for a single Redis
	log     *slog.Logger
	deliver atomic.Pointer[func(context.Context, edge.Message)]
	lost    atomic.Pointer[func(string)]

	// settings are the fleet's (see redis_settings.go); nil until read.
	settings atomic.Pointer[fleetSettings]

	// Publishes wait for a pipeline here (see redis_publish.go): in
	// publishes for a single Redis, in masterPublishes (by address) for
	// each master of a cluster.
	publishes       publishQueue
	masterPublishes sync.Map

	presence redisPresence // this node's members (see presence_redis.go)

	ctx    context.Context // ends the shard loops; canceled by Run
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu sync.Mutex
	// mu guards watches and shards. Lock order: shard.mu, then mu.
	watches map[string]*watch
	shards  map[string]*shard
}

// watch is the relay state of one channel with local subscribers. Only the
// receive loop of its shard changes last and stale.
type watch struct {
	refs      int
	shard     *shard
	ready     chan struct{} // closed once the subscription is confirmed
	confirmed bool
	last      edge.ID // newest id delivered on this node
	stale     bool    // the connection dropped: fill from the stream before delivering
}

// shard is the relay connection to one Redis master: one pub/sub
// connection for all the watched channels whose slots that master serves.
type shard struct {
	addr string
	node *redis.Client
	// presence is RedisConfig.Presence: the channels whose announcements
	// of joins and leaves the shard subscribes too.
	presence func(channel string) bool

	mu sync.Mutex
	// mu guards ps, which the shard's loop replaces when it reconnects.
	ps *redis.PubSub
}

// NewRedis connects to the Redis that cfg.URLs name, with the zero fields
// of cfg set to their defaults: one redis:// (or rediss://) URL; with
// cfg.Cluster the URLs of Redis Cluster nodes; with cfg.SentinelMaster the
// URLs of Sentinels, whose master (and its successor after a failover) it
// uses. It loads the edge's Redis Function (on every master) and reads the
// fleet's settings, logging an error where cfg's disagree. Redis may be
// down at start: the function is loaded again when a publish finds it
// missing, the settings are read by the first publish, and Ready reports
// the outage. It fails when cfg.Validate does or a URL does not parse.
func NewRedis(cfg RedisConfig, log *slog.Logger) (*Redis, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("resume: redis config: %w", err)
	}
	var opts []*redis.Options
	for _, u := range cfg.URLs {
		opt, err := redis.ParseURL(strings.TrimSpace(u))
		if err != nil {
			return nil, fmt.Errorf("resume: redis URL %q: %w", u, err)
		}
		opts = append(opts, opt)
	}
	r := &Redis{cfg: cfg, log: log, watches: make(map[string]*watch), shards: make(map[string]*shard)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if cfg.Cluster || (len(opts) > 1 && cfg.SentinelMaster == "") {
		var addrs []string
		for _, o := range opts {
			addrs = append(addrs, o.Addr)
		}
		r.cluster = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: opts[0].Username, Password: opts[0].Password,
			TLSConfig: opts[0].TLSConfig, MaxRetries: 1, DisableIdentity: true,
		})
		r.rdb = r.cluster
	} else if cfg.SentinelMaster != "" {
		var addrs []string
		for _, o := range opts {
			addrs = append(addrs, o.Addr)
		}
		r.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: addrs,
			Username: opts[0].Username, Password: opts[0].Password, DB: opts[0].DB,
			TLSConfig: opts[0].TLSConfig, MaxRetries: 1, DisableIdentity: true,
		})
	} else {
		opts[0].MaxRetries = 1
		opts[0].DisableIdentity = true // CLIENT SETINFO: a round-trip per connection, an error before Redis 7.2
		r.rdb = redis.NewClient(opts[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := r.loadFunction(ctx); err != nil {
		log.Warn("redis not reachable at start; will retry", "redis", strings.Join(cfg.URLs, ","), "err", err)
	}
	return r, nil
}

// loadFunction loads the publish function (on every master of a cluster)
// and reads the fleet's settings.
func (r *Redis) loadFunction(ctx context.Context) error {
	var err error
	if r.cluster != nil {
		err = r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.FunctionLoadReplace(ctx, functionLibrary).Err()
		})
	} else {
		err = r.rdb.FunctionLoadReplace(ctx, functionLibrary).Err()
	}
	if err != nil {
		return err
	}
	_, err = r.learnSettings(ctx)
	return err
}

// Client returns the Redis client, for other users of the same Redis
// (certificate storage) to share its connections.
func (r *Redis) Client() redis.UniversalClient { return r.rdb }

// unavailable wraps a Redis failure: clients are told which operation
// failed, the log also why (with Redis's address, which clients are not
// told).
func unavailable(op string, err error) error {
	return edge.WithCause(fmt.Errorf("%w: redis %s failed", edge.ErrUnavailable, op), err)
}

// Relay sets the function that receives live messages of watched channels.
func (r *Redis) Relay(deliver func(context.Context, edge.Message)) { r.deliver.Store(&deliver) }

// OnLost sets the function told about a channel whose live relay missed
// messages that its stream no longer holds.
func (r *Redis) OnLost(lost func(channel string)) { r.lost.Store(&lost) }

// Ready pings Redis.
func (r *Redis) Ready(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// History returns up to limit messages after the cursor, with Gap set when
// the stream cannot prove it holds every message after it.
func (r *Redis) History(ctx context.Context, channel string, after edge.ID, limit int) (edge.Page, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	key := streamKey(channel)
	var rng, at *redis.XMessageSliceCmd
	var info *redis.XInfoStreamCmd
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rng = p.XRangeN(ctx, key, "("+after.String(), "+", int64(limit))
		info = p.XInfoStream(ctx, key)
		if !after.IsZero() {
			at = p.XRangeN(ctx, key, after.String(), after.String(), 1)
		}
		return nil
	})
	if err != nil && !isNoSuchKey(info.Err()) {
		return edge.Page{}, unavailable("history", err)
	}
	if isNoSuchKey(info.Err()) {
		// No stream: it never had messages (then no cursor but 0-0 was
		// handed out), or it expired or was lost.
		if !after.IsZero() {
			return aheadPage(edge.ID{}), nil
		}
		return edge.Page{}, nil
	}
	if last, err := edge.ParseID(info.Val().LastGeneratedID); err == nil && last.Less(after) {
		return aheadPage(last), nil
	}
	maxDeleted, _ := edge.ParseID(info.Val().MaxDeletedEntryID)
	var page edge.Page
	entries := rng.Val()
	switch {
	case after.Less(maxDeleted):
		page.Gap = true
		if len(entries) > 0 && idAtMost(entries[0], maxDeleted) {
			// Entries below the max-deleted id survive: the loss that a
			// relay recorded (see markLost) lies after them, not at the
			// head as trimming's does. A page's gap comes before its
			// messages, so the page starts after the loss.
			if entries, err = r.rdb.XRangeN(ctx, key, "("+maxDeleted.String(), "+", int64(limit)).Result(); err != nil {
				return edge.Page{}, unavailable("history", err)
			}
		}
	case !after.IsZero() && maxDeleted.Less(after) && len(at.Val()) == 0:
		page.Gap = true // the stream never held the cursor's message
	}
	for _, x := range entries {
		m, err := streamMessage(channel, x)
		if err != nil {
			return edge.Page{}, unavailable("history", err)
		}
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}

// idAtMost reports whether x's id is at most id.
func idAtMost(x redis.XMessage, id edge.ID) bool {
	xid, err := edge.ParseID(x.ID)
	return err == nil && !id.Less(xid)
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// streamMessage converts a stream entry.
func streamMessage(channel string, x redis.XMessage) (edge.Message, error) {
	id, err := edge.ParseID(x.ID)
	if err != nil {
		return edge.Message{}, err
	}
	event, _ := x.Values["e"].(string)
	data, ok := x.Values["d"].(string)
	if !ok {
		return edge.Message{}, fmt.Errorf("entry %s of %s has no d field", x.ID, channel)
	}
	key, _ := x.Values["k"].(string)
	return edge.Message{Channel: channel, ID: id, Event: event, Data: []byte(data), Key: key}, nil
}

// Last returns the stream's last generated id, or 0-0 without a stream.
func (r *Redis) Last(ctx context.Context, channel string) (edge.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	info, err := r.rdb.XInfoStream(ctx, streamKey(channel)).Result()
	if isNoSuchKey(err) {
		return edge.ID{}, nil
	}
	if err != nil {
		return edge.ID{}, unavailable("last", err)
	}
	id, err := edge.ParseID(info.LastGeneratedID)
	if err != nil {
		return edge.ID{}, unavailable("last", err)
	}
	return id, nil
}

// Watch subscribes the node to channel's live messages on the first local
// subscriber and returns once the subscription is confirmed.
func (r *Redis) Watch(ctx context.Context, channel string) error {
	r.mu.Lock()
	w := r.watches[channel]
	first := w == nil
	if first {
		w = &watch{ready: make(chan struct{})}
		r.watches[channel] = w
	}
	w.refs++
	ready := w.ready
	r.mu.Unlock()
	if first {
		sh, err := r.shardFor(ctx, channel, w)
		if err != nil {
			r.Unwatch(channel)
			return unavailable("subscribe", err)
		}
		sh.subscribe(ctx, channel)
	}
	wait := time.NewTimer(redisTimeout)
	defer wait.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		r.Unwatch(channel)
		return ctx.Err()
	case <-wait.C:
		r.Unwatch(channel)
		return unavailable("subscribe", errors.New("no confirmation"))
	}
}

// shardFor returns the relay connection of the master that serves
// channel, assigns it to w, and starts its loop on first use.
func (r *Redis) shardFor(ctx context.Context, channel string, w *watch) (*shard, error) {
	node, _ := r.rdb.(*redis.Client)
	if r.cluster != nil {
		var err error
		if node, err = r.cluster.MasterForKey(ctx, streamKey(channel)); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w.shard = r.shardLocked(node)
	return w.shard, nil
}

// shardLocked returns the shard of node's address, creating it and
// starting its loop when there is none; the loop lists its channels only
// once the caller has released mu. The caller holds mu and is a Watch or
// a shard loop, so that the loops' WaitGroup is not at zero while Run
// waits on it.
func (r *Redis) shardLocked(node *redis.Client) *shard {
	addr := node.Options().Addr
	if sh := r.shards[addr]; sh != nil {
		return sh
	}
	sh := &shard{addr: addr, node: node, presence: r.cfg.Presence}
	r.shards[addr] = sh
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		r.receive(sh)
	}()
	return sh
}

// subscribe sends SSUBSCRIBE for channel on the shard's connection. Before
// the loop connects, or when the connection is broken, there is nothing to
// do: the loop subscribes every channel of the shard when it connects.
func (sh *shard) subscribe(ctx context.Context, channel string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ps != nil {
		sh.ps.SSubscribe(ctx, sh.keys(channel)...)
	}
}

// keys returns the shard channels that relay channel: its messages and,
// with presence, its joins and leaves. Both are in the channel's slot, so
// they follow it, and Redis drops them together when the slot moves.
func (sh *shard) keys(channel string) []string {
	if sh.presence != nil && sh.presence(channel) {
		return []string{liveKey(channel), presenceKey(channel)}
	}
	return []string{liveKey(channel)}
}

// Unwatch undoes one Watch; the last one unsubscribes the node.
func (r *Redis) Unwatch(channel string) {
	r.mu.Lock()
	w := r.watches[channel]
	if w == nil {
		r.mu.Unlock()
		return
	}
	w.refs--
	last := w.refs == 0
	if last {
		delete(r.watches, channel)
	}
	sh := w.shard
	r.mu.Unlock()
	if last && sh != nil {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		sh.mu.Lock()
		if sh.ps != nil {
			sh.ps.SUnsubscribe(ctx, sh.keys(channel)...)
		}
		sh.mu.Unlock()
	}
}

// Run keeps this node's presence members alive, relays plain PUBLISH
// traffic when RedisConfig.Ingest is set, waits until ctx is done, then
// stops the relay connections and closes the client.
func (r *Redis) Run(ctx context.Context) error {
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		r.keepPresence(r.ctx)
	}()
	if r.cfg.Ingest != "" {
		r.loops.Add(1)
		go func() {
			defer r.loops.Done()
			r.runIngest(r.ctx, r.cfg.Ingest)
		}()
	}
	<-ctx.Done()
	r.cancel()
	// The shards are copied out first: taking a shard's mu while holding
	// r.mu would invert the lock order, against a loop in connect.
	r.mu.Lock()
	shards := make([]*shard, 0, len(r.shards))
	for _, sh := range r.shards {
		shards = append(shards, sh)
	}
	r.mu.Unlock()
	for _, sh := range shards {
		sh.mu.Lock()
		if sh.ps != nil {
			sh.ps.Close()
		}
		sh.mu.Unlock()
	}
	r.loops.Wait()
	return r.rdb.Close()
}

// Why a cluster shard's relay connection ends although Redis is up.
var (
	// errSlotMoved reports that Redis dropped the subscription of a
	// channel the shard relays: its master lost the channel's slot.
	errSlotMoved = errors.New("resume: redis dropped a watched channel (its slot moved to another master)")
	// errNotMaster reports that the shard's node is a replica now.
	errNotMaster = errors.New("resume: redis node is no longer a master")
)

// receive runs a shard's relay connection until the Redis is closed or, on
// a cluster, until the shard has no channel left: it (re)connects,
// subscribes every watched channel of the shard one by one (Redis Cluster
// refuses one SSUBSCRIBE across slots), relays messages, and after a drop
// fills the channels from their streams.
//
// On a cluster a drop may be a failover or a resharding: a master killed
// (the connection fails, and so does every reconnect), or one that lost a
// slot (it sends sunsubscribe for the slot's channels and keeps the
// connection). Either way the loop has the client reload the cluster's
// layout and, before reconnecting, hands each channel whose slot another
// master serves now to that master's shard, whose loop subscribes it and
// fills it from the stream after the last id delivered: nothing the new
// master holds is missed, and what the failover lost is a gap.
func (r *Redis) receive(sh *shard) {
	ctx := r.ctx
	const minBackoff, maxBackoff = 50 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		err := r.connect(ctx, sh)
		for err == nil {
			var msg any
			if msg, err = sh.ps.Receive(ctx); err != nil {
				break
			}
			backoff = minBackoff
			switch m := msg.(type) {
			case *redis.Subscription:
				switch m.Kind {
				case "ssubscribe":
					r.confirmed(ctx, channelOfLive(m.Channel))
				case "sunsubscribe":
					// Unwatch's own unsubscribe finds the channel
					// unwatched (or, rarely, watched anew: then the
					// reconnect is needless but harmless).
					if r.watchedBy(sh, channelOfLive(m.Channel)) {
						err = errSlotMoved
					}
				}
			case *redis.Message:
				r.relay(ctx, m)
			}
		}
		sh.mu.Lock()
		sh.ps.Close()
		sh.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("redis relay connection lost; will resubscribe and fill from the streams", "addr", sh.addr, "err", err)
		r.markStale(sh)
		r.relearn()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
		if !r.rehome(ctx, sh) {
			return
		}
	}
}

// watchedBy reports whether sh relays channel.
func (r *Redis) watchedBy(sh *shard, channel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.watches[channel]
	return w != nil && w.shard == sh
}

// relearn has the cluster client reload the cluster's layout, in the
// background, after a command or the relay failed: a failover or a
// resharding may have moved slots. The client follows a MOVED reply by
// itself, but a dead master sends none, and the client would dial it
// until its periodic reload, a minute later.
func (r *Redis) relearn() {
	if r.cluster != nil {
		r.cluster.ReloadState(r.ctx)
	}
}

// rehome hands each channel of sh whose slot another master serves now
// (as the client last learnt the layout) to that master's shard, and
// reports whether sh keeps any channel. A cluster shard left without
// channels is forgotten (a later Watch starts a new one), and its loop
// ends; a single Redis's shard always stays. The channels keep their
// state: they are stale, so the new shard fills them when it confirms
// their subscription. Only sh's loop calls it, between connections.
func (r *Redis) rehome(ctx context.Context, sh *shard) bool {
	if r.cluster == nil {
		return true
	}
	masters := make(map[string]*redis.Client)
	r.mu.Lock()
	for ch, w := range r.watches {
		if w.shard == sh {
			masters[ch] = nil
		}
	}
	r.mu.Unlock()
	for ch := range masters {
		if node, err := r.cluster.MasterForKey(ctx, streamKey(ch)); err == nil && node.Options().Addr != sh.addr {
			masters[ch] = node
		}
	}
	type move struct {
		to      *shard
		channel string
	}
	var moves []move
	keep := false
	r.mu.Lock()
	for ch, w := range r.watches { // again: channels come and go meanwhile
		if w.shard != sh {
			continue
		}
		if node := masters[ch]; node != nil {
			w.shard = r.shardLocked(node)
			moves = append(moves, move{w.shard, ch})
		} else {
			keep = true
		}
	}
	if !keep {
		delete(r.shards, sh.addr)
	}
	r.mu.Unlock()
	if len(moves) > 0 {
		r.log.Info("redis: channels' slots moved to other masters; relaying them from there", "from", sh.addr, "channels", len(moves))
	}
	for _, m := range moves {
		m.to.subscribe(ctx, m.channel)
	}
	return keep
}

// connect opens a new pub/sub connection for the shard and subscribes its
// watched channels.
func (r *Redis) connect(ctx context.Context, sh *shard) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.ps = sh.node.SSubscribe(ctx)
	r.mu.Lock()
	var channels []string
	for ch, w := range r.watches {
		if w.shard == sh {
			channels = append(channels, ch)
		}
	}
	r.mu.Unlock()
	if err := sh.ps.Ping(ctx); err != nil {
		return err
	}
	if r.cluster != nil {
		// A master that a failover demoted takes SSUBSCRIBE as a
		// replica, but it gets the new master's messages only once the
		// new master counts it as its replica: what is published
		// meanwhile never reaches its subscribers, and no fill would
		// notice, as later messages do arrive. So the relay subscribes on
		// masters only; a demoted one sends sunsubscribe.
		role, err := sh.node.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return errNotMaster
		}
	}
	for _, ch := range channels {
		if err := sh.ps.SSubscribe(ctx, sh.keys(ch)...); err != nil {
			return err
		}
	}
	return nil
}

// markStale marks the confirmed channels of sh for a fill after
// reconnecting. Only sh's loop may touch their stale field: other shards'
// channels are relayed, without the lock, by their own loops.
func (r *Redis) markStale(sh *shard) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.watches {
		if w.shard == sh && w.confirmed {
			w.stale = true
		}
	}
}

// confirmed handles a subscription confirmation: the first one records
// where the channel's stream stands and releases the waiting Watch calls;
// one after a reconnect fills the channel from its stream.
func (r *Redis) confirmed(ctx context.Context, channel string) {
	r.mu.Lock()
	w := r.watches[channel]
	r.mu.Unlock()
	if w == nil {
		return
	}
	if w.confirmed {
		r.fill(ctx, channel, w)
		return
	}
	last, err := r.Last(ctx, channel)
	if err != nil {
		r.log.Warn("redis: reading the stream position failed; the channel fills on its next message", "err", err)
		w.stale = true
	}
	w.last = last
	r.mu.Lock()
	w.confirmed = true
	close(w.ready)
	r.mu.Unlock()
}

// fill delivers what the channel's stream holds after the last delivered
// id, and reports whether the channel is up to date. When Redis fails it
// leaves the channel stale, to try again on the next message.
func (r *Redis) fill(ctx context.Context, channel string, w *watch) bool {
	for {
		page, err := r.History(ctx, channel, w.last, catchUpLimit)
		if err != nil {
			w.stale = true
			r.log.Warn("redis: filling a channel after a reconnect failed; will retry", "err", err)
			return false
		}
		if page.Gap {
			return r.resync(ctx, channel, w)
		}
		for _, m := range page.Messages {
			r.deliverNew(ctx, w, m)
		}
		if len(page.Messages) < catchUpLimit {
			w.stale = false
			return true
		}
	}
}

// resync handles a fill that found messages after the last delivered id
// gone: the loss is recorded in the stream (see markLost), the channel's
// local sessions are closed (their clients resume and get the gap), and
// the relay continues from the stream's newest id. It reports whether it
// could (it needs that id).
func (r *Redis) resync(ctx context.Context, channel string, w *watch) bool {
	r.log.Warn("redis: messages of a channel were lost before this node could relay them; its subscribers resync", "last_delivered", w.last.String())
	if err := r.markLost(ctx, channel, w.last); err != nil {
		w.stale = true
		return false
	}
	last, err := r.Last(ctx, channel)
	if err != nil {
		w.stale = true
		return false
	}
	w.last, w.stale = last, false
	if f := r.lost.Load(); f != nil {
		(*f)(channel)
	}
	return true
}

// markLostScript records in a stream (KEYS[1]) that its messages up to
// ARGV[1] existed and are gone: it raises the stream's
// max-deleted-entry-id to ARGV[1], and its last generated id too when it
// is lower, with XSETID (Redis 7.0). It answers 1, or 0 when there is no
// stream or it already records as much.
var markLostScript = redis.NewScript(`
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
if info.err then
  return 0
end
local f = {}
for i = 1, #info, 2 do
  f[info[i]] = info[i + 1]
end
local id, last = ARGV[1], f['last-generated-id']
if not less(f['max-deleted-entry-id'], id) then
  return 0
end
if less(last, id) then
  last = id
end
redis.call('XSETID', KEYS[1], last, 'ENTRIESADDED', f['entries-added'], 'MAXDELETEDID', id)
return 1
`)

// markLost records in channel's stream that its messages up to lost (the
// newest this node delivered) existed, when a fill found them gone: a
// failover to a replica that had not received them, or a Redis that lost
// them. The stream then counts them as deleted, so that History gives a
// gap to every cursor up to lost, such as that of a client that was away
// when they were published: without the mark the stream shows nothing
// missing after its cursor, and the messages published after the loss
// would follow it as a silent hole. The cursor lost itself gets a gap as
// well (the mark is the id just after it), as messages that came after it
// and that no node relayed may be lost too. Without a stream there is
// nothing to mark: every cursor but 0-0 gets a gap anyway.
func (r *Redis) markLost(ctx context.Context, channel string, lost edge.ID) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	past := edge.ID{Ms: lost.Ms, Seq: lost.Seq + 1}
	if past.Seq == 0 { // lost.Seq was the largest
		past = edge.ID{Ms: lost.Ms + 1}
	}
	if err := markLostScript.Run(ctx, r.rdb, []string{streamKey(channel)}, past.String()).Err(); err != nil {
		r.log.Warn("redis: recording lost messages in a stream failed; will retry", "err", err)
		return err
	}
	return nil
}

// catchUpLimit is the page size of a fill.
const catchUpLimit = 500

// relay delivers a live message, after a fill when the channel is stale.
// While the fill fails the message is not delivered: it would skip the
// messages the fill was to deliver, without a gap. The stream holds it, and
// the fill that works (on the next message or reconnect) delivers it in
// order. A message that carries its publish's traceparent is delivered
// with a context whose remote span context is the publish's, so that the
// hub's fan-out continues the publish's trace; messages a fill delivers
// come from the stream, which keeps no trace.
func (r *Redis) relay(ctx context.Context, m *redis.Message) {
	if ch := channelOfPresence(m.Channel); ch != "" {
		r.heardPresence(ctx, ch, m.Payload)
		return
	}
	channel := channelOfLive(m.Channel)
	r.mu.Lock()
	w := r.watches[channel]
	r.mu.Unlock()
	if w == nil || !w.confirmed {
		return
	}
	if w.stale && !r.fill(ctx, channel, w) {
		return
	}
	msg, sc, err := liveMessage(channel, m.Payload)
	if err != nil {
		r.log.Warn("redis: malformed live message dropped (its stream still has it)", "err", err)
		return
	}
	if sc.IsValid() {
		// The hub's fan-out span continues the publish's trace.
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	r.deliverNew(ctx, w, msg)
}

// deliverNew delivers m unless this node already delivered it.
func (r *Redis) deliverNew(ctx context.Context, w *watch, m edge.Message) {
	if !w.last.Less(m.ID) {
		return
	}
	w.last = m.ID
	if d := r.deliver.Load(); d != nil {
		(*d)(ctx, m)
	}
}

// liveMessage parses a live relay payload as the publish function sends
// it, and returns the publish's span context when the payload carries a
// valid traceparent (otherwise an invalid one).
//
// Version 1 (the release before version 2) is "<id>\n<event>\n<data>",
// with the id as Redis writes it: no leading zero, as no message has the
// millisecond 0. Version 2 marks itself with a zero before the id:
// "0<id>\n<event>\n<data>". A version-1 parser reads the same id from it
// (it accepts leading zeros), so nodes of both releases relay each other's
// messages during a rolling upgrade. In version 2, attributes may follow
// the id on its line, each after one space: "0<id> name=value ...\n". The
// release that brought version 2 wrote none and ignores them; later ones
// write tp, a traced publish's W3C traceparent, and k, the message's
// conflation key (see readAttrs). A version-1 parser refuses attributes:
// a fleet is upgraded to this release from one that brought version 2 or
// later, not from an earlier one.
func liveMessage(channel, payload string) (edge.Message, trace.SpanContext, error) {
	b := []byte(payload)
	head, rest, ok1 := bytes.Cut(b, []byte{'\n'})
	event, data, ok2 := bytes.Cut(rest, []byte{'\n'})
	if !ok1 || !ok2 {
		return edge.Message{}, trace.SpanContext{}, fmt.Errorf("live message of %q is not id\\nevent\\ndata", channel)
	}
	var sc trace.SpanContext
	var key string
	if len(head) > 1 && head[0] == '0' && head[1] >= '0' && head[1] <= '9' {
		var attrs []byte
		head, attrs, _ = bytes.Cut(head[1:], []byte{' '})
		if len(attrs) > 0 { // not the call, on a plain message's path
			sc, key = readAttrs(attrs)
		}
	}
	id, err := edge.ParseIDBytes(head)
	if err != nil {
		return edge.Message{}, trace.SpanContext{}, err
	}
	return edge.Message{Channel: channel, ID: id, Event: string(event), Data: data, Key: key}, sc, nil
}

// Bounds of the attributes of a live payload's id line: beyond them a
// payload's attributes are ignored, all of them (its message is still
// delivered).
const (
	maxLiveAttrBytes = 1024
	maxLiveAttrs     = 16
)

// readAttrs reads the attributes of a live payload, "name=value" separated
// by single spaces, and returns the span context of its tp attribute and
// the conflation key of its k attribute. It ignores attributes it does not
// know (a later release may add some), a tp that is not a valid
// traceparent of version 00, a k that is not a valid key
// (edge.ValidateKey), and every tp or k when there are several; it reads
// nothing of a list over the bounds. It allocates only the key.
func readAttrs(attrs []byte) (trace.SpanContext, string) {
	if len(attrs) == 0 || len(attrs) > maxLiveAttrBytes {
		return trace.SpanContext{}, ""
	}
	var tp, k []byte
	tps, ks := 0, 0
	for n := 0; len(attrs) > 0; n++ {
		if n == maxLiveAttrs {
			return trace.SpanContext{}, ""
		}
		var attr []byte
		attr, attrs, _ = bytes.Cut(attrs, []byte{' '})
		name, value, ok := bytes.Cut(attr, []byte{'='})
		switch {
		case ok && string(name) == "tp":
			tp = value
			tps++
		case ok && string(name) == "k":
			k = value
			ks++
		}
	}
	var sc trace.SpanContext
	if tps == 1 {
		sc = parseTraceparent(tp)
	}
	var key string
	if ks == 1 && edge.ValidateKey(string(k)) == nil {
		key = string(k)
	}
	return sc, key
}

// parseTraceparent returns the remote span context of a W3C traceparent of
// version 00 ("00-<32 hex>-<16 hex>-<2 hex>", lowercase, ids not all
// zeros), or an invalid one. Of the flags it keeps those that
// OpenTelemetry propagates: sampled and random.
func parseTraceparent(b []byte) trace.SpanContext {
	if len(b) != traceparentLen || b[0] != '0' || b[1] != '0' || b[2] != '-' || b[35] != '-' || b[52] != '-' {
		return trace.SpanContext{}
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if !decodeHex(tid[:], b[3:35]) || !decodeHex(sid[:], b[36:52]) || !decodeHex(flags[:], b[53:55]) {
		return trace.SpanContext{}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom),
		Remote:     true,
	}) // invalid when an id is all zeros
}

// decodeHex decodes src, lowercase hex of twice dst's length, into dst and
// reports whether it could.
func decodeHex(dst, src []byte) bool {
	for i := range dst {
		hi, ok1 := hexValue(src[2*i])
		lo, ok2 := hexValue(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
