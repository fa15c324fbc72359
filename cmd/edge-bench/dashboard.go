package main

import (
	"bytes"
	"strconv"
)

// Payload forms (--payload).
const (
	payloadPlain     = "plain"
	payloadDashboard = "dashboard"
)

// appendMessage appends the payload of message seq of a channel, sent at
// sent (unix nanoseconds), in form (--payload) and of about size bytes.
func appendMessage(b []byte, form string, seq uint64, sent int64, size int) []byte {
	if form == payloadDashboard {
		return appendDashboard(b, seq, sent, size)
	}
	return appendPayload(b, seq, sent, size)
}

// dashboardFields are the labels of a dashboard state's fields, taken in
// turn (with a number after the first round) until the state has its
// size. Every fourth field holds a word, the others a number.
var dashboardFields = [...]string{
	"status", "cpu_user", "cpu_system", "load_1m", "region", "mem_used", "mem_free", "disk_read",
	"health", "disk_write", "net_in", "net_out", "queue", "requests", "errors", "p50_ms",
	"mode", "p99_ms", "sessions", "orders", "leader", "revenue", "refunds", "stock",
}

// dashboardWords are the values of the word fields.
var dashboardWords = [...]string{"ok", "warn", "degraded", "eu-west", "us-east", "primary", "standby", "idle"}

// dashboardPeriod returns every how many updates field i changes: every
// fourth field every 8 updates, the others every 64, so that an update
// changes about two fields besides seq and t.
func dashboardPeriod(i int) uint64 {
	if i%4 == 1 {
		return 8
	}
	return 64
}

// appendDashboard appends update seq of a dashboard state: a flat JSON
// object of about size bytes (more when size is below its smallest form)
// whose first members are "seq" and "t", as parsePayload reads them,
// followed by number and word fields of which each update changes a few,
// and a "note" string that pads the object to size. Its bytes need no
// escaping beyond the JSON string of a frame (quotes only).
func appendDashboard(b []byte, seq uint64, sent int64, size int) []byte {
	start := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	const noteRoom = len(`,"note":""}`) + 8
	for i := 0; len(b)-start+dashboardFieldLen+noteRoom <= size; i++ {
		b = appendDashboardField(b, i, seq)
	}
	b = append(b, `,"note":"`...)
	for len(b)-start < size-2 {
		b = append(b, "steady state "[(len(b)-start)%13])
	}
	return append(b, `"}`...)
}

// dashboardFieldLen is the largest length of one field that
// appendDashboardField appends.
const dashboardFieldLen = len(`,"disk_write_99":"degraded"`)

// appendDashboardField appends field i of update seq: its value depends
// on seq only through seq+i divided by the field's period, so it changes
// once a period, the fields at staggered updates.
func appendDashboardField(b []byte, i int, seq uint64) []byte {
	name := dashboardFields[i%len(dashboardFields)]
	b = append(b, `,"`...)
	b = append(b, name...)
	if round := i / len(dashboardFields); round > 0 {
		b = append(b, '_')
		b = strconv.AppendInt(b, int64(round), 10)
	}
	b = append(b, `":`...)
	v := (seq+uint64(i))/dashboardPeriod(i)*2654435761 + uint64(i)*40503
	if i%4 == 0 {
		b = append(b, '"')
		b = append(b, dashboardWords[v%uint64(len(dashboardWords))]...)
		return append(b, '"')
	}
	b = strconv.AppendUint(b, v%100000/100, 10)
	b = append(b, '.')
	return strconv.AppendUint(b, 10+v%90, 10)
}

// Prefixes of a dashboard payload: as published (and on SSE), and as a
// JSON string in the frames of WebSocket and long-poll.
var (
	dashboardSeq        = []byte(`{"seq":`)
	dashboardSeqEscaped = []byte(`{\"seq\":`)
	dashboardT          = []byte(`,"t":`)
	dashboardTEscaped   = []byte(`,\"t\":`)
)

// parseDashboard reads the sequence number and send time at the start of
// a payload made by appendDashboard, as is or escaped in a JSON string.
func parseDashboard(p []byte) (seq uint64, sent int64, ok bool) {
	tField := dashboardT
	rest, found := bytes.CutPrefix(p, dashboardSeq)
	if !found {
		if rest, found = bytes.CutPrefix(p, dashboardSeqEscaped); !found {
			return 0, 0, false
		}
		tField = dashboardTEscaped
	}
	seq, rest, ok = cutUint(rest)
	if !ok {
		return 0, 0, false
	}
	if rest, found = bytes.CutPrefix(rest, tField); !found {
		return 0, 0, false
	}
	t, _, ok := cutUint(rest)
	if !ok || t > 1<<63-1 {
		return 0, 0, false
	}
	return seq, int64(t), true
}
