package main

import (
	"slices"
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{minSize, 100, 4096} {
		p := appendPayload(nil, 123456789, 1732270000123456789, size)
		if len(p) != size {
			t.Errorf("payload of size %d has %d bytes: %q", size, len(p), p)
		}
		seq, sent, ok := parsePayload(p)
		if !ok || seq != 123456789 || sent != 1732270000123456789 {
			t.Errorf("parsePayload(%q) = %d, %d, %v", p, seq, sent, ok)
		}
	}
	for _, bad := range []string{"", "seq=", "seq=1", "seq=1 t=", "sek=1 t=2", "seq=x t=2", "seq=1 t=99999999999999999999"} {
		if _, _, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}

func TestScanMessages(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  []string
	}{
		{"one message", `{"channel":"bench-0","id":"1-0","event":"","data":"seq=1 t=2 xx"}`, []string{"seq=1 t=2 xx"}},
		{"array", `[{"channel":"a","id":"1-0","event":"","data":"seq=1 t=2 "},{"channel":"a","id":"1-1","event":"","data":"seq=2 t=3 "}]`, []string{"seq=1 t=2 ", "seq=2 t=3 "}},
		{"subscribed", `{"type":"subscribed","channel":"bench-0","id":"1-0"}`, nil},
		{"disconnect", `{"type":"disconnect","code":4002,"reason":"slow_consumer","reconnect":true}`, nil},
		{"truncated", `{"channel":"a","data":"seq=1`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			n := scanMessages([]byte(tt.frame), func(p []byte) { got = append(got, string(p)) })
			if n != len(got) || !slices.Equal(got, tt.want) {
				t.Errorf("scanMessages = %d %q, want %q", n, got, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime=250, stime=50 ticks.
	stat := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got.Seconds() != 3 {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (a) S 1")); err == nil {
		t.Error("parseStatCPU accepted a short line")
	}
}

func TestCheckLoopback(t *testing.T) {
	for host, ok := range map[string]bool{
		"127.0.0.1": true, "127.9.9.9": true, "::1": true, "localhost": true, "LOCALHOST": true,
		"10.0.0.1": false, "example.com": false, "0.0.0.0": false, "": false, "::": false,
	} {
		err := checkLoopback("--url", host)
		if (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", host, err)
		}
		if err != nil && !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("checkLoopback(%q) error %q does not say why", host, err)
		}
	}
}
