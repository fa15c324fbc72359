package transports_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
)

// GET /v1/history reads a channel under the rules of subscribing to it:
// the same token sources (Authorization: Bearer, access_token=, the
// edge_token cookie), 401 without a token, 403 with one that does not
// cover the channel, and no token for --anonymous channels.
func TestHistoryNeedsSubscribeRights(t *testing.T) {
	e := startEdge(t, edge.Config{JWTSecret: testSecret, Anonymous: []string{"public:*"}})
	e.publish("private", "secret payload")
	e.publish("public:news", "hello")
	reader := token(t, "42", []string{"private"}, nil, time.Hour)
	other := token(t, "43", []string{"user:43:*"}, nil, time.Hour)
	publisher := token(t, "44", nil, []string{"*"}, time.Hour)
	for _, tc := range []struct {
		name   string
		query  []string
		header http.Header
		status int
		code   string
	}{
		{"no token", []string{"channel", "private"}, nil, 401, "unauthorized"},
		{"token for other channels", []string{"channel", "private"}, bearer(other), 403, "forbidden"},
		{"publish-only token", []string{"channel", "private"}, bearer(publisher), 403, "forbidden"},
		{"bad token", []string{"channel", "private"}, bearer("not.a.token"), 401, "unauthorized"},
		{"bearer token", []string{"channel", "private"}, bearer(reader), 200, ""},
		{"access_token parameter", []string{"channel", "private", "access_token", reader}, nil, 200, ""},
		{"cookie", []string{"channel", "private"}, http.Header{"Cookie": {"edge_token=" + reader}}, 200, ""},
		{"anonymous channel", []string{"channel", "public:news"}, nil, 200, ""},
		{"anonymous channel with another's token", []string{"channel", "public:news"}, bearer(other), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var page struct {
				Messages []wireMessage
				Error    struct{ Code, Message string }
			}
			st := getJSON(t, e.url("/v1/history", tc.query...), tc.header, &page)
			if st != tc.status || page.Error.Code != tc.code {
				t.Fatalf("%d %+v, want %d %q", st, page.Error, tc.status, tc.code)
			}
			if st != 200 && len(page.Messages) > 0 {
				t.Fatalf("a refusal carries messages: %+v", page.Messages)
			}
			if st == 200 && len(page.Messages) != 1 {
				t.Fatalf("%d messages, want the 1 published", len(page.Messages))
			}
		})
	}
}
