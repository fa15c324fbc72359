package resume

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// The function keeps a message's conflation key in the stream entry (the
// field k) and relays it (the attribute k), for a publish, one with an
// idempotency key and a traceparent, and a batch; it refuses a malformed
// key, and stores nothing then.
func TestFunctionKey(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	next := liveSubscriber(t, srv, "k")
	ctx := context.Background()
	opts := []any{optHistorySize, 1000, optHistoryTTLMs, 3600000, optMaxPayload, 65536}
	for _, tc := range []struct {
		name  string
		fn    string
		args  []any
		heads []string // the relayed id lines' attributes
	}{
		{"the nodes' options", publishFunction, append(append([]any{"", "x"}, opts...), optKey, "EURUSD"), []string{" k=EURUSD"}},
		{"key first", publishFunction, []any{"", "x", optKey, "a", optMaxPayload, 100}, []string{" k=a"}},
		{"with a traceparent and an idempotency key", publishFunction, []any{"", "x", optTraceparent, testTP, optIdempotencyKey, "K", optKey, "b"}, []string{" k=b tp=" + testTP}},
		{"batch", publishBatchFunction, append(append([]any{3, "", "a", "", "b", "", "c"}, opts...), optKeys, "x\n\n~!"), []string{" k=x", "", " k=~!"}},
		{"batch without keys", publishBatchFunction, append(append([]any{2, "", "a", "", "b"}, opts...), optKeys, "\n"), []string{"", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.rdb.FCall(ctx, tc.fn, []string{streamKey("k")}, tc.args...).Err(); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.heads {
				head, _, _ := strings.Cut(next(), "\n")
				if _, attrs, _ := strings.Cut(head, " "); " "+attrs != want && !(want == "" && attrs == "") {
					t.Fatalf("relayed id line %q, want the attributes %q", head, want)
				}
			}
		})
	}
	t.Run("the stream keeps the keys", func(t *testing.T) {
		page, err := r.History(ctx, "k", edge.ID{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, m := range page.Messages {
			keys = append(keys, m.Key)
		}
		if got, want := strings.Join(keys, ","), "EURUSD,a,b,x,,~!,,"; got != want {
			t.Fatalf("history's keys %q, want %q", got, want)
		}
	})

	for _, tc := range []struct {
		name, fn, want string
		args           []any
	}{
		{"empty key", publishFunction, "option key must be", []any{"", "x", optKey, ""}},
		{"a space", publishFunction, "option key must be", []any{"", "x", optKey, "a b"}},
		{"a newline", publishFunction, "option key must be", []any{"", "x", optKey, "a\nb"}},
		{"not ASCII", publishFunction, "option key must be", []any{"", "x", optKey, "é"}},
		{"too long", publishFunction, "option key must be", []any{"", "x", optKey, strings.Repeat("k", edge.MaxKeyLen+1)}},
		{"twice", publishFunction, "given twice", []any{"", "x", optKey, "a", optKey, "a"}},
		{"keys on a publish", publishFunction, "usage: unknown option", []any{"", "x", optKeys, "a"}},
		{"key on a batch", publishBatchFunction, "usage: unknown option", []any{1, "", "x", optKey, "a"}},
		{"too few keys", publishBatchFunction, "option keys must be 2 keys", []any{2, "", "x", "", "y", optKeys, "a"}},
		{"too many keys", publishBatchFunction, "option keys must be 2 keys", []any{2, "", "x", "", "y", optKeys, "a\nb\nc"}},
		{"a bad key among keys", publishBatchFunction, "option keys must be 2 keys", []any{2, "", "x", "", "y", optKeys, "a\nb c"}},
		{"keys twice", publishBatchFunction, "given twice", []any{1, "", "x", optKeys, "a", optKeys, "a"}},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			err := r.rdb.FCall(ctx, tc.fn, []string{streamKey("bad")}, tc.args...).Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if n, _ := srv.Do(t, "EXISTS", "edge:{bad}"); n != "0" {
		t.Fatalf("a refused call stored a message")
	}
}

// A node whose keyed publish meets the previous release's function (during
// a rolling upgrade) loads its own when that one answers "usage" to the
// option, and publishes with the key; that release's parser reads what
// this one relays, and its history reader ignores the field k.
func TestRedisKeyOverOlderFunction(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	older, err := os.ReadFile("testdata/edge-before-presence.lua")
	if err != nil {
		t.Fatal(err)
	}
	next := liveSubscriber(t, srv, "up")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		publish func() error
	}{
		{"keyed publish", func() error {
			_, _, err := r.PublishKeyed(ctx, edge.Publication{Channel: "up", Data: []byte("x"), Key: "K"}, "")
			return err
		}},
		{"keyed publish once", func() error {
			_, _, err := r.PublishKeyed(ctx, edge.Publication{Channel: "up", Data: []byte("x"), Key: "K"}, "once")
			return err
		}},
		{"batch publish", func() error {
			return r.PublishBatch(ctx, []edge.Publication{{Channel: "up", Data: []byte("x"), Key: "K"}})[0].Err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := srv.Do(t, "FUNCTION", "LOAD", "REPLACE", string(older)); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{up}", "", "x", optKey, "K"); err == nil || !strings.Contains(err.Error(), "edge: usage") {
				t.Fatalf("the older function answered a key with %v, want a usage error", err)
			}
			if err := tc.publish(); err != nil {
				t.Fatalf("publish over the older function: %v", err)
			}
			payload := next()
			if head, _, _ := strings.Cut(payload, "\n"); !strings.HasSuffix(head, " k=K") {
				t.Fatalf("relayed id line %q, want k=K", head)
			}
			if m, err := liveMessageBeforeTrace("up", payload); err != nil || string(m.Data) != "x" {
				t.Fatalf("the previous release read %q as %+v, %v", payload, m, err)
			}
		})
	}
	page, err := r.History(ctx, "up", edge.ID{}, 10)
	if err != nil || len(page.Messages) != 3 {
		t.Fatalf("history: %+v, %v", page, err)
	}
	for _, m := range page.Messages {
		if m.Key != "K" {
			t.Fatalf("history lost the key: %+v", m)
		}
	}
}

// The relay reads the key of a live payload strictly: one valid k
// attribute, among any others.
func TestLiveMessageKey(t *testing.T) {
	for _, tc := range []struct{ name, attrs, key string }{
		{"none", "", ""},
		{"k", " k=EURUSD", "EURUSD"},
		{"k and tp", " k=a/b:c tp=" + testTP, "a/b:c"},
		{"k among unknown ones", " x=1 k=~ y", "~"},
		{"k twice", " k=a k=a", ""},
		{"k empty", " k=", ""},
		{"k too long", " k=" + strings.Repeat("k", edge.MaxKeyLen+1), ""},
		{"k at the bound", " k=" + strings.Repeat("k", edge.MaxKeyLen), strings.Repeat("k", edge.MaxKeyLen)},
		{"k not ASCII", " k=\xff", ""},
		{"k named otherwise", " K=a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := liveMessage("c", "01732270000000-7"+tc.attrs+"\nprice\nx")
			if err != nil || m.Key != tc.key || string(m.Data) != "x" {
				t.Fatalf("liveMessage = %+v, %v; want key %q", m, err, tc.key)
			}
		})
	}
}
