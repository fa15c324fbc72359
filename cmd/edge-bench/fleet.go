package main

import (
	"context"
	"sync"
	"time"
)

// share is the part of a run's subscribers that one process runs: this
// process (a fleet) or a worker process (a workerProc). The run calls
// ramp, drain and finish in turn, then close; close may come at any time
// and ends the share.
type share interface {
	// ramp connects the share's subscribers and returns once each is
	// ready or failed.
	ramp() (rampFigures, error)
	// drain is given the messages published per channel and returns once
	// the deliveries they make expected have arrived, or after --drain.
	drain(published []int64) error
	// finish stops the subscribers and returns what they received.
	finish() (tallyFigures, error)
	// close stops the share and waits for it.
	close()
}

// rampFigures is what a share's subscribers did while connecting. Times
// are unix nanoseconds, so that the shares of several processes can be
// put on one clock.
type rampFigures struct {
	Connected         int     `json:"connected"`
	ConnectErrors     int     `json:"connect_errors"`
	FirstConnectError string  `json:"first_connect_error"`
	ReadyPerChannel   []int64 `json:"ready_per_channel"`
	ReadyPerURL       []int64 `json:"ready_per_url"` // in --url's order
	StartNS           int64   `json:"start_ns"`
	EndNS             int64   `json:"end_ns"`
}

// tallyFigures is what a share's subscribers received.
type tallyFigures struct {
	Delivered      int64      `json:"delivered"`
	Duplicated     int64      `json:"duplicated"`
	Lost           int64      `json:"lost"`
	Unparsed       int64      `json:"unparsed"`
	EndedEarly     int        `json:"ended_early"`
	FirstEndError  string     `json:"first_end_error"`
	LastDeliveryNS int64      `json:"last_delivery_ns"` // 0 when nothing arrived
	Latency        *histogram `json:"latency"`
	// SteadyLatency is the latency of the deliveries made before their
	// subscriber's first connection loss (--reconnect).
	SteadyLatency *histogram  `json:"steady_latency"`
	Disturbance   disturbance `json:"disturbance"`

	// What the subscribers' connections carried from the end of the
	// share's ramp until the end of the drain (see meter), summed over
	// them, and the most one of them received.
	BytesReceived    int64 `json:"bytes_received"`
	BytesReceivedMax int64 `json:"bytes_received_max"`
	BytesSent        int64 `json:"bytes_sent"`
	Wakeups          int64 `json:"wakeups"`
	// Deltas and Fulls count the delta and the full messages of --delta;
	// Reordered the first deliveries below an earlier one (--conflate).
	Deltas    int64 `json:"deltas"`
	Fulls     int64 `json:"fulls"`
	Reordered int64 `json:"reordered"`
}

// fleet is a share run in this process: the subscribers whose number i
// (0 … --subs-1) is index modulo count. Subscriber i uses channel
// i mod --channels, node (--url) i mod the number of URLs and, with
// --transport mix, transport i mod 3, whichever process runs it; within
// the fleet, subscribers take the source addresses in turn.
type fleet struct {
	c         config
	subs      []*subscriber
	rec       *recorder
	published []int64         // messages per channel, given to drain
	ctx       context.Context // ends the subscribers' connections
	stop      context.CancelFunc
	wg        sync.WaitGroup // the receive loops

	// ramping is held while ramp runs, so that close waits for the ramp
	// to stop adding receive loops to wg before it waits for them.
	ramping sync.Mutex
}

var _ share = (*fleet)(nil)

// newFleet prepares share index of count of run c, within ctx.
func newFleet(ctx context.Context, c config, index, count int) *fleet {
	env := newClientEnv(c)
	f := &fleet{c: c, rec: new(recorder)}
	f.ctx, f.stop = context.WithCancel(ctx)
	for i := index; i < c.Subs; i += count {
		j := len(f.subs)
		f.subs = append(f.subs, &subscriber{
			id: j, transport: transportOf(c, i), channel: i % c.Channels, node: i % len(c.URLs), env: env, shard: f.rec.shard(j),
		})
	}
	return f
}

