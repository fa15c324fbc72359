package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// report is every figure of a run or baseline. Its JSON field names are
// stable: scripts read them. Figures that need --pid are null without it.
type report struct {
	Mode        string `json:"mode"`      // run or baseline
	Transport   string `json:"transport"` // ws, sse, poll or mix; tcp for baseline
	Publish     string `json:"publish"`   // http or redis; tcp for baseline
	Subscribers int    `json:"subscribers"`
	Workers     int    `json:"workers"` // processes that ran the subscribers (run only)
	Connected   int    `json:"connected"`
	// ConnectedPerURL is how many subscribers each --url had ready
	// after the ramp, in --url's order (run only).
	ConnectedPerURL []int64 `json:"connected_per_url"`
	ConnectErrors   int     `json:"connect_errors"`
	EndedEarly      int     `json:"ended_early"` // connections that ended before the run stopped them
	Channels        int     `json:"channels"`
	Rate            float64 `json:"rate"`        // 0 with ClosedLoop
	ClosedLoop      bool    `json:"closed_loop"` // --rate max (run only)
	Publishers      int     `json:"publishers"`  // publishing goroutines (run only)
	Size            int     `json:"size"`
	DurationS       float64 `json:"duration_s"`

	RampS     float64 `json:"ramp_s"`
	ConnsPerS float64 `json:"conns_per_s"`

	Published     int64   `json:"published"`
	PublishErrors int64   `json:"publish_errors"`
	PublishedPerS float64 `json:"published_per_s"`
	Expected      int64   `json:"expected"`
	Delivered     int64   `json:"delivered"`
	Lost          int64   `json:"lost"`
	Duplicated    int64   `json:"duplicated"`
	Unparsed      int64   `json:"unparsed"` // payloads that were not edge-bench's
	DeliveredPerS float64 `json:"delivered_per_s"`

	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyP999Ms float64 `json:"latency_p999_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`

	// With --reconnect (null without): subscribers whose connection
	// ended at least once, those of them not back when the run stopped,
	// their reconnects, the 429 and 503 answers to them, the time from
	// the first connection loss until the last disturbed subscriber was
	// ready again (null while one is still down), and the latency of
	// the deliveries made before their subscriber's first loss.
	Disturbed               *int     `json:"disturbed"`
	StillDown               *int     `json:"still_down"`
	Reconnects              *int64   `json:"reconnects"`
	ReconnectsRefused       *int64   `json:"reconnects_refused"`
	AllBackS                *float64 `json:"all_back_s"`
	LatencyP99UndisturbedMs *float64 `json:"latency_p99_undisturbed_ms"`
	// Gaps counts the gap signals subscribers received (history after
	// their cursor was lost), on every run.
	Gaps int64 `json:"gaps"`
	// PublishRetries counts the tries after a message's first, through
	// another node (--reconnect; 0 without).
	PublishRetries int64 `json:"publish_retries"`

	Target             string   `json:"target"` // edge, nchan or centrifugo (run only)
	PID                int      `json:"pid"`    // the first of PIDs, 0 for none
	PIDs               []int    `json:"pids"`   // the server's processes (--pid), summed
	RSSBeforeBytes     *int64   `json:"rss_before_bytes"`
	RSSAfterBytes      *int64   `json:"rss_after_bytes"`
	RSSPerConnBytes    *float64 `json:"rss_per_conn_bytes"`
	CPUS               *float64 `json:"cpu_s"`
	CPUSPerMDeliveries *float64 `json:"cpu_s_per_million_deliveries"`

	FirstConnectError string `json:"first_connect_error"`
	FirstEndError     string `json:"first_end_error"`
	FirstPublishError string `json:"first_publish_error"`

	// The form of the payloads and the subscribe options of the run
	// (run only): Conflate is "" without --conflate, Delta "" without
	// --delta.
	Payload   string  `json:"payload"`
	Conflate  string  `json:"conflate"`
	Delta     string  `json:"delta"`
	Compress  bool    `json:"compress"`
	KeyCount  int     `json:"key_count"`
	WakeGapMs float64 `json:"wake_gap_ms"`
	// Per connected subscriber and hour of publishing (run only): the
	// bytes its connections received from the edge (mean, and the most
	// one subscriber received) and sent to it, its wake-ups and its
	// first deliveries, counted from the end of the ramp until the end
	// of the drain and extrapolated over the publishing time (see the
	// package doc, "Bytes and wake-ups per subscriber").
	BytesReceivedPerSubHour    float64 `json:"bytes_received_per_sub_hour"`
	BytesReceivedMaxPerSubHour float64 `json:"bytes_received_max_per_sub_hour"`
	BytesSentPerSubHour        float64 `json:"bytes_sent_per_sub_hour"`
	WakeupsPerSubHour          float64 `json:"wakeups_per_sub_hour"`
	DeliveredPerSubHour        float64 `json:"delivered_per_sub_hour"`
	// Deltas and FullMessages count the first deliveries of --delta by
	// kind (0 without). Reordered counts first deliveries below an
	// earlier one of their subscriber (--conflate; 0 without).
	Deltas       int64 `json:"deltas"`
	FullMessages int64 `json:"full_messages"`
	Reordered    int64 `json:"reordered"`
}

