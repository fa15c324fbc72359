package resume

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
)

// Publishing to Redis in pipelines.
//
// Every message is one FCALL of the edge's function, which stores and
// relays it in one atomic step. Publishes that arrive together are sent
// together: a publish that finds fewer than maxPublishPipelines pipelines
// in flight sends its own FCALL and every FCALL queued so far as one
// pipeline (one write and one read for all of them, in the edge and in
// Redis); a publish that finds them all busy queues its FCALL and waits.
// When a pipeline is answered, its sender hands the next one to the oldest
// queued publish, so that each publisher sends at most the one pipeline
// that holds its own message and no goroutine is started for it. On Redis
// Cluster every master has its own queue, so that a slow or failed master
// holds up only the publishes to its own channels.
//
// The FCALLs are never retried by the client: a retry after a lost
// connection could store a message twice (and a pipeline's retry, all of
// them). A publish succeeds only with the id Redis answered for its own
// FCALL, so nothing is acknowledged that was not stored.
const (
	// maxPublishPipelines bounds the pipelines of publishes in flight:
	// one can be on the wire while the next fills.
	maxPublishPipelines = 2
	// maxPublishBatch and maxPublishBatchBytes bound one pipeline, so
	// that a burst of large payloads goes out as several writes.
	maxPublishBatch      = 256
	maxPublishBatchBytes = 1 << 20
)

// publishQueue holds the publishes waiting for a pipeline. The zero value
// is ready.
type publishQueue struct {
	mu sync.Mutex
	// mu guards calls, sending, and the state of every call in calls.
	calls   []*publishCall
	sending int // pipelines in flight, each owned by one publisher
}

// publishCall is one publish on its way to Redis: a plain one (cmd,
// answered by an id) or one with an idempotency key (once, answered by an
// id and whether it was replayed).
type publishCall struct {
	cmd   *redis.ZeroCopyStringCmd
	once  *redis.Cmd
	args  [12]any
	size  int           // bytes the call adds to a pipeline, roughly
	state callState     // guarded by publishQueue.mu until wake is signalled
	wake  chan struct{} // signalled once: the call was answered, or it leads
	reply [idReplyLen]byte
}

// idReplyLen holds the longest id, "<20 digits>-<20 digits>", and the
// reply's CRLF.
const idReplyLen = 48

type callState uint8

const (
	callQueued  callState = iota // in publishQueue.calls
	callSending                  // in a pipeline
	callLeading                  // handed the next pipeline
)

// optTraceparent is the publish functions' option that carries a traced
// publish's W3C traceparent to the nodes that deliver it.
const optTraceparent = "traceparent"

// optKey is the publish function's option that carries a message's
// conflation key (edge.Message.Key); optKeys carries a batch's, one per
// message, separated by newlines.
const (
	optKey  = "key"
	optKeys = "keys"
)

// traceparentLen is the length of a traceparent of version 00:
// "00-<32 hex>-<16 hex>-<2 hex>".
const traceparentLen = 55

