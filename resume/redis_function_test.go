package resume

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume/redistest"
)

// luaLocal returns the value text of "local NAME = VALUE" in the function.
func luaLocal(t *testing.T, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^local ` + name + ` = (.+?)(?: --.*)?$`).FindStringSubmatch(functionLibrary)
	if m == nil {
		t.Fatalf("edge.lua has no line local %s = ...", name)
	}
	return m[1]
}

// The facts edge.lua repeats from Go are the same as in Go: the test fails
// when either side changes alone.
func TestFunctionFacts(t *testing.T) {
	defaults := RedisConfig{}.WithDefaults()
	for _, tc := range []struct {
		name, lua, want string
	}{
		{"name alphabet", "NAME_ALPHABET", "'" + edge.NameAlphabet + "'"},
		{"channel limit", "MAX_CHANNEL_LEN", strconv.Itoa(edge.MaxChannelLen)},
		{"event limit", "MAX_EVENT_LEN", strconv.Itoa(edge.MaxEventLen)},
		{"settings key", "SETTINGS_KEY", "'" + settingsKey + "'"},
		{"idempotency key limit", "MAX_IDEMPOTENCY_KEY_LEN", strconv.Itoa(edge.MaxIdempotencyKeyLen)},
		{"idempotency window", "IDEMPOTENCY_TTL_MS", strconv.FormatInt(edge.DefaultIdempotencyWindow.Milliseconds(), 10)},
		{"idempotency key option", "ONCE_KEY, ONCE_TTL", "'" + optIdempotencyKey + "', '" + optIdempotencyTTLMs + "'"},
		{"traceparent option", "TRACEPARENT", "'" + optTraceparent + "'"},
		{"key limit", "MAX_KEY_LEN", strconv.Itoa(edge.MaxKeyLen)},
		{"key options", "KEY, KEYS", "'" + optKey + "', '" + optKeys + "'"},
		{"presence conn limit", "MAX_CONN_LEN", strconv.Itoa(maxConnLen)},
		{"presence member limit", "MAX_MEMBER_LEN", strconv.Itoa(maxMemberLen)},
		{"presence listing limit", "MAX_MEMBERS_LIMIT", strconv.Itoa(maxMembersLimit)},
		{"presence refresh limit", "MAX_REFRESH", strconv.Itoa(maxRefreshEntries)},
		{"presence TTL limit", "MAX_PRESENCE_TTL_MS", strconv.FormatInt(maxPresenceTTL.Milliseconds(), 10)},
		{"presence format", "PRESENCE_FORMAT", "'" + presenceFormat + "'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := luaLocal(t, tc.lua); got != tc.want {
				t.Fatalf("edge.lua has %s = %s, Go has %s", tc.lua, got, tc.want)
			}
		})
	}
	t.Run("reserved events", func(t *testing.T) {
		var got []string
		for _, m := range regexp.MustCompile(`(\w+) = true`).FindAllStringSubmatch(luaLocal(t, "RESERVED_EVENTS"), -1) {
			got = append(got, m[1])
			if !edge.IsReservedEvent(m[1]) {
				t.Errorf("edge.lua reserves %q, edge does not", m[1])
			}
		}
		for _, e := range []string{edge.EventGap, edge.EventDisconnect, edge.EventJoin, edge.EventLeave} {
			if !slices.Contains(got, e) {
				t.Errorf("edge reserves %q, edge.lua does not", e)
			}
		}
	})
	if refreshChunk > maxRefreshEntries {
		t.Errorf("a node sends %d members per refresh, the function takes %d", refreshChunk, maxRefreshEntries)
	}
	t.Run("defaults", func(t *testing.T) {
		table := functionLibrary[strings.Index(functionLibrary, "local DEFAULTS = {"):]
		table = table[:strings.Index(table, "}\n")]
		for name, want := range map[string]int64{
			optHistorySize:  int64(defaults.HistorySize),
			optHistoryTTLMs: defaults.HistoryTTL.Milliseconds(),
			optMaxPayload:   int64(defaults.MaxPayload),
		} {
			line := fmt.Sprintf("['%s'] = %d,", name, want)
			if !strings.Contains(table, line) {
				t.Errorf("edge.lua's DEFAULTS lack %s:\n%s", line, table)
			}
		}
		if n := strings.Count(table, "] = "); n != 3 {
			t.Errorf("edge.lua's DEFAULTS have %d settings, Go has 3", n)
		}
	})
}

// The function accepts exactly the channels and event types that package
// edge accepts: every byte, and the length limits.
func TestFunctionAlphabet(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	ctx := context.Background()
	type call struct {
		name, channel, event string
		want                 bool
	}
	var calls []call
	for b := range 256 {
		ch, ev := "c"+string([]byte{byte(b)})+"x", "e"+string([]byte{byte(b)})
		calls = append(calls,
			call{fmt.Sprintf("channel byte %#x", b), ch, "", edge.ValidateChannel(ch) == nil},
			call{fmt.Sprintf("event byte %#x", b), "c", ev, edge.ValidateEvent(ev) == nil})
	}
	for _, n := range []int{edge.MaxChannelLen, edge.MaxChannelLen + 1} {
		ch := strings.Repeat("c", n)
		calls = append(calls, call{fmt.Sprintf("channel of %d bytes", n), ch, "", edge.ValidateChannel(ch) == nil})
	}
	for _, n := range []int{edge.MaxEventLen, edge.MaxEventLen + 1} {
		ev := strings.Repeat("e", n)
		calls = append(calls, call{fmt.Sprintf("event of %d bytes", n), "c", ev, edge.ValidateEvent(ev) == nil})
	}
	for _, ev := range []string{edge.EventGap, edge.EventDisconnect, "message"} {
		calls = append(calls, call{"event " + ev, "c", ev, edge.ValidateEvent(ev) == nil})
	}
	for _, c := range calls {
		err := r.rdb.FCall(ctx, publishFunction, []string{streamKey(c.channel)}, c.event, "x").Err()
		if (err == nil) != c.want {
			t.Errorf("%s: FCALL error %v, edge accepts: %v", c.name, err, c.want)
		}
	}
}

// liveMessagePrevious is the parser of live relay payloads of version 1,
// of the release before version 2, kept as it was: "<id>\n<event>\n<data>".
func liveMessagePrevious(channel, payload string) (edge.Message, error) {
	b := []byte(payload)
	idText, rest, ok1 := bytes.Cut(b, []byte{'\n'})
	event, data, ok2 := bytes.Cut(rest, []byte{'\n'})
	if !ok1 || !ok2 {
		return edge.Message{}, fmt.Errorf("live message of %q is not id\\nevent\\ndata", channel)
	}
	id, err := edge.ParseIDBytes(idText)
	if err != nil {
		return edge.Message{}, err
	}
	return edge.Message{Channel: channel, ID: id, Event: string(event), Data: data}, nil
}

// This release reads the payloads of the previous one (golden bytes in
// testdata), and of versions to come that add attributes to the id line.
func TestLiveMessageVersions(t *testing.T) {
	previous, err := os.ReadFile("testdata/relay-previous.golden")
	if err != nil {
		t.Fatal(err)
	}
	want := edge.Message{Channel: "c", ID: edge.ID{Ms: 1732270000000, Seq: 7}, Event: "price", Data: []byte("{\"p\":1}\nsecond line\n")}
	for _, tc := range []struct {
		name, payload string
		want          edge.Message
		wantErr       bool
	}{
		{"previous release (golden)", string(previous), want, false},
		{"this release", "01732270000000-7\nprice\n{\"p\":1}\nsecond line\n", want, false},
		{"a later release's attributes", "01732270000000-7 k=v x=y\nprice\n{\"p\":1}\nsecond line\n", want, false},
		{"a traceparent", "01732270000000-7 tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nprice\n{\"p\":1}\nsecond line\n", want, false},
		{"previous release, id 0-1", "0-1\n\nx", edge.Message{Channel: "c", ID: edge.ID{Seq: 1}, Data: []byte("x")}, false},
		{"this release, id 0-1", "00-1\n\nx", edge.Message{Channel: "c", ID: edge.ID{Seq: 1}, Data: []byte("x")}, false},
		{"no event line", "01-1\nx", edge.Message{}, true},
		{"bad id", "0x-1\n\nx", edge.Message{}, true},
		{"attributes without the marker", "1-1 k=v\n\nx", edge.Message{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := liveMessage("c", tc.payload)
			if (err != nil) != tc.wantErr {
				t.Fatalf("liveMessage(%q) error %v, want an error: %v", tc.payload, err, tc.wantErr)
			}
			if !tc.wantErr && !sameMessage(got, tc.want) {
				t.Fatalf("liveMessage(%q) = %+v, want %+v", tc.payload, got, tc.want)
			}
		})
	}
}

func sameMessage(a, b edge.Message) bool {
	return a.Channel == b.Channel && a.ID == b.ID && a.Event == b.Event && bytes.Equal(a.Data, b.Data)
}

// What the function relays reads the same with this release's parser and
// with the previous release's, so both relay each other's messages during
// a rolling upgrade.
func TestLivePayloadReadByPreviousRelease(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{})
	ctx := context.Background()
	sub := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { sub.Close() })
	ps := sub.SSubscribe(ctx, liveKey("v"))
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ event, data string }{
		{"", "hello"},
		{"price", "{\"p\":1}\nwith\nnewlines\n"},
		{"e", ""},
	} {
		id, err := r.Publish(ctx, "v", tc.event, []byte(tc.data))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		payload := raw.(*redis.Message).Payload
		if want := "0" + id.String() + "\n" + tc.event + "\n" + tc.data; payload != want {
			t.Fatalf("relayed %q, want %q", payload, want)
		}
		want := edge.Message{Channel: "v", ID: id, Event: tc.event, Data: []byte(tc.data)}
		for name, parse := range map[string]func(string, string) (edge.Message, error){
			"this release": liveMessageOnly, "the release before traceparent": liveMessageBeforeTrace,
			"version 1": liveMessagePrevious,
		} {
			if got, err := parse("v", payload); err != nil || !sameMessage(got, want) {
				t.Errorf("%s's parser read %q as %+v, %v; want %+v", name, payload, got, err, want)
			}
		}
	}
}

// A node of the previous release that starts during a rolling upgrade
// loads its function, which refuses the options: this release's node loads
// its own again and publishes, and the previous release's calls (without
// options) work with it.
func TestFunctionReplacedByPreviousRelease(t *testing.T) {
	srv := redistest.Start(t)
	r := startTestRedis(t, srv, RedisConfig{HistorySize: 50})
	previous, err := os.ReadFile("testdata/edge-previous.lua")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.rdb.FunctionLoadReplace(ctx, string(previous)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, "u", "", []byte("new node")); err != nil {
		t.Fatalf("publish after the previous release loaded its function: %v", err)
	}
	for i := range 400 {
		if _, err := srv.Do(t, "FCALL", "edge_publish", "1", "edge:{u}", "", fmt.Sprint("previous node ", i)); err != nil {
			t.Fatalf("the previous release's FCALL: %v", err)
		}
	}
	// The fleet's history-size, 50, holds for the previous release's calls
	// too (MAXLEN ~ trims whole nodes of 100 entries).
	if n, _ := srv.Do(t, "XLEN", "edge:{u}"); atoi(t, n) > 150 {
		t.Fatalf("the stream holds %s entries, want at most 150 (history-size 50)", n)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
