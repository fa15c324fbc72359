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

// dashboardGroups and dashboardMetrics name a dashboard state's fields:
// field i is group i/8's metric i%8 ("api.cpu_pct"). Metrics 0 and 4 hold
// a word, the others a number.
var (
	dashboardGroups  = [...]string{"api", "db", "cache", "queue", "web", "auth", "search", "billing"}
	dashboardMetrics = [...]string{"status", "cpu_pct", "mem_mib", "rps", "region", "p50_ms", "p99_ms", "errors"}
)

// dashboardWords are the values of the word fields: statuses (metric 0)
// and regions (metric 4).
var dashboardWords = [2][8]string{
	{"ok", "ok", "ok", "warn", "ok", "degraded", "ok", "idle"},
	{"eu-west", "us-east", "ap-south", "eu-central", "us-west", "sa-east", "eu-north", "ap-east"},
}

// dashboardPeriod returns every how many updates field i changes: the
// cpu_pct and p50_ms fields every 8 updates, the others every 64, so that
// an update changes about two fields besides seq and t.
func dashboardPeriod(i int) uint64 {
	if i%4 == 1 {
		return 8
	}
	return 64
}

// appendDashboard appends update seq of a dashboard state: a flat JSON
// object of about size bytes (more when size is below its smallest form)
// whose first members are "seq" and "t", as parsePayload reads them,
// followed by up to dashboardMaxFields number and word fields of which
// each update changes a few, and a "note" string that pads the object to
// size. Its bytes need no
// escaping beyond the JSON string of a frame (quotes only).
func appendDashboard(b []byte, seq uint64, sent int64, size int) []byte {
	start := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	const noteRoom = len(`,"note":""}`) + 8
	for i := 0; i < dashboardMaxFields && len(b)-start+dashboardFieldLen+noteRoom <= size; i++ {
		b = appendDashboardField(b, i, seq)
	}
	b = append(b, `,"note":"`...)
	for len(b)-start < size-2 {
		b = append(b, "steady state "[(len(b)-start)%13])
	}
	return append(b, `"}`...)
}

// dashboardMaxFields is how many fields a dashboard state has at most;
// a larger state has a longer note.
const dashboardMaxFields = 40

// dashboardFieldLen is the largest length of one field that
// appendDashboardField appends.
const dashboardFieldLen = len(`,"billing.mem_mib":"eu-central"`)

// appendDashboardField appends field i of update seq: its value depends
// on seq only through seq+i divided by the field's period, so it changes
// once a period, the fields at staggered updates.
func appendDashboardField(b []byte, i int, seq uint64) []byte {
	metric := i % len(dashboardMetrics)
	b = append(b, `,"`...)
	b = append(b, dashboardGroups[i/len(dashboardMetrics)%len(dashboardGroups)]...)
	b = append(b, '.')
	b = append(b, dashboardMetrics[metric]...)
	b = append(b, `":`...)
	// A mix of the field and its version: arbitrary but repeatable values.
	v := (seq+uint64(i))/dashboardPeriod(i) + uint64(i+1)*0x9e3779b97f4a7c15 // splitmix64
	v = (v ^ v>>30) * 0xbf58476d1ce4e5b9
	v = (v ^ v>>27) * 0x94d049bb133111eb
	v ^= v >> 31
	if metric%4 == 0 {
		b = append(b, '"')
		words := &dashboardWords[metric/4]
		b = append(b, words[v%uint64(len(words))]...)
		return append(b, '"')
	}
	b = strconv.AppendUint(b, v%1_000_000/1000, 10)
	b = append(b, '.')
	return strconv.AppendUint(b, 100+v%900, 10)
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