// traceparent returns the traceparent of ctx's span, or nil: it has one
// only for a valid, sampled span, so that an untraced publish sends
// nothing more, and one whose trace is not recorded leaves no spans on the
// nodes that deliver it either.
func traceparent(ctx context.Context) []byte {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, traceparentLen)
	b = append(b, "00-"...)
	for _, x := range sc.TraceID() {
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	b = append(b, '-')
	for _, x := range sc.SpanID() {
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	f := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	return append(b, '-', hexDigits[f>>4], hexDigits[f&0xf])
}

// newPublishCall prepares the FCALL of one message, with the fleet's
// settings as the function's options and, for a sampled span in ctx, its
// traceparent (then in arguments of their own: a traced publish may
// allocate a little more, an untraced one does not).
func newPublishCall(ctx context.Context, key, event string, data []byte, s *fleetSettings) *publishCall {
	c := &publishCall{size: len(key) + len(event) + len(data) + 96, wake: make(chan struct{}, 1)}
	c.args = [...]any{"fcall", publishFunction, 1, key, event, data,
		s.options[0], s.options[1], s.options[2], s.options[3], s.options[4], s.options[5]}
	args := c.args[:]
	if tp := traceparent(ctx); tp != nil {
		args = append(args[:len(args):len(args)], optTraceparent, tp)
		c.size += len(optTraceparent) + len(tp)
	}
	c.cmd = redis.NewZeroCopyStringCmd(ctx, c.reply[:], args...)
	c.cmd.SetFirstKeyPos(3)
	return c
}

// newPublishKeyedCall prepares the FCALL of p with the idempotency key
// once (when not "") remembered for windowMs, and p's conflation key (when
// not ""). It goes through the same pipelines as the plain calls, but its
// answer is an array ({id, replayed}) with an idempotency key, which a
// *redis.Cmd reads into values: an allocation or two more than a plain
// publish, which keyed publishes, rarer, can afford.
func newPublishKeyedCall(ctx context.Context, key string, p edge.Publication, s *fleetSettings, once string, windowMs int64) *publishCall {
	c := &publishCall{size: len(key) + len(p.Event) + len(p.Data) + len(once) + len(p.Key) + 128, wake: make(chan struct{}, 1)}
	args := []any{"fcall", publishFunction, 1, key}
	if once != "" {
		// The idempotency key is declared too, so that Redis Cluster
		// refuses the call while a resharding has the stream and it on
		// two masters.
		args = []any{"fcall", publishFunction, 2, key, key + ":once:" + once}
	}
	args = append(args, p.Event, p.Data, s.options[0], s.options[1], s.options[2], s.options[3], s.options[4], s.options[5])
	if once != "" {
		args = append(args, optIdempotencyKey, once, optIdempotencyTTLMs, windowMs)
	}
	if p.Key != "" {
		args = append(args, optKey, p.Key)
	}
	if tp := traceparent(ctx); tp != nil {
		args = append(args, optTraceparent, tp)
	}
	c.once = redis.NewCmd(ctx, args...)
	c.once.SetFirstKeyPos(3)
	return c
}

// command returns the call's command.
func (c *publishCall) command() redis.Cmder {
	if c.once != nil {
		return c.once
	}
	return c.cmd
}

// Publish stores and relays a message with one FCALL, pipelined with the
// FCALLs of concurrent publishes. When ctx carries a sampled span, the
// relayed message carries its traceparent, and every node delivers it
// with that span as the remote parent (see liveMessage); so do PublishOnce
// and PublishBatch.
func (r *Redis) Publish(ctx context.Context, channel, event string, data []byte) (edge.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	key := streamKey(channel)
	settings, err := r.currentSettings(ctx)
	if err != nil {
		return edge.ID{}, unavailable("publish", err)
	}
	c := newPublishCall(ctx, key, event, data, settings)
	if err := r.send(ctx, key, c); err != nil {
		return edge.ID{}, err
	}
	n, err := c.cmd.Result()
	if err != nil {
		return edge.ID{}, r.publishFailed(err, settings)
	}
	id, err := edge.ParseIDBytes(c.reply[:n])
	if err != nil {
		return edge.ID{}, unavailable("publish", err)
	}
	return id, nil
}

// PublishOnce is Publish with an idempotency key (see edge.OncePublisher),
// remembered for the configured IdempotencyWindow by the function itself,
// in the FCALL that stores the message: the check, the store and the
// relay are one atomic step, on whichever node of the fleet the publish
// comes to. A key that edge.ValidateIdempotencyKey refuses is refused.
func (r *Redis) PublishOnce(ctx context.Context, channel, event string, data []byte, key string) (edge.ID, bool, error) {
	if err := edge.ValidateIdempotencyKey(key); err != nil {
		return edge.ID{}, false, err
	}
	return r.PublishKeyed(ctx, edge.Publication{Channel: channel, Event: event, Data: data}, key)
}

// PublishKeyed stores p with its conflation key (edge.KeyPublisher): the
// stream entry keeps it as the field k, the relayed message as the
// attribute k=KEY. With an idempotency key once it is PublishOnce.
func (r *Redis) PublishKeyed(ctx context.Context, p edge.Publication, once string) (edge.ID, bool, error) {
	if p.Key != "" {
		if err := edge.ValidateKey(p.Key); err != nil {
			return edge.ID{}, false, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	stream := streamKey(p.Channel)
	settings, err := r.currentSettings(ctx)
	if err != nil {
		return edge.ID{}, false, unavailable("publish", err)
	}
	c := newPublishKeyedCall(ctx, stream, p, settings, once, r.cfg.IdempotencyWindow.Milliseconds())
	if err := r.send(ctx, stream, c); err != nil {
		return edge.ID{}, false, err
	}
	reply, err := c.once.Result()
	if err != nil && strings.Contains(err.Error(), "edge: idempotency key reused") {
		return edge.ID{}, false, fmt.Errorf("%w: the idempotency key %q was used for another message", edge.ErrBadRequest, once)
	}
	if err != nil {
		return edge.ID{}, false, r.publishFailed(err, settings)
	}
	id, replayed, err := onceReply(reply)
	if err != nil {
		return edge.ID{}, false, unavailable("publish", err)
	}
	return id, replayed, nil
}

// onceReply reads the function's answer to a publish with an idempotency
// key, {id, 0 or 1}, or to one without, the id.
func onceReply(v any) (edge.ID, bool, error) {
	if text, ok := v.(string); ok {
		id, err := edge.ParseID(text)
		return id, false, err
	}
	reply, _ := v.([]any)
	if len(reply) == 2 {
		text, ok := reply[0].(string)
		replayed, ok2 := reply[1].(int64)
		if ok && ok2 && (replayed == 0 || replayed == 1) {
			id, err := edge.ParseID(text)
			return id, replayed == 1, err
		}
	}
	return edge.ID{}, false, fmt.Errorf("resume: the publish function answered %v, not an id or {id, replayed}", v)
}

// send has c run in a pipeline to the master that stores key, and returns
// once c was answered (its command holds the answer), or an error wrapping
// edge.ErrUnavailable when c was not sent.
func (r *Redis) send(ctx context.Context, key string, c *publishCall) error {
	q, err := r.publishQueue(ctx, key)
	if err != nil {
		return unavailable("publish", err)
	}
	q.mu.Lock()
	if q.sending < maxPublishPipelines {
		q.sending++
		c.state = callSending
		q.mu.Unlock()
		r.sendPublishes(ctx, q, c)
		return nil
	}
	c.state = callQueued
	q.calls = append(q.calls, c)
	q.mu.Unlock()
	if !q.wait(ctx, c) {
		return unavailable("publish", ctx.Err())
	}
	if c.state == callLeading {
		r.sendPublishes(ctx, q, c)
	}
	return nil
}

// publishFailed returns the error of a publish that the function refused
// or that Redis did not answer.
func (r *Redis) publishFailed(err error, settings *fleetSettings) error {
	if strings.Contains(err.Error(), "edge: payload too large") {
		// This node allows more than the fleet it follows.
		return fmt.Errorf("%w: the fleet's max-payload is %d bytes", edge.ErrPayloadTooLarge, settings.maxPayload)
	}
	r.relearn()
	return unavailable("publish", err)
}

// publishQueue returns the queue of the master that stores key.
func (r *Redis) publishQueue(ctx context.Context, key string) (*publishQueue, error) {
	if r.cluster == nil {
		return &r.publishes, nil
	}
	node, err := r.cluster.MasterForKey(ctx, key)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	if q, ok := r.masterPublishes.Load(addr); ok {
		return q.(*publishQueue), nil
	}
	q, _ := r.masterPublishes.LoadOrStore(addr, new(publishQueue))
	return q.(*publishQueue), nil
}

// wait waits until c was answered or leads, and reports so; it gives up
// when ctx is done while c is still queued (then c is never sent). Once c
// is in a pipeline it waits for the answer, which the pipeline's own
// timeout bounds: the message may be stored, and its data is in use
// until then.
func (q *publishQueue) wait(ctx context.Context, c *publishCall) bool {
	select {
	case <-c.wake:
		return true
	case <-ctx.Done():
	}
	q.mu.Lock()
	if c.state == callQueued {
		i := slices.Index(q.calls, c)
		q.calls = slices.Delete(q.calls, i, i+1)
		q.mu.Unlock()
		return false
	}
	q.mu.Unlock()
	<-c.wake
	return true
}

// sendPublishes sends first and the calls queued in q as one pipeline,
// wakes their publishers, and hands the next pipeline to the oldest queued
// call.
func (r *Redis) sendPublishes(ctx context.Context, q *publishQueue, first *publishCall) {
	q.mu.Lock()
	batch := q.takeLocked(first)
	q.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	r.execPublishes(ctx, batch)
	cancel()

	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range batch[1:] {
		c.wake <- struct{}{}
	}
	if len(q.calls) == 0 {
		q.sending--
		return
	}
	next := q.calls[0]
	q.calls = slices.Delete(q.calls, 0, 1)
	next.state = callLeading
	next.wake <- struct{}{}
}

// takeLocked returns first and as many queued calls as fit in a pipeline,
// oldest first.
func (q *publishQueue) takeLocked(first *publishCall) []*publishCall {
	batch := []*publishCall{first}
	size, n := first.size, 0
	for n < len(q.calls) && len(batch) < maxPublishBatch && size < maxPublishBatchBytes {
		c := q.calls[n]
		c.state = callSending
		batch = append(batch, c)
		size += c.size
		n++
	}
	rest := copy(q.calls, q.calls[n:])
	clear(q.calls[rest:])
	q.calls = q.calls[:rest]
	return batch
}

// execPublishes runs the FCALLs of batch, loading the function and running
// them again if Redis lost it (a restart without persistence, a flush, a
// failover) or holds an older one (a node of the previous release started
// during a rolling upgrade, and its function refuses the options, or
// options it does not know yet): "Function not found" and "edge: usage"
// mean nothing was run.
func (r *Redis) execPublishes(ctx context.Context, batch []*publishCall) {
	r.pipeline(ctx, batch)
	var missing []*publishCall
	for _, c := range batch {
		if functionOutdated(c.command().Err()) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	if err := r.loadFunction(ctx); err != nil {
		for _, c := range missing {
			c.command().SetErr(err)
		}
		return
	}
	r.pipeline(ctx, missing)
}

// pipeline runs the calls' commands, as one pipeline when there are
// several; every command gets its own result.
func (r *Redis) pipeline(ctx context.Context, calls []*publishCall) {
	if len(calls) == 1 {
		r.rdb.Process(ctx, calls[0].command())
		return
	}
	p := r.rdb.Pipeline()
	for _, c := range calls {
		p.Process(ctx, c.command())
	}
	p.Exec(ctx)
}
