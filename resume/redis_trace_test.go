package resume

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// liveMessageBeforeTrace is the parser of live relay payloads of the
// release before traceparent (version 2, which ignores attributes), kept
// as it was: the parser of the nodes that relay alongside this release's
// during a rolling upgrade.
func liveMessageBeforeTrace(channel, payload string) (edge.Message, error) {
	b := []byte(payload)
	head, rest, ok1 := bytes.Cut(b, []byte{'\n'})
	event, data, ok2 := bytes.Cut(rest, []byte{'\n'})
	if !ok1 || !ok2 {
		return edge.Message{}, fmt.Errorf("live message of %q is not id\\nevent\\ndata", channel)
	}
	if len(head) > 1 && head[0] == '0' && head[1] >= '0' && head[1] <= '9' {
		head, _, _ = bytes.Cut(head[1:], []byte{' '})
	}
	id, err := edge.ParseIDBytes(head)
	if err != nil {
		return edge.Message{}, err
	}
	return edge.Message{Channel: channel, ID: id, Event: string(event), Data: data}, nil
}

// liveMessageOnly is liveMessage without the span context.
func liveMessageOnly(channel, payload string) (edge.Message, error) {
	m, _, err := liveMessage(channel, payload)
	return m, err
}

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpanID  = "00f067aa0ba902b7"
	testTP      = "00-" + testTraceID + "-" + testSpanID + "-01"
)

// sampledContext returns a context whose span context is the remote one
// of testTP.
func sampledContext(t testing.TB, flags trace.TraceFlags) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(testTraceID)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(testSpanID)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// The attributes of a live payload's id line: tp is read strictly, every
// other attribute is ignored, a list over the bounds is not read, and the
// message is delivered whatever its attributes.
func TestLiveMessageAttributes(t *testing.T) {
	long := strings.Repeat("x=y ", maxLiveAttrBytes/4)
	many := strings.Repeat("x=y ", maxLiveAttrs)
	for _, tc := range []struct {
		name, attrs string
		traced      bool
		flags       trace.TraceFlags
	}{
		{"none", "", false, 0},
		{"tp", " tp=" + testTP, true, trace.FlagsSampled},
		{"tp among unknown ones", " a=1 tp=" + testTP + " z=2 novalue", true, trace.FlagsSampled},
		{"tp not sampled", " tp=00-" + testTraceID + "-" + testSpanID + "-00", true, 0},
		{"tp with the random flag", " tp=00-" + testTraceID + "-" + testSpanID + "-03", true, trace.FlagsSampled | trace.FlagsRandom},
		{"tp with flags otel does not propagate", " tp=00-" + testTraceID + "-" + testSpanID + "-ff", true, trace.FlagsSampled | trace.FlagsRandom},
		{"unknown attributes only", " k=v x=y", false, 0},
		{"tp twice", " tp=" + testTP + " tp=" + testTP, false, 0},
		{"tp empty", " tp=", false, 0},
		{"tp uppercase", " tp=" + strings.ToUpper(testTP), false, 0},
		{"tp version 01", " tp=01" + testTP[2:], false, 0},
		{"tp version ff", " tp=ff" + testTP[2:], false, 0},
		{"tp too long", " tp=" + testTP + "-00", false, 0},
		{"tp too short", " tp=" + testTP[:54], false, 0},
		{"tp not hex", " tp=00-" + strings.Repeat("g", 32) + "-" + testSpanID + "-01", false, 0},
		{"tp zero trace id", " tp=00-" + strings.Repeat("0", 32) + "-" + testSpanID + "-01", false, 0},
		{"tp zero span id", " tp=00-" + testTraceID + "-" + strings.Repeat("0", 16) + "-01", false, 0},
		{"tp with separators moved", " tp=00-" + testTraceID[:31] + "-" + testTraceID[31:] + testSpanID[1:] + "-01", false, 0},
		{"tp named otherwise", " TP=" + testTP, false, 0},
		{"two spaces", "  tp=" + testTP, true, trace.FlagsSampled},
		{"trailing space", " tp=" + testTP + " ", true, trace.FlagsSampled},
		{"over the byte bound", " tp=" + testTP + " " + long, false, 0},
		{"over the count bound", " " + many + "tp=" + testTP, false, 0},
		{"at the count bound", " " + many[4:] + "tp=" + testTP, true, trace.FlagsSampled},
		{"binary", " tp=" + testTP + " \x00\xff=\x01", true, trace.FlagsSampled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := "01732270000000-7" + tc.attrs + "\nprice\n{\"p\":1}"
			want := edge.Message{Channel: "c", ID: edge.ID{Ms: 1732270000000, Seq: 7}, Event: "price", Data: []byte(`{"p":1}`)}
			got, sc, err := liveMessage("c", payload)
			if err != nil || !sameMessage(got, want) {
				t.Fatalf("liveMessage = %+v, %v; want %+v", got, err, want)
			}
			if before, err := liveMessageBeforeTrace("c", payload); err != nil || !sameMessage(before, want) {
				t.Fatalf("the release before traceparent read %+v, %v; want %+v", before, err, want)
			}
			if sc.IsValid() != tc.traced {
				t.Fatalf("span context %v, want one: %v", sc, tc.traced)
			}
			if !tc.traced {
				return
			}
			if sc.TraceID().String() != testTraceID || sc.SpanID().String() != testSpanID || !sc.IsRemote() || sc.TraceFlags() != tc.flags {
				t.Fatalf("span context %s/%s remote %v flags %v, want %s/%s remote, flags %v",
					sc.TraceID(), sc.SpanID(), sc.IsRemote(), sc.TraceFlags(), testTraceID, testSpanID, tc.flags)
			}
		})
	}
}

