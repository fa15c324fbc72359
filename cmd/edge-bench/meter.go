package main

import (
	"net"
	"sync/atomic"
	"time"
)

// meter counts what one subscriber's connections carried: the bytes read
// from and written to them (HTTP headers, chunked framing, WebSocket
// frames: everything above TCP) and its wake-ups. A wake-up is a read
// that returns data after the subscriber's connection was quiet for at
// least gap; reads closer together are one burst. With perRequest (long
// polling), the first read after each request written is a wake-up too,
// so every request/answer round trip counts once at least.
//
// Its connections are read by the subscriber's goroutine; the counters
// are atomic so that the run can take them while it reads.
type meter struct {
	received   atomic.Int64
	sent       atomic.Int64
	wakeups    atomic.Int64
	gap        time.Duration
	perRequest bool
	lastRead   time.Time // of the last read that returned data
	requested  bool      // a request was written since the last read
}

// meterCounts is what a meter counted up to one moment.
type meterCounts struct {
	received, sent, wakeups int64
}

// counts returns what m counted so far.
func (m *meter) counts() meterCounts {
	return meterCounts{m.received.Load(), m.sent.Load(), m.wakeups.Load()}
}

// sub returns what was counted between earlier and c.
func (c meterCounts) sub(earlier meterCounts) meterCounts {
	return meterCounts{c.received - earlier.received, c.sent - earlier.sent, c.wakeups - earlier.wakeups}
}

// read accounts for a read of n bytes at now.
func (m *meter) read(n int, now time.Time) {
	if n <= 0 {
		return
	}
	m.received.Add(int64(n))
	if m.lastRead.IsZero() || now.Sub(m.lastRead) >= m.gap || m.requested {
		m.wakeups.Add(1)
	}
	m.lastRead, m.requested = now, false
}

// wrote accounts for a write of n bytes.
func (m *meter) wrote(n int) {
	if n <= 0 {
		return
	}
	m.sent.Add(int64(n))
	if m.perRequest {
		m.requested = true
	}
}

// meteredConn is a connection whose reads and writes its meter counts.
// Like the subscriber's connection, it is read by one goroutine and
// written by one goroutine at a time.
type meteredConn struct {
	net.Conn
	m *meter
}

// wrap returns c counted by m.
func (m *meter) wrap(c net.Conn) net.Conn { return &meteredConn{Conn: c, m: m} }

// Read reads from the connection and counts what it read.
func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.read(n, time.Now())
	return n, err
}

// Write writes to the connection and counts what it wrote.
func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.wrote(n)
	return n, err
}
