package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"sync"
	"time"
)

// transportTCP is the transport of baseline clients.
const transportTCP = "tcp"

// connectTCP connects a baseline client: ready once connected, then
// every --size bytes read are one message. It reads through a 4 KiB
// buffer, as the SSE and long-poll clients do, so that the baseline's
// client side costs what theirs does.
func (s *subscriber) connectTCP(ctx context.Context) (receive func() error, err error) {
	conn, err := s.env.dialers[s.id%len(s.env.dialers)].DialContext(ctx, "tcp", s.host())
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	closeConn := closeOnDone(ctx, conn)
	return func() error {
		defer closeConn()
		r := bufio.NewReaderSize(conn, 4096)
		frame := make([]byte, s.env.size)
		for {
			if _, err := io.ReadFull(r, frame); err != nil {
				return fmt.Errorf("tcp: %w", err)
			}
			s.receive(frame, time.Now().UnixNano())
		}
	}, nil
}

// fanWriter writes every frame it is given to each of its connections, one
// write per connection; a connection whose write fails is closed and
// dropped.
type fanWriter struct {
	conns  []net.Conn
	frames chan []byte
}

// run writes frames until the frames channel is closed.
func (w *fanWriter) run() {
	for f := range w.frames {
		for i, conn := range w.conns {
			if conn == nil {
				continue
			}
			if _, err := conn.Write(f); err != nil {
				conn.Close()
				w.conns[i] = nil
			}
		}
	}
}

// runBaseline measures a plain TCP fan-out on loopback in this process:
// c.Subs clients, one server writer goroutine per CPU, c.Rate messages/s
// of c.Size bytes for c.Duration.
func runBaseline(ctx context.Context, c config, progress io.Writer) (*report, error) {
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, err
	}
	if err := checkFiles(2*c.Subs, limit, "use fewer --subs; baseline runs in one process"); err != nil {
		return nil, err
	}
	if err := checkSourcePorts(c, clientPorts()); err != nil {
		return nil, err
	}
	rep := &report{
		Mode: "baseline", Transport: transportTCP, Publish: transportTCP, Subscribers: c.Subs,
		Channels: 1, Rate: c.Rate, Size: c.Size, DurationS: c.Duration.Seconds(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	accepted := make(chan net.Conn, c.Subs)
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- conn:
			default: // not one of ours
				conn.Close()
			}
		}
	})
	var serverConns []net.Conn
	defer func() {
		for _, conn := range serverConns {
			conn.Close()
		}
	}()

	// Ramp: connect the clients, then collect the server's side.
	c.URLs = []*url.URL{{Scheme: transportTCP, Host: ln.Addr().String()}}
	env := newClientEnv(c)
	rec := new(recorder)
	subs := make([]*subscriber, c.Subs)
	for i := range subs {
		subs[i] = &subscriber{id: i, transport: transportTCP, env: env, shard: rec.shard(i)}
	}
	subsCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	rampStart := time.Now()
	started := ramp(subsCtx, len(subs), c.RampBatch, &wg, func(i int) func() { return subs[i].connect(subsCtx) })
	rampTime := time.Since(rampStart)
	var firstConnectErr error
	for i, s := range subs {
		if i >= started {
			s.connectErr = context.Cause(subsCtx)
		}
		if s.connectErr != nil {
			rep.ConnectErrors++
			firstConnectErr = orFirst(firstConnectErr, s.connectErr)
			continue
		}
		rep.Connected++
	}
	rep.FirstConnectError = errText(firstConnectErr)
	if rep.Connected == 0 {
		return nil, fmt.Errorf("no client connected: %w", firstConnectErr)
	}
	timeout := time.NewTimer(connectTimeout)
	defer timeout.Stop()
	for len(serverConns) < rep.Connected {
		select {
		case conn := <-accepted:
			serverConns = append(serverConns, conn)
		case <-timeout.C:
			return nil, fmt.Errorf("the server accepted %d of %d connections in %s", len(serverConns), rep.Connected, connectTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fmt.Fprintf(progress, "edge-bench: %d of %d clients connected in %.2fs (%.0f/s); fanning out %g msg/s for %s\n",
		rep.Connected, c.Subs, rampTime.Seconds(), perSecond(int64(rep.Connected), rampTime), c.Rate, c.Duration)

	// Fan out, then wait for stragglers.
	writers := make([]*fanWriter, min(runtime.GOMAXPROCS(0), len(serverConns)))
	for i := range writers {
		writers[i] = &fanWriter{frames: make(chan []byte, 256)}
	}
	for i, conn := range serverConns {
		w := writers[i%len(writers)]
		w.conns = append(w.conns, conn)
	}
	var writersDone sync.WaitGroup
	for _, w := range writers {
		writersDone.Go(w.run)
	}
	pubStart := time.Now()
	pace(ctx, pubStart, c.Rate, c.total(), 1, func(m int64) {
		f := appendPayload(make([]byte, 0, c.Size), uint64(m), time.Now().UnixNano(), c.Size)
		for _, w := range writers {
			select {
			case w.frames <- f:
			case <-ctx.Done():
				return
			}
		}
		rep.Published++
	})
	pubTime := time.Since(pubStart)
	for _, w := range writers {
		close(w.frames)
	}
	writersDone.Wait()
	rep.Expected = rep.Published * int64(rep.Connected)
	rec.waitDelivered(ctx.Done(), rep.Expected, c.Drain)
	stopSubs()
	ln.Close() // ends the accept loop
	for _, conn := range serverConns {
		conn.Close()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var firstEndErr error
	for _, s := range subs {
		if s.connectErr != nil {
			continue
		}
		rep.Delivered += s.track.unique
		rep.Duplicated += s.track.dups
		rep.Lost += s.track.lost(rep.Published)
		rep.Unparsed += s.unparsed
		if s.ended != nil {
			rep.EndedEarly++
			firstEndErr = orFirst(firstEndErr, s.ended)
		}
	}
	rep.FirstEndError = errText(firstEndErr)
	rep.setLatency(rec.latency())
	rep.setRates(rampTime, pubTime, pubStart, rec.lastDelivery())
	return rep, nil
}
