package transports_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/resume"
	"github.com/edgeworks/edge/transports"
)

// batchMsg is one message of a batch request.
type batchMsg struct {
	Channel    string  `json:"channel"`
	Event      string  `json:"event,omitempty"`
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"data_base64,omitempty"`
	Key        string  `json:"key,omitempty"`
}

func text(s string) *string { return &s }

// batchResult is one result of a batch answer.
type batchResult struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// postBatch posts body to the batch endpoint with header and returns the
// status, the results of a 200 and the error code of another answer.
func postBatch(t *testing.T, e *testEdge, header http.Header, body []byte) (int, []batchResult, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish/batch"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e errorAnswer
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("status %d, body %q: %v", resp.StatusCode, raw, err)
		}
		return resp.StatusCode, nil, e.Error.Code
	}
	var out struct{ Results []batchResult }
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, out.Results, ""
}

func batchBody(t *testing.T, msgs []batchMsg) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"messages": msgs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A batch's messages reach the subscribers of every transport on every
// backend as single publishes do: each once, in order per channel, with
// the ids the batch answered; a subscriber that resumes from before the
// batch gets all of it. The payloads are stored as sent, text or bytes.
func TestPublishBatchContract(t *testing.T) {
	for _, b := range contractBackends {
		if !slices.Contains([]string{"memory", "redis", "redis-cluster"}, b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			use := b.start(t)
			for _, col := range contractColumns {
				t.Run(col.name, func(t *testing.T) {
					c := cell{use: use, col: col}
					e := c.edge(t, 0)
					channels := c.channels("batch", 0)
					before := map[string]string{}
					for _, ch := range channels {
						before[ch] = e.publish(ch, "before")
					}
					s := c.col.open(t, e, channels, "")
					defer s.close()
					other := channels[0] + ".other"
					var msgs []batchMsg
					for i := range 6 {
						for _, ch := range append(channels, other) {
							m := batchMsg{Channel: ch, Data: text(fmt.Sprint("text ", i))}
							if i%2 == 1 {
								m = batchMsg{Channel: ch, DataBase64: text(base64.StdEncoding.EncodeToString([]byte{0, byte(i), 0xff}))}
							}
							msgs = append(msgs, m)
						}
					}
					status, results, code := postBatch(t, e, nil, batchBody(t, msgs))
					if status != http.StatusOK || len(results) != len(msgs) {
						t.Fatalf("status %d (%s), %d results for %d messages", status, code, len(results), len(msgs))
					}
					want := map[string][]item{}
					for i, r := range results {
						if r.Error != nil || r.Channel != msgs[i].Channel || r.ID == "" {
							t.Fatalf("result %d = %+v for a message to %s", i, r, msgs[i].Channel)
						}
						if r.Channel != other {
							want[r.Channel] = append(want[r.Channel], item{channel: r.Channel, id: r.ID})
						}
					}
					expect(t, "live", s, want)
					resumed := c.col.open(t, e, channels, cursorFor(t, channels, before))
					defer resumed.close()
					expect(t, "resumed from before the batch", resumed, want)
					var page struct{ Messages []wireMessage }
					getJSON(t, e.url("/v1/history", "channel", other), nil, &page)
					if len(page.Messages) != 6 {
						t.Fatalf("history of %s holds %d messages, want 6", other, len(page.Messages))
					}
					for i, m := range page.Messages {
						wantData, wantEnc := fmt.Sprint("text ", i), ""
						if i%2 == 1 {
							wantData, wantEnc = base64.StdEncoding.EncodeToString([]byte{0, byte(i), 0xff}), "base64"
						}
						if m.Data != wantData || m.Encoding != wantEnc {
							t.Fatalf("history message %d = %+v, want data %q encoding %q", i, m, wantData, wantEnc)
						}
					}
				})
			}
		})
	}
}

// Each message of a batch gets the answer a single publish of it gets:
// the id, or the same error object. The errors of some leave the others
// published.
func TestPublishBatchItems(t *testing.T) {
	e := startEdge(t, transports.Config{MaxPayload: 8, JWTSecret: testSecret, PublishKeys: []string{"key"}})
	auth := http.Header{"Authorization": {"Bearer " + token(t, "backend", nil, []string{"open.*"}, time.Hour)}}
	for _, tc := range []struct {
		name string
		msg  batchMsg
		code string // "" for a stored message
	}{
		{"text", batchMsg{Channel: "open.a", Data: text("hello")}, ""},
		{"bytes", batchMsg{Channel: "open.a", Event: "b", DataBase64: text("AAEC")}, ""},
		{"empty text", batchMsg{Channel: "open.b", Data: text("")}, ""},
		{"bad channel", batchMsg{Channel: "a b", Data: text("x")}, "bad_channel"},
		{"no channel", batchMsg{Data: text("x")}, "bad_channel"},
		{"forbidden channel", batchMsg{Channel: "closed", Data: text("x")}, "forbidden"},
		{"reserved event", batchMsg{Channel: "open.a", Event: "gap", Data: text("x")}, "bad_event"},
		{"bad event", batchMsg{Channel: "open.a", Event: "a\nb", Data: text("x")}, "bad_event"},
		{"too large text", batchMsg{Channel: "open.a", Data: text("123456789")}, "payload_too_large"},
		{"too large bytes", batchMsg{Channel: "open.a", DataBase64: text(base64.StdEncoding.EncodeToString([]byte("123456789")))}, "payload_too_large"},
		{"both data fields", batchMsg{Channel: "open.a", Data: text("x"), DataBase64: text("AA==")}, "bad_request"},
		{"no data", batchMsg{Channel: "open.a"}, "bad_request"},
		{"bad base64", batchMsg{Channel: "open.a", DataBase64: text("A*==")}, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The message between two good ones, which are stored.
			good := batchMsg{Channel: "open.z", Data: text("ok")}
			status, results, code := postBatch(t, e, auth, batchBody(t, []batchMsg{good, tc.msg, good}))
			if status != http.StatusOK || len(results) != 3 {
				t.Fatalf("status %d (%s), %d results", status, code, len(results))
			}
			for _, i := range []int{0, 2} {
				if results[i].Error != nil || results[i].ID == "" {
					t.Fatalf("the good message %d: %+v", i, results[i])
				}
			}
			first, err1 := edge.ParseID(results[0].ID)
			last, err2 := edge.ParseID(results[2].ID)
			if err1 != nil || err2 != nil || !first.Less(last) {
				t.Fatalf("ids %s then %s", results[0].ID, results[2].ID)
			}
			r := results[1]
			if r.Channel != tc.msg.Channel {
				t.Fatalf("result channel %q, want %q", r.Channel, tc.msg.Channel)
			}
			if tc.code == "" {
				if r.Error != nil || r.ID == "" {
					t.Fatalf("result %+v, want an id", r)
				}
				return
			}
			if r.Error == nil || r.Error.Code != tc.code {
				t.Fatalf("result %+v, want error %s", r, tc.code)
			}
			// A single publish of the message answers the same error,
			// where it can carry the message (a text payload).
			if tc.msg.Data == nil || tc.msg.DataBase64 != nil {
				return
			}
			q := []string{"channel", tc.msg.Channel}
			if tc.msg.Event != "" {
				q = append(q, "event", tc.msg.Event)
			}
			req, _ := http.NewRequest(http.MethodPost, e.url("/v1/publish", q...), strings.NewReader(*tc.msg.Data))
			req.Header = auth.Clone()
			var single errorAnswer
			doJSON(t, req, &single)
			if single.Error.Code != r.Error.Code || single.Error.Message != r.Error.Message {
				t.Fatalf("batch item error %+v, single publish %+v", *r.Error, single.Error)
			}
		})
	}
}

// A request that is not a batch is refused as a whole, and nothing of it
// is published.
func TestPublishBatchRequest(t *testing.T) {
	e := startEdge(t, transports.Config{MaxPayload: 16, MaxBatch: 3, PublishKeys: []string{"key"}})
	key := http.Header{"Authorization": {"Bearer key"}}
	one := `{"channel":"r","data":"x"}`
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
		body   string
		status int
		code   string
	}{
		{"malformed", "", key, `{"messages":[` + one, 400, "bad_request"},
		{"not an object", "", key, `[` + one + `]`, 400, "bad_request"},
		{"unknown field", "", key, `{"messages":[{"channel":"r","payload":"x"}]}`, 400, "bad_request"},
		{"unknown top field", "", key, `{"messages":[` + one + `],"x":1}`, 400, "bad_request"},
		{"wrong type", "", key, `{"messages":[{"channel":1,"data":"x"}]}`, 400, "bad_request"},
		{"two values", "", key, `{"messages":[` + one + `]}{}`, 400, "bad_request"},
		{"no messages", "", key, `{"messages":[]}`, 400, "bad_request"},
		{"empty body", "", key, ``, 400, "bad_request"},
		{"deep", "", key, `{"messages":` + strings.Repeat("[", 3000), 400, "bad_request"},
		{"too many", "", key, `{"messages":[` + strings.Repeat(one+",", 3) + one + `]}`, 413, "payload_too_large"},
		{"body too large", "", key, `{"messages":[{"channel":"r","data":"` + strings.Repeat("x", 5000) + `"}]}`, 413, "payload_too_large"},
		{"bad token", "", http.Header{"Authorization": {"Basic a2V5"}}, `{"messages":[` + one + `]}`, 401, "unauthorized"},
		{"other site", "", http.Header{"Authorization": {"Bearer key"}, "Origin": {"https://evil.example"}}, `{"messages":[` + one + `]}`, 403, "forbidden"},
		{"GET", http.MethodGet, key, ``, 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, e.url("/v1/publish/batch"), strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			var ans errorAnswer
			if status := doJSON(t, req, &ans); status != tc.status || ans.Error.Code != tc.code {
				t.Fatalf("status %d %+v, want %d %s", status, ans.Error, tc.status, tc.code)
			}
		})
	}
	if ids := historyIDs(t, e, "r"); len(ids) != 0 {
		t.Fatalf("refused requests published %v", ids)
	}
	// Without credentials the request is well-formed: each message is
	// refused as a single publish would be (some channels may allow it).
	status, results, _ := postBatch(t, e, nil, []byte(`{"messages":[`+one+`]}`))
	if status != http.StatusOK || len(results) != 1 || results[0].Error == nil || results[0].Error.Code != "unauthorized" {
		t.Fatalf("without a key: status %d, %+v", status, results)
	}
}

// Whatever the body, the handler answers a JSON object with a status it
// documents, and a 200 has one result per message; nothing panics.
func FuzzPublishBatch(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"channel":"a","event":"x","data":"text"},{"channel":"b","data_base64":"AAEC"}]}`,
		`{"messages":[{"channel":"a b","data":"x"},{"channel":"a","event":"gap","data":"x"}]}`,
		`{"messages":[{"channel":"a","data":"x","data_base64":"AA=="},{"channel":"a"}]}`,
		`{"messages":[{"channel":"a","data_base64":"A*=="},{"channel":"\u2028","data":"\ud800"}]}`,
		`{"messages":[]}`, `{"messages":null}`, `[[[[`, `{"messages":[{}]}{`, "",
	} {
		f.Add([]byte(s))
	}
	srv, err := transports.New(transports.Config{MaxPayload: 64, MaxBatch: 8}, resume.NewMemory(resume.MemoryConfig{}), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "http://localhost/v1/publish/batch", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var out struct {
			Results []json.RawMessage
			Error   *struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body %q is not JSON: %v", w.Code, w.Body.Bytes(), err)
		}
		switch w.Code {
		case http.StatusOK:
			var req struct{ Messages []json.RawMessage }
			if err := json.Unmarshal(body, &req); err != nil || len(out.Results) != len(req.Messages) {
				t.Fatalf("200 with %d results for %d messages (%v)", len(out.Results), len(req.Messages), err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if out.Error == nil {
				t.Fatalf("status %d without an error: %s", w.Code, w.Body.Bytes())
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
		}
	})
}
