package main

import (
	"context"
	"fmt"
	"io"
	"os"
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

// runBench loads the edge at c.URLs as the doc of this command says, writes
// progress lines to progress, and returns the figures. With c.Workers > 1
// the subscribers run in worker processes (see worker.go) and this process
// publishes.
func runBench(ctx context.Context, c config, progress io.Writer) (*report, error) {
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, err
	}
	if err := checkRunFiles(c, limit); err != nil {
		return nil, err
	}
	if err := checkSourcePorts(c, clientPorts()); err != nil {
		return nil, err
	}
	rep := &report{
		Mode: "run", Transport: c.Transport, Publish: c.Publish, Subscribers: c.Subs, Workers: c.Workers,
		Channels: c.Channels, Rate: c.Rate, ClosedLoop: c.ClosedLoop, Publishers: c.Publishers,
		Size: c.Size, DurationS: c.Duration.Seconds(), Target: c.Target, PIDs: c.PIDs,
		Payload: c.Payload, Delta: c.Delta, Compress: c.Compress, KeyCount: c.KeyCount,
		WakeGapMs: float64(c.WakeGap) / float64(time.Millisecond),
	}
	if c.Conflate > 0 {
		rep.Conflate = c.Conflate.String()
	}
	if len(c.PIDs) > 0 {
		rep.PID = c.PIDs[0]
	}
	var rssBefore int64
	if len(c.PIDs) > 0 {
		if rssBefore, err = readRSSSum(c.PIDs); err != nil {
			return nil, err
		}
		rep.RSSBeforeBytes = &rssBefore
	}
	pub, err := newPublisher(c)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	// Ramp.
	var shares []share
	if c.Workers == 1 {
		shares = []share{newFleet(ctx, c, 0, 1)}
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this program to start --workers: %w", err)
		}
		if shares, err = startWorkers(ctx, c, exe); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, s := range shares {
			s.close()
		}
	}()
	ramps := make([]rampFigures, len(shares))
	if err := eachShare(shares, func(i int, s share) (err error) {
		ramps[i], err = s.ramp()
		return err
	}); err != nil {
		return nil, err
	}
	readyPerChannel := make([]int64, c.Channels)
	rep.ConnectedPerURL = make([]int64, len(c.URLs))
	var firstConnectErr string
	rampStart, rampEnd := ramps[0].StartNS, ramps[0].EndNS
	for _, r := range ramps {
		rep.Connected += r.Connected
		rep.ConnectErrors += r.ConnectErrors
		firstConnectErr = orFirst(firstConnectErr, r.FirstConnectError)
		for ch, n := range r.ReadyPerChannel {
			readyPerChannel[ch] += n
		}
		for u, n := range r.ReadyPerURL {
			rep.ConnectedPerURL[u] += n
		}
		rampStart, rampEnd = min(rampStart, r.StartNS), max(rampEnd, r.EndNS)
	}
	rampTime := time.Duration(rampEnd - rampStart)
	rep.FirstConnectError = firstConnectErr
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rep.Connected == 0 {
		return nil, fmt.Errorf("no subscriber connected to %s: %s", joinURLs(c.URLs), firstConnectErr)
	}
	in := ""
	if c.Workers > 1 {
		in = fmt.Sprintf(" in %d worker processes", c.Workers)
	}
	fmt.Fprintf(progress, "edge-bench: %d of %d subscribers ready%s in %.2fs (%.0f/s); publishing %s for %s\n",
		rep.Connected, c.Subs, in, rampTime.Seconds(), perSecond(int64(rep.Connected), rampTime), rep.load(), c.Duration)
	var cpuBefore time.Duration
	if len(c.PIDs) > 0 {
		rssAfter, err := readRSSSum(c.PIDs)
		if err != nil {
			return nil, err
		}
		perConn := float64(rssAfter-rssBefore) / float64(rep.Connected)
		rep.RSSAfterBytes, rep.RSSPerConnBytes = &rssAfter, &perConn
		if cpuBefore, err = readCPUSum(c.PIDs); err != nil {
			return nil, err
		}
	}

	// Publish, then wait for stragglers.
	counts := &publishCounts{perChannel: make([]atomic.Int64, c.Channels)}
	pubStart := time.Now()
	publishAll(ctx, c, pub, counts)
	pubTime := time.Since(pubStart)
	published := make([]int64, c.Channels)
	for ch := range counts.perChannel {
		published[ch] = counts.perChannel[ch].Load()
		rep.Published += published[ch]
		rep.Expected += published[ch] * readyPerChannel[ch]
	}
	rep.PublishErrors = counts.errors.Load()
	rep.PublishRetries = counts.retries.Load()
	rep.FirstPublishError = errText(counts.firstErr.get())
	if err := eachShare(shares, func(_ int, s share) error { return s.drain(published) }); err != nil {
		return nil, err
	}
	if len(c.PIDs) > 0 {
		cpuAfter, err := readCPUSum(c.PIDs)
		if err != nil {
			return nil, err
		}
		cpu := (cpuAfter - cpuBefore).Seconds()
		rep.CPUS = &cpu
	}
	tallies := make([]tallyFigures, len(shares))
	if err := eachShare(shares, func(i int, s share) (err error) {
		tallies[i], err = s.finish()
		return err
	}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Tally.
	latency, steady := new(histogram), new(histogram)
	var dist disturbance
	var lastDelivery int64
	for _, t := range tallies {
		rep.Delivered += t.Delivered
		rep.Duplicated += t.Duplicated
		rep.Lost += t.Lost
		rep.Unparsed += t.Unparsed
		rep.EndedEarly += t.EndedEarly
		rep.FirstEndError = orFirst(rep.FirstEndError, t.FirstEndError)
		latency.Merge(t.Latency)
		steady.Merge(t.SteadyLatency)
		dist.merge(t.Disturbance)
		lastDelivery = max(lastDelivery, t.LastDeliveryNS)
	}
	rep.setLatency(latency)
	rep.Gaps = dist.Gaps
	if c.Reconnect {
		rep.setReconnects(dist, steady)
	}
	var last time.Time
	if lastDelivery > 0 {
		last = time.Unix(0, lastDelivery)
	}
	rep.setRates(rampTime, pubTime, pubStart, last)
	rep.setTraffic(tallies, max(pubTime, c.Duration))
	if rep.CPUS != nil && rep.Delivered > 0 {
		perM := *rep.CPUS / (float64(rep.Delivered) / 1e6)
		rep.CPUSPerMDeliveries = &perM
	}
	if rep.Published == 0 {
		return nil, fmt.Errorf("nothing was published (%d errors): %w", rep.PublishErrors, counts.firstErr.get())
	}
	return rep, nil
}

// eachShare calls fn for every share at once and returns the first error.
// When one fails it closes every share, so that the others return soon.
func eachShare(shares []share, fn func(i int, s share) error) error {
	var failed firstError
	var wg sync.WaitGroup
	for i, s := range shares {
		wg.Go(func() {
			if err := fn(i, s); err != nil {
				failed.set(err)
				for _, o := range shares {
					o.close()
				}
			}
		})
	}
	wg.Wait()
	return failed.get()
}

// orFirst returns first, or next when first is the zero value.
func orFirst[T comparable](first, next T) T {
	var zero T
	if first == zero {
		return next
	}
	return first
}