// Reading attributes allocates nothing: the relay reads every message's.
func TestLiveMessageAttributesAllocs(t *testing.T) {
	attrs := []byte("a=1 tp=" + testTP + " z=2")
	if n := testing.AllocsPerRun(100, func() { readAttrs(attrs) }); n != 0 {
		t.Fatalf("readAttrs allocates %v times", n)
	}
}

// A publish writes the traceparent of a sampled span only, and what it
// writes reads back as the same span context.
func TestTraceparent(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no span", context.Background(), ""},
		{"sampled", sampledContext(t, trace.FlagsSampled), testTP},
		{"sampled and random", sampledContext(t, trace.FlagsSampled|trace.FlagsRandom), testTP[:53] + "03"},
		{"not sampled", sampledContext(t, 0), ""},
		{"invalid", trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}.WithTraceFlags(trace.FlagsSampled)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(traceparent(tc.ctx))
			if got != tc.want {
				t.Fatalf("traceparent %q, want %q", got, tc.want)
			}
			if got == "" {
				return
			}
			sc := parseTraceparent([]byte(got))
			if want := trace.SpanContextFromContext(tc.ctx); !sc.Equal(want.WithRemote(true)) {
				t.Fatalf("%q reads as %v, want %v", got, sc, want)
			}
		})
	}
}

// liveSubscriber subscribes to a channel's live payloads directly.
func liveSubscriber(t *testing.T, srv *redistest.Server, channel string) func() string {
	t.Helper()
	ctx := context.Background()
	sub := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { sub.Close() })
	ps := sub.SSubscribe(ctx, liveKey(channel))
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		raw, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return raw.(*redis.Message).Payload
	}
}

