package transports

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"
)

// stdlibBatch decodes body with encoding/json alone, as decodeBatch does
// when the fast parser declines.
func stdlibBatch(body []byte) ([]batchMessage, bool) {
	var req batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return req.Messages, true
}

// sameAsStdlib reports whether items are what encoding/json makes of the
// same body.
func sameAsStdlib(items []batchItem, msgs []batchMessage) bool {
	return slices.EqualFunc(items, msgs, func(it batchItem, m batchMessage) bool {
		if it.channel != m.Channel || it.event != m.Event || it.hasData != (m.Data != nil) || it.isBase64 != (m.DataBase64 != nil) {
			return false
		}
		if key := ""; m.Key != nil && *m.Key != it.key || m.Key == nil && it.key != key {
			return false
		}
		switch {
		case m.Data != nil:
			return string(it.data) == *m.Data
		case m.DataBase64 != nil:
			return string(it.data) == *m.DataBase64
		}
		return true
	})
}

var batchSeeds = []string{
	`{"messages":[{"channel":"a","key":"EURUSD","data":"x"},{"channel":"a","key":"","data":"y"}]}`,
	`{"messages":[{"channel":"a","event":"x","data":"text"},{"channel":"b","data_base64":"AAEC"}]}`,
	" {\n \"messages\" : [ { \"channel\" : \"a\" , \"data\" : \"\" } ] }\r\n",
	`{"messages":[]}`,
	`{"messages":[{}]}`,
	`{"messages":[{"channel":"a","data":"{\"price\":1}\n\u00e9\ud83d\ude00\ud800"}]}`,
	`{"messages":[{"channel":"é","data":"ü€"}]}`,
	"{\"messages\":[{\"channel\":\"a\xff\",\"data\":\"\xc3\"}]}",
	`{"messages":[{"Channel":"a","data":"x"}]}`,
	`{"messages":[{"channel":"a","channel":"b","data":"x"}]}`,
	`{"messages":[{"channel":"a","data":"x"}],"messages":[{"data":"y"}]}`,
	`{"messages":[{"channel":"a","data":null}]}`,
	`{"messages":[{"channel":"a","data":"x","data_base64":"AA=="}]}`,
	`{"messages":[{"channel":"a","data":"x"}]}{}`,
	`{"messages":[{"channel":"a","data":"x\u0000"}]} x`,
	`{"messages":[{"channel":"a","data":"x` + "\x01" + `"}]}`,
	`{"messages":[{"channel":"a","data":"\x"}]}`,
	`{"messages":[{"channel":1}]}`,
	`{"messages":[{"channel":"a"},]}`,
	`{"messages":{"channel":"a"}}`,
	`[{"channel":"a"}]`,
	``,
	`{"messages":[{"channel":"a","key":null,"data":"z"}]}`,
	`{"messages":[{"channel":"a","key":"k","key":"j","data":"x"}]}`,
}

// The fast parser, when it accepts a body, gives what encoding/json gives;
// and it accepts the usual forms.
func TestParseBatchFast(t *testing.T) {
	for _, body := range batchSeeds {
		items, ok := parseBatchFast([]byte(body))
		msgs, stdOK := stdlibBatch([]byte(body))
		if ok && (!stdOK || !sameAsStdlib(items, msgs)) {
			t.Errorf("%q: fast %+v, encoding/json %+v (ok %v)", body, items, msgs, stdOK)
		}
	}
	for _, body := range batchSeeds[:6] {
		if _, ok := parseBatchFast([]byte(body)); !ok {
			t.Errorf("%q: the fast parser declined a usual body", body)
		}
	}
}

// FuzzParseBatchFast holds the fast parser to encoding/json's answer: it
// may decline any body, but what it accepts, encoding/json accepts alike.
func FuzzParseBatchFast(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, ok := parseBatchFast(body)
		if !ok {
			return
		}
		msgs, stdOK := stdlibBatch(body)
		if !stdOK || !sameAsStdlib(items, msgs) {
			t.Fatalf("%q: fast %+v, encoding/json %+v (ok %v)", body, items, msgs, stdOK)
		}
	})
}