// setTraffic fills the figures per subscriber and hour from what the
// shares' subscribers received while publishing took pubTime.
func (r *report) setTraffic(tallies []tallyFigures, pubTime time.Duration) {
	var received, receivedMax, sent, wakeups int64
	for _, t := range tallies {
		received += t.BytesReceived
		receivedMax = max(receivedMax, t.BytesReceivedMax)
		sent += t.BytesSent
		wakeups += t.Wakeups
		r.Deltas += t.Deltas
		r.FullMessages += t.Fulls
		r.Reordered += t.Reordered
	}
	if r.Connected == 0 || pubTime <= 0 {
		return
	}
	perSubHour := func(n int64, subs int) float64 { return float64(n) / float64(subs) / pubTime.Hours() }
	r.BytesReceivedPerSubHour = perSubHour(received, r.Connected)
	r.BytesReceivedMaxPerSubHour = perSubHour(receivedMax, 1)
	r.BytesSentPerSubHour = perSubHour(sent, r.Connected)
	r.WakeupsPerSubHour = perSubHour(wakeups, r.Connected)
	r.DeliveredPerSubHour = perSubHour(r.Delivered, r.Connected)
}

// options describes the payload form and the subscribe options of the
// run, "" for plain payloads without options.
func (r *report) options() string {
	var o []string
	if r.Payload != "" && r.Payload != payloadPlain {
		o = append(o, "payload "+r.Payload)
	}
	if r.Conflate != "" {
		o = append(o, "conflate="+r.Conflate)
	}
	if r.Delta != "" {
		o = append(o, "delta="+r.Delta)
	}
	if r.Compress {
		o = append(o, "compress=1")
	}
	if r.KeyCount > 0 {
		o = append(o, fmt.Sprintf("%d keys", r.KeyCount))
	}
	return strings.Join(o, ", ")
}