// The function relays a traceparent on the id line of the live payload,
// of every kind of publish, keeps it out of the stream entry, and refuses
// a malformed one (nothing stored).
func TestFunctionTraceparent(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	next := liveSubscriber(t, srv, "tp")
	ctx := context.Background()
	opts := []any{optHistorySize, 1000, optHistoryTTLMs, 3600000, optMaxPayload, 65536}
	for _, tc := range []struct {
		name  string
		args  []any
		heads int // payloads relayed, each with the tp attribute
	}{
		{"the nodes' options", append(append([]any{"", "x"}, opts...), optTraceparent, testTP), 1},
		{"traceparent first", []any{"", "x", optTraceparent, testTP, optMaxPayload, 100}, 1},
		{"traceparent alone", []any{"", "x", optTraceparent, testTP}, 1},
		{"with an idempotency key", []any{"", "x", optIdempotencyKey, "K", optTraceparent, testTP}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.rdb.FCall(ctx, publishFunction, []string{streamKey("tp")}, tc.args...).Err(); err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(next(), "\n")
			if !strings.HasSuffix(head, " tp="+testTP) {
				t.Fatalf("relayed id line %q, want it to end with tp=%s", head, testTP)
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		args := append(append([]any{2, "", "a", "e", "b"}, opts...), optTraceparent, testTP)
		if err := r.rdb.FCall(ctx, publishBatchFunction, []string{streamKey("tp")}, args...).Err(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if head, _, _ := strings.Cut(next(), "\n"); !strings.HasSuffix(head, " tp="+testTP) {
				t.Fatalf("relayed id line %q, want it to end with tp=%s", head, testTP)
			}
		}
	})
	t.Run("the stream keeps no trace", func(t *testing.T) {
		entries, err := r.rdb.XRange(ctx, streamKey("tp"), "-", "+").Result()
		if err != nil || len(entries) != 6 {
			t.Fatalf("stream: %d entries, %v; want 6", len(entries), err)
		}
		for _, e := range entries {
			if len(e.Values) != 2 {
				t.Fatalf("entry %s has fields %v, want e and d", e.ID, e.Values)
			}
		}
	})

	bad := map[string]string{
		"empty":         "",
		"uppercase":     strings.ToUpper(testTP),
		"version 01":    "01" + testTP[2:],
		"too long":      testTP + "0",
		"too short":     testTP[:54],
		"zero trace id": "00-" + strings.Repeat("0", 32) + "-" + testSpanID + "-01",
		"zero span id":  "00-" + testTraceID + "-" + strings.Repeat("0", 16) + "-01",
		"a space":       "00-" + testTraceID + "-" + testSpanID + " 1",
		"a newline":     "00-" + testTraceID + "-" + testSpanID + "\n1",
		"not hex":       "00-" + strings.Repeat("x", 32) + "-" + testSpanID + "-01",
	}
	for name, tp := range bad {
		for _, fn := range []struct {
			name string
			call func() error
		}{
			{"publish", func() error {
				return r.rdb.FCall(ctx, publishFunction, []string{streamKey("bad")}, append(append([]any{"", "x"}, opts...), optTraceparent, tp)...).Err()
			}},
			{"publish with other options", func() error {
				return r.rdb.FCall(ctx, publishFunction, []string{streamKey("bad")}, "", "x", optTraceparent, tp, optIdempotencyKey, "K").Err()
			}},
			{"batch", func() error {
				return r.rdb.FCall(ctx, publishBatchFunction, []string{streamKey("bad")}, append(append([]any{1, "", "x"}, opts...), optTraceparent, tp)...).Err()
			}},
		} {
			t.Run("refuses "+name+"/"+fn.name, func(t *testing.T) {
				if err := fn.call(); err == nil || !strings.Contains(err.Error(), "edge: option traceparent must be") {
					t.Fatalf("error %v, want the traceparent refused", err)
				}
			})
		}
	}
	t.Run("refuses it twice", func(t *testing.T) {
		err := r.rdb.FCall(ctx, publishFunction, []string{streamKey("bad")}, "", "x", optTraceparent, testTP, optTraceparent, testTP).Err()
		if err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Fatalf("error %v, want given twice", err)
		}
	})
	if n, _ := srv.Do(t, "EXISTS", "edge:{bad}"); n != "0" {
		t.Fatalf("a refused call stored a message")
	}
}

