package resume

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
)

var _ edge.BatchPublisher = (*Redis)(nil)

// publishBatchFunction is the Redis Function that stores and relays
// several messages of one channel atomically (see edge.lua):
//
//	FCALL edge_publish_batch 1 edge:{CHANNEL} COUNT EVENT PAYLOAD ... [NAME VALUE]...
//
// which answers the ids, in order.
const publishBatchFunction = "edge_publish_batch"

// PublishBatch stores and relays the messages of each channel of pubs with
// one FCALL of publishBatchFunction, all channels' FCALLs in one pipeline:
// one round trip to a single Redis, and on Redis Cluster one to each
// master that stores one of the channels (the cluster client groups a
// pipeline by node and sends to the nodes in parallel). A message over the
// fleet's max-payload is refused on its own, before its channel's FCALL.
// Like Publish, it never retries an FCALL that may have run.
func (r *Redis) PublishBatch(ctx context.Context, pubs []edge.Publication) []edge.Published {
	out := make([]edge.Published, len(pubs))
	// A batch once begun is carried through when its client leaves, as a
	// pipeline of single publishes is: each channel's FCALL is atomic, so
	// a batch cut off would leave some channels stored and others not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	settings, err := r.currentSettings(ctx)
	if err != nil {
		err = unavailable("publish", err)
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	// Every message of the batch carries the batch's traceparent.
	tp := traceparent(ctx)
	type call struct {
		group []int // indexes into pubs
		cmd   *redis.StringSliceCmd
	}
	var calls []call
	for _, group := range byChannel(pubs) {
		kept := group[:0]
		for _, i := range group {
			if int64(len(pubs[i].Data)) > settings.maxPayload {
				out[i].Err = fmt.Errorf("%w: the fleet's max-payload is %d bytes", edge.ErrPayloadTooLarge, settings.maxPayload)
				continue
			}
			kept = append(kept, i)
		}
		if len(kept) == 0 {
			continue
		}
		key := streamKey(pubs[kept[0]].Channel)
		args := make([]any, 0, 5+2*len(kept)+len(settings.options)+2)
		args = append(args, "fcall", publishBatchFunction, 1, key, len(kept))
		for _, i := range kept {
			args = append(args, pubs[i].Event, pubs[i].Data)
		}
		args = append(args, settings.options[:]...)
		if keys := batchKeys(pubs, kept); keys != "" {
			args = append(args, optKeys, keys)
		}
		if tp != nil {
			args = append(args, optTraceparent, tp)
		}
		cmd := redis.NewStringSliceCmd(ctx, args...)
		cmd.SetFirstKeyPos(3)
		calls = append(calls, call{kept, cmd})
	}
	cmds := make([]redis.Cmder, len(calls))
	for i, c := range calls {
		cmds[i] = c.cmd
	}
	r.execBatches(ctx, cmds)
	relearn := false
	for _, c := range calls {
		ids, err := c.cmd.Result()
		if err == nil && len(ids) != len(c.group) {
			err = fmt.Errorf("%d ids for %d messages", len(ids), len(c.group))
		}
		switch {
		case err != nil && strings.Contains(err.Error(), "edge: payload too large"):
			err = fmt.Errorf("%w: the fleet's max-payload is %d bytes", edge.ErrPayloadTooLarge, settings.maxPayload)
		case err != nil:
			relearn = true
			err = unavailable("publish", err)
		}
		for n, i := range c.group {
			if err != nil {
				out[i].Err = err
				continue
			}
			if out[i].ID, out[i].Err = edge.ParseID(ids[n]); out[i].Err != nil {
				out[i].Err = unavailable("publish", out[i].Err)
			}
		}
	}
	if relearn {
		r.relearn()
	}
	return out
}

// batchKeys returns the conflation keys of the publications group of pubs
// as the option keys takes them, one per message separated by newlines,
// or "" when none has one.
func batchKeys(pubs []edge.Publication, group []int) string {
	var b strings.Builder
	for n, i := range group {
		if n > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pubs[i].Key)
	}
	if b.Len() == len(group)-1 {
		return ""
	}
	return b.String()
}

// execBatches runs cmds as one pipeline, loading the function and running
// those again that found it missing or older than this node's, as
// execPublishes does.
func (r *Redis) execBatches(ctx context.Context, cmds []redis.Cmder) {
	r.pipelineCmds(ctx, cmds)
	var missing []redis.Cmder
	for _, c := range cmds {
		if functionOutdated(c.Err()) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	if err := r.loadFunction(ctx); err != nil {
		for _, c := range missing {
			c.SetErr(err)
		}
		return
	}
	r.pipelineCmds(ctx, missing)
}

// pipelineCmds runs cmds, as one pipeline when there are several.
func (r *Redis) pipelineCmds(ctx context.Context, cmds []redis.Cmder) {
	switch len(cmds) {
	case 0:
	case 1:
		r.rdb.Process(ctx, cmds[0])
	default:
		p := r.rdb.Pipeline()
		for _, c := range cmds {
			p.Process(ctx, c)
		}
		p.Exec(ctx)
	}
}