// byteSize formats n bytes for people: B, KiB, MiB or GiB.
func byteSize(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for ; n >= 1024 && i < len(units)-1; i++ {
		n /= 1024
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// setLatency fills the latency figures from h (nanoseconds).
func (r *report) setLatency(h *histogram) {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	r.LatencyP50Ms = ms(h.Quantile(0.50))
	r.LatencyP99Ms = ms(h.Quantile(0.99))
	r.LatencyP999Ms = ms(h.Quantile(0.999))
	r.LatencyMaxMs = ms(h.Max())
}

// setReconnects fills the figures of --reconnect from d and the latency
// histogram of undisturbed deliveries.
func (r *report) setReconnects(d disturbance, steady *histogram) {
	r.Disturbed, r.StillDown = &d.Disturbed, &d.StillDown
	r.Reconnects, r.ReconnectsRefused = &d.Reconnects, &d.Refused
	if d.Disturbed > 0 && d.StillDown == 0 {
		back := time.Duration(d.LastBack - d.FirstLost).Seconds()
		r.AllBackS = &back
	}
	p99 := float64(steady.Quantile(0.99)) / 1e6
	r.LatencyP99UndisturbedMs = &p99
}

// setRates fills the rates: publishing took pubTime, and deliveries ran
// from the first publish until lastDelivery.
func (r *report) setRates(rampTime, pubTime time.Duration, pubStart, lastDelivery time.Time) {
	r.RampS = rampTime.Seconds()
	r.ConnsPerS = perSecond(int64(r.Connected), rampTime)
	r.PublishedPerS = perSecond(r.Published, pubTime)
	if !lastDelivery.IsZero() {
		r.DeliveredPerS = perSecond(r.Delivered, lastDelivery.Sub(pubStart))
	}
}

// load says how fast the run published: its fixed rate, or the closed
// loop of its publishers.
func (r *report) load() string {
	if r.ClosedLoop {
		return fmt.Sprintf("max msg/s (closed loop, %d publishers)", r.Publishers)
	}
	return fmt.Sprintf("%g msg/s", r.Rate)
}

// perSecond returns n per second over d (0 for an empty d).
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// errText returns err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// write prints r as one JSON line, or as a table for people.
func (r *report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("mode", "%s (transport %s, publish %s)", r.Mode, r.Transport, r.Publish)
	if r.Target != "" {
		row("target", "%s", r.Target)
	}
	row("subscribers", "%d requested, %d connected, %d connect errors, %d ended early", r.Subscribers, r.Connected, r.ConnectErrors, r.EndedEarly)
	if len(r.ConnectedPerURL) > 1 {
		row("per url", "%v connected", r.ConnectedPerURL)
	}
	if r.Workers > 1 {
		row("workers", "%d processes", r.Workers)
	}
	row("channels", "%d", r.Channels)
	row("load", "%s × %d bytes for %gs", r.load(), r.Size, r.DurationS)
	if o := r.options(); o != "" {
		row("options", "%s", o)
	}
	row("ramp", "%.0f conn/s (%.2fs)", r.ConnsPerS, r.RampS)
	row("published", "%d (%.0f/s), %d errors", r.Published, r.PublishedPerS, r.PublishErrors)
	if r.Disturbed != nil {
		row("publish retries", "%d", r.PublishRetries)
	}
	row("expected", "%d", r.Expected)
	row("delivered", "%d (%.0f msg/s)", r.Delivered, r.DeliveredPerS)
	row("lost", "%d", r.Lost)
	row("duplicated", "%d", r.Duplicated)
	if r.Gaps > 0 || r.Disturbed != nil {
		row("gaps", "%d", r.Gaps)
	}
	if r.Disturbed != nil {
		back := "not all back"
		if r.AllBackS != nil {
			back = fmt.Sprintf("all back %.2fs after the first loss", *r.AllBackS)
		}
		row("reconnects", "%d subscribers disturbed, %d reconnects, %d refused (429/503), %d still down; %s",
			*r.Disturbed, *r.Reconnects, *r.ReconnectsRefused, *r.StillDown, back)
	}
	if r.Conflate != "" {
		row("reordered", "%d", r.Reordered)
	}
	if r.Delta != "" {
		row("deltas", "%d deltas, %d full messages", r.Deltas, r.FullMessages)
	}
	if r.Unparsed > 0 {
		row("unparsed", "%d", r.Unparsed)
	}
	if r.Mode == "run" {
		row("bytes/sub/hour", "%s received (max %s), %s sent",
			byteSize(r.BytesReceivedPerSubHour), byteSize(r.BytesReceivedMaxPerSubHour), byteSize(r.BytesSentPerSubHour))
		row("wake-ups/sub/hour", "%.0f (gap %gms)", r.WakeupsPerSubHour, r.WakeGapMs)
		delivered := "%.0f"
		args := []any{r.DeliveredPerSubHour}
		if r.Expected > 0 {
			delivered += " (%.1f%% of published)"
			args = append(args, 100*float64(r.Delivered)/float64(r.Expected))
		}
		row("delivered/sub/hour", delivered, args...)
	}
	row("latency p50", "%.3f ms", r.LatencyP50Ms)
	row("latency p99", "%.3f ms", r.LatencyP99Ms)
	row("latency p99.9", "%.3f ms", r.LatencyP999Ms)
	row("latency max", "%.3f ms", r.LatencyMaxMs)
	if r.LatencyP99UndisturbedMs != nil {
		row("latency p99 undisturbed", "%.3f ms", *r.LatencyP99UndisturbedMs)
	}
	if r.RSSPerConnBytes != nil {
		row(r.Target+" RSS", "%.1f MiB before ramp, %.1f MiB after", float64(*r.RSSBeforeBytes)/(1<<20), float64(*r.RSSAfterBytes)/(1<<20))
		row(r.Target+" RSS/conn", "%.0f bytes (%.2f KiB)", *r.RSSPerConnBytes, *r.RSSPerConnBytes/1024)
	}
	if r.CPUS != nil {
		row(r.Target+" CPU", "%.2f s while delivering", *r.CPUS)
		if r.CPUSPerMDeliveries != nil {
			row(r.Target+" CPU/M deliveries", "%.2f s", *r.CPUSPerMDeliveries)
		}
	}
	for _, e := range []struct{ name, text string }{
		{"first connect error", r.FirstConnectError},
		{"first ended early", r.FirstEndError},
		{"first publish error", r.FirstPublishError},
	} {
		if e.text != "" {
			row(e.name, "%s", e.text)
		}
	}
	return tw.Flush()
}