// ramp connects the fleet's subscribers, --ramp-batch at a time.
func (f *fleet) ramp() (rampFigures, error) {
	f.ramping.Lock()
	defer f.ramping.Unlock()
	r := rampFigures{ReadyPerChannel: make([]int64, f.c.Channels), ReadyPerURL: make([]int64, len(f.c.URLs)), StartNS: time.Now().UnixNano()}
	started := ramp(f.ctx, len(f.subs), f.c.RampBatch, &f.wg, func(i int) func() { return f.subs[i].connect(f.ctx) })
	r.EndNS = time.Now().UnixNano()
	var firstErr error
	for i, s := range f.subs {
		if i >= started {
			s.connectErr = context.Cause(f.ctx)
		}
		if s.connectErr != nil {
			r.ConnectErrors++
			firstErr = orFirst(firstErr, s.connectErr)
			continue
		}
		s.window = s.meter.counts() // the window's start, see drain
		r.Connected++
		r.ReadyPerChannel[s.channel]++
		r.ReadyPerURL[s.node]++
	}
	r.FirstConnectError = errText(firstErr)
	return r, nil
}

// conflateSlack is how long after a conflation window a conflated run's
// drain still waits for its deliveries.
const conflateSlack = 250 * time.Millisecond

// drain waits for the deliveries that published makes expected: with
// --conflate, which skips messages by design, until none came for a
// conflation window and conflateSlack. It then takes what each
// subscriber's meter counted since the ramp.
func (f *fleet) drain(published []int64) error {
	f.published = published
	var expected int64
	for _, s := range f.subs {
		if s.connectErr == nil {
			expected += published[s.channel]
		}
	}
	if f.c.Conflate > 0 {
		f.rec.waitQuiet(f.ctx.Done(), f.c.Conflate+conflateSlack, f.c.Drain)
	} else {
		f.rec.waitDelivered(f.ctx.Done(), expected, f.c.Drain)
	}
	for _, s := range f.subs {
		if s.connectErr == nil {
			s.window = s.meter.counts().sub(s.window)
		}
	}
	return nil
}

// finish stops the subscribers and tallies what they received.
func (f *fleet) finish() (tallyFigures, error) {
	f.close()
	t := tallyFigures{Latency: f.rec.latency(), SteadyLatency: f.rec.steadyLatency()}
	var firstEndErr error
	for _, s := range f.subs {
		if s.connectErr != nil {
			continue
		}
		published := f.published[s.channel]
		switch {
		case f.c.Delta != "":
			t.Delivered += s.ids.unique
			t.Duplicated += s.ids.dups
			t.Lost += max(published-s.ids.unique, 0)
		case f.c.Conflate > 0:
			t.Delivered += s.track.unique
			t.Duplicated += s.track.dups
			t.Lost += s.track.missedLast(published, max(f.c.KeyCount, 1))
		default:
			t.Delivered += s.track.unique
			t.Duplicated += s.track.dups
			t.Lost += s.track.lost(published)
		}
		t.Unparsed += s.unparsed
		t.BytesReceived += s.window.received
		t.BytesReceivedMax = max(t.BytesReceivedMax, s.window.received)
		t.BytesSent += s.window.sent
		t.Wakeups += s.window.wakeups
		t.Deltas += s.deltas
		t.Fulls += s.fulls
		t.Reordered += s.reordered
		t.Disturbance.add(s)
		if s.ended != nil {
			t.EndedEarly++
			firstEndErr = orFirst(firstEndErr, s.ended)
		}
	}
	t.FirstEndError = errText(firstEndErr)
	if last := f.rec.lastDelivery(); !last.IsZero() {
		t.LastDeliveryNS = last.UnixNano()
	}
	return t, nil
}

// close stops the subscribers and waits for their receive loops.
func (f *fleet) close() {
	f.stop()
	f.ramping.Lock() // any ramp has ended: no more receive loops
	defer f.ramping.Unlock()
	f.wg.Wait()
}