// A node delivers a message with the span context of its publish on
// another node, as a remote parent; a publish without a sampled span sends
// no traceparent, and its delivery carries no span context.
func TestRedisRelayCarriesTrace(t *testing.T) {
	srv := redistest.Start(t)
	a := startTestRedis(t, srv, RedisConfig{})
	b := startTestRedis(t, srv, RedisConfig{})
	type delivery struct {
		m  edge.Message
		sc trace.SpanContext
	}
	got := make(chan delivery, 16)
	b.Relay(func(ctx context.Context, m edge.Message) { got <- delivery{m, trace.SpanContextFromContext(ctx)} })
	ctx := context.Background()
	if err := b.Watch(ctx, "relayed"); err != nil {
		t.Fatal(err)
	}
	raw := liveSubscriber(t, srv, "relayed")
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		publish func(ctx context.Context, r *Redis, data string) error
		traced  bool
	}{
		{"publish", sampledContext(t, trace.FlagsSampled), plainPublish, true},
		{"keyed publish", sampledContext(t, trace.FlagsSampled), keyedPublish, true},
		{"batch publish", sampledContext(t, trace.FlagsSampled), batchPublish, true},
		{"untraced publish", context.Background(), plainPublish, false},
		{"unsampled publish", sampledContext(t, 0), plainPublish, false},
		{"untraced keyed publish", context.Background(), keyedPublish, false},
		{"untraced batch publish", context.Background(), batchPublish, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.publish(tc.ctx, a, tc.name); err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(raw(), "\n")
			if strings.Contains(head, " ") != tc.traced {
				t.Fatalf("relayed id line %q, want attributes: %v", head, tc.traced)
			}
			select {
			case d := <-got:
				if string(d.m.Data) != tc.name {
					t.Fatalf("delivered %q, want %q", d.m.Data, tc.name)
				}
				want := trace.SpanContext{}
				if tc.traced {
					want = trace.SpanContextFromContext(tc.ctx).WithRemote(true)
				}
				if !d.sc.Equal(want) {
					t.Fatalf("delivered with span context %v, want %v", d.sc, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("nothing delivered")
			}
		})
	}
}

func plainPublish(ctx context.Context, r *Redis, data string) error {
	_, err := r.Publish(ctx, "relayed", "", []byte(data))
	return err
}

func keyedPublish(ctx context.Context, r *Redis, data string) error {
	_, _, err := r.PublishOnce(ctx, "relayed", "", []byte(data), strings.ReplaceAll(data, " ", "-"))
	return err
}

func batchPublish(ctx context.Context, r *Redis, data string) error {
	return r.PublishBatch(ctx, []edge.Publication{{Channel: "relayed", Data: []byte(data)}})[0].Err
}

// A node of this release whose Redis holds the function of the release
// before traceparent (the one before presence too, so its copy serves both
// upgrade tests; loaded by a node of that release during a rolling
// upgrade) loads its own when that one answers "usage" to the option, and
// publishes with its trace; that release's calls keep working with this
// function, and its parser reads what this one relays.
func TestRedisTraceparentOverOlderFunction(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	older, err := os.ReadFile("testdata/edge-before-presence.lua")
	if err != nil {
		t.Fatal(err)
	}
	next := liveSubscriber(t, srv, "up")
	ctx := sampledContext(t, trace.FlagsSampled)
	for _, tc := range []struct {
		name    string
		publish func(ctx context.Context, r *Redis) error
	}{
		{"publish", func(ctx context.Context, r *Redis) error {
			_, err := r.Publish(ctx, "up", "", []byte("x"))
			return err
		}},
		{"keyed publish", func(ctx context.Context, r *Redis) error {
			_, _, err := r.PublishOnce(ctx, "up", "", []byte("x"), "K")
			return err
		}},
		{"batch publish", func(ctx context.Context, r *Redis) error {
			return r.PublishBatch(ctx, []edge.Publication{{Channel: "up", Data: []byte("x")}})[0].Err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := srv.Do(t, "FUNCTION", "LOAD", "REPLACE", string(older)); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{up}", "", "x", optTraceparent, testTP); err == nil || !strings.Contains(err.Error(), "edge: usage") {
				t.Fatalf("the older function answered a traceparent with %v, want a usage error", err)
			}
			if err := tc.publish(ctx, r); err != nil {
				t.Fatalf("publish over the older function: %v", err)
			}
			payload := next()
			if head, _, _ := strings.Cut(payload, "\n"); !strings.HasSuffix(head, " tp="+testTP) {
				t.Fatalf("relayed id line %q, want tp=%s", head, testTP)
			}
			if m, err := liveMessageBeforeTrace("up", payload); err != nil || string(m.Data) != "x" {
				t.Fatalf("the release before traceparent read %q as %+v, %v", payload, m, err)
			}
		})
	}
	// The older release's calls, with its options and its key, work with
	// this function and relay no attributes.
	for _, args := range [][]string{
		{"FCALL", "edge_publish", "1", "edge:{up}", "", "old", "history-size", "1000", "history-ttl-ms", "3600000", "max-payload", "65536"},
		{"FCALL", "edge_publish", "1", "edge:{up}", "", "old", "idempotency-key", "K2"},
		{"FCALL", "edge_publish_batch", "1", "edge:{up}", "1", "", "old", "history-size", "1000", "history-ttl-ms", "3600000", "max-payload", "65536"},
	} {
		if _, err := srv.Do(t, args...); err != nil {
			t.Fatalf("the older release's %v: %v", args, err)
		}
		if head, _, _ := strings.Cut(next(), "\n"); strings.Contains(head, " ") {
			t.Fatalf("an untraced call relayed attributes: %q", head)
		}
	}
}

