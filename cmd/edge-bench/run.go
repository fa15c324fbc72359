package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// transportOf returns the transport of subscriber i of a run.
func transportOf(c config, i int) string {
	if c.Transport == transportMix {
		return [...]string{transportWS, transportSSE, transportPoll}[i%3]
	}
	return c.Transport
}

// runBench loads the edge at c.URL as the doc of this command says, writes
// progress lines to progress, and returns the figures.
func runBench(ctx context.Context, c config, progress io.Writer) (*report, error) {
	if err := raiseFileLimit(c.Subs + c.Publishers); err != nil {
		return nil, err
	}
	rep := &report{
		Mode: "run", Transport: c.Transport, Publish: c.Publish, Subscribers: c.Subs,
		Channels: c.Channels, Rate: c.Rate, Size: c.Size, DurationS: c.Duration.Seconds(), PID: c.PID,
	}
	var rssBefore int64
	if c.PID > 0 {
		var err error
		if rssBefore, err = readRSS(c.PID); err != nil {
			return nil, fmt.Errorf("--pid %d: %w", c.PID, err)
		}
		rep.RSSBeforeBytes = &rssBefore
	}
	pub, err := newPublisher(c)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	env := newClientEnv(c)

	// Ramp.
	rec := new(recorder)
	subs := make([]*subscriber, c.Subs)
	for i := range subs {
		subs[i] = &subscriber{id: i, transport: transportOf(c, i), channel: i % c.Channels, env: env, shard: rec.shard(i)}
	}
	subsCtx, stopSubs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopSubs()
	rampStart := time.Now()
	started := ramp(subsCtx, len(subs), c.RampBatch, &wg, func(i int) func() { return subs[i].connect(subsCtx) })
	rampTime := time.Since(rampStart)
	for _, s := range subs[started:] {
		s.connectErr = context.Cause(subsCtx)
	}
	readyPerChannel := make([]int64, c.Channels)
	var firstConnectErr error
	for _, s := range subs {
		if s.connectErr != nil {
			rep.ConnectErrors++
			firstConnectErr = orFirst(firstConnectErr, s.connectErr)
			continue
		}
		rep.Connected++
		readyPerChannel[s.channel]++
	}
	rep.FirstConnectError = errText(firstConnectErr)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rep.Connected == 0 {
		return nil, fmt.Errorf("no subscriber connected to %s: %w", c.URL, firstConnectErr)
	}
	fmt.Fprintf(progress, "edge-bench: %d of %d subscribers ready in %.2fs (%.0f/s); publishing %g msg/s for %s\n",
		rep.Connected, c.Subs, rampTime.Seconds(), perSecond(int64(rep.Connected), rampTime), c.Rate, c.Duration)
	var cpuBefore time.Duration
	if c.PID > 0 {
		rssAfter, err := readRSS(c.PID)
		if err != nil {
			return nil, fmt.Errorf("--pid %d: %w", c.PID, err)
		}
		perConn := float64(rssAfter-rssBefore) / float64(rep.Connected)
		rep.RSSAfterBytes, rep.RSSPerConnBytes = &rssAfter, &perConn
		if cpuBefore, err = readCPU(c.PID); err != nil {
			return nil, fmt.Errorf("--pid %d: %w", c.PID, err)
		}
	}

	// Publish, then wait for stragglers.
	counts := &publishCounts{perChannel: make([]atomic.Int64, c.Channels)}
	pubStart := time.Now()
	publishAll(ctx, c, pub, counts)
	pubTime := time.Since(pubStart)
	for ch := range counts.perChannel {
		n := counts.perChannel[ch].Load()
		rep.Published += n
		rep.Expected += n * readyPerChannel[ch]
	}
	rep.PublishErrors = counts.errors.Load()
	rep.FirstPublishError = errText(counts.firstErr.get())
	rec.waitDelivered(ctx.Done(), rep.Expected, c.Drain)
	if c.PID > 0 {
		cpuAfter, err := readCPU(c.PID)
		if err != nil {
			return nil, fmt.Errorf("--pid %d: %w", c.PID, err)
		}
		cpu := (cpuAfter - cpuBefore).Seconds()
		rep.CPUS = &cpu
	}
	stopSubs()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Tally.
	var firstEndErr error
	for _, s := range subs {
		if s.connectErr != nil {
			continue
		}
		rep.Delivered += s.track.unique
		rep.Duplicated += s.track.dups
		rep.Lost += s.track.lost(counts.perChannel[s.channel].Load())
		rep.Unparsed += s.unparsed
		if s.ended != nil {
			rep.EndedEarly++
			firstEndErr = orFirst(firstEndErr, s.ended)
		}
	}
	rep.FirstEndError = errText(firstEndErr)
	rep.setLatency(rec.latency())
	rep.setRates(rampTime, pubTime, pubStart, rec.lastDelivery())
	if rep.CPUS != nil && rep.Delivered > 0 {
		perM := *rep.CPUS / (float64(rep.Delivered) / 1e6)
		rep.CPUSPerMDeliveries = &perM
	}
	if rep.Published == 0 {
		return nil, fmt.Errorf("nothing was published (%d errors): %w", rep.PublishErrors, counts.firstErr.get())
	}
	return rep, nil
}

// orFirst returns first, or err when first is nil.
func orFirst(first, err error) error {
	if first == nil {
		return err
	}
	return first
}