// FuzzLiveMessage feeds the relay's parser hostile payloads: it never
// panics, it reads what the release before traceparent reads (so both
// relay each other's messages), a key it finds is valid and written in the
// payload as its k, and a span context it finds is valid, remote, and
// written in the payload as its tp.
func FuzzLiveMessage(f *testing.F) {
	for _, seed := range []string{
		"01732270000000-7\nprice\n{\"p\":1}",
		"01732270000000-7 tp=" + testTP + "\n\nx",
		"01-1 a=b tp=" + testTP + " c\n\n",
		"1732270000000-7\nprice\ndata",
		"00-1\n\nx",
		"0\n\n",
		"01-1 tp=" + testTP + " tp=" + testTP + "\n\n",
		"01-1 k=EURUSD tp=" + testTP + "\n\nx",
		"01-1 k=a k=b\n\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		m, sc, err := liveMessage("c", payload)
		before, errBefore := liveMessageBeforeTrace("c", payload)
		if (err == nil) != (errBefore == nil) || (err == nil && !sameMessage(m, before)) {
			t.Fatalf("liveMessage(%q) = %+v, %v; the release before traceparent read %+v, %v", payload, m, err, before, errBefore)
		}
		if head, _, _ := strings.Cut(payload, "\n"); m.Key != "" && (edge.ValidateKey(m.Key) != nil || !strings.Contains(head, " k="+m.Key)) {
			t.Fatalf("liveMessage(%q): key %q is not a valid k attribute of the id line", payload, m.Key)
		}
		if !sc.IsValid() {
			return
		}
		if err != nil || !sc.IsRemote() {
			t.Fatalf("liveMessage(%q): span context %v (remote %v) with error %v", payload, sc, sc.IsRemote(), err)
		}
		tp := "tp=00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-"
		if head, _, _ := strings.Cut(payload, "\n"); !strings.Contains(head, tp) {
			t.Fatalf("liveMessage(%q): span context %v is not in the id line", payload, sc)
		}
	})
}

// BenchmarkLiveMessage measures the relay's parser on a payload without
// and with a traceparent, and the parser of the release before traceparent.
func BenchmarkLiveMessage(b *testing.B) {
	data := strings.Repeat("x", 100)
	plain := "01732270000000-7\nprice\n" + data
	traced := "01732270000000-7 tp=" + testTP + "\nprice\n" + data
	this := func(payload string) error {
		_, _, err := liveMessage("c", payload)
		return err
	}
	before := func(payload string) error {
		_, err := liveMessageBeforeTrace("c", payload)
		return err
	}
	for _, bc := range []struct {
		name, payload string
		parse         func(string) error
	}{
		{"untraced", plain, this},
		{"traced", traced, this},
		{"before-traceparent/untraced", plain, before},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.parse(bc.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
