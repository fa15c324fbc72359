package transports

import (
	"net/url"
	"strings"
	"testing"
)

func TestQueryValue(t *testing.T) {
	tests := []struct {
		name, query, key, want string
	}{
		{"plain", "channel=news", "channel", "news"},
		{"absent", "event=tick", "channel", ""},
		{"empty query", "", "channel", ""},
		{"first of several", "channel=a&channel=b", "channel", "a"},
		{"among others", "event=tick&channel=news&x=1", "channel", "news"},
		{"no value", "channel", "channel", ""},
		{"empty value", "channel=&channel=b", "channel", ""},
		{"escaped value", "channel=a%2Fb%3Ac%40d", "channel", "a/b:c@d"},
		{"plus is a space", "channel=a+b", "channel", "a b"},
		{"escaped key", "chan%6Eel=news", "channel", "news"},
		{"prefix is another key", "channel2=x&channel=news", "channel", "news"},
		{"bad escape in value skips the pair", "channel=%zz&channel=ok", "channel", "ok"},
		{"bad escape in key skips the pair", "chan%zzel=x&channel=ok", "channel", "ok"},
		{"semicolon skips the pair", "channel=a;b&channel=ok", "channel", "ok"},
		{"empty pairs", "&&channel=news&", "channel", "news"},
		{"equals in value", "channel=a=b", "channel", "a=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queryValue(tt.query, tt.key); got != tt.want {
				t.Errorf("queryValue(%q, %q) = %q, want %q", tt.query, tt.key, got, tt.want)
			}
			if std := parseQueryGet(tt.query, tt.key); std != tt.want {
				t.Errorf("url.ParseQuery(%q).Get(%q) = %q: the table disagrees with net/url", tt.query, tt.key, std)
			}
		})
	}
}

// parseQueryGet is what queryValue stands in for.
func parseQueryGet(query, key string) string {
	v, _ := url.ParseQuery(query)
	return v.Get(key)
}

// queryValue reads a parameter exactly as url.ParseQuery does.
func FuzzQueryValue(f *testing.F) {
	for _, q := range []string{"channel=news", "chan%6Eel=a+b&channel=c", "channel=%zz&channel=ok", "a;b&channel=x", "=&channel&channel=%41"} {
		f.Add(q, "channel")
	}
	f.Fuzz(func(t *testing.T, query, key string) {
		if strings.Count(query, "&") >= 1000 {
			t.Skip("net/url refuses many pairs; queryValue has no such limit")
		}
		if got, want := queryValue(query, key), parseQueryGet(query, key); got != want {
			t.Fatalf("queryValue(%q, %q) = %q, url.ParseQuery gives %q", query, key, got, want)
		}
	})
}

// queryProblem refuses exactly the queries of which url.ParseQuery drops
// pairs, so that after it every reader of the query sees every pair.
func TestQueryProblem(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		bad         bool
	}{
		{"empty", "", false},
		{"plain", "channel=news&event=tick", false},
		{"escapes", "channel=a%3Ab&event=%7e+x", false},
		{"escaped key", "chan%6Eel=a", false},
		{"bad escape", "channel=a%ZZb", true},
		{"short escape at the end", "channel=a%2", true},
		{"percent at the end", "channel=a%", true},
		{"bad escape in a key", "chan%zzel=a", true},
		{"bad escape in a later pair", "channel=a&since=%g0", true},
		{"semicolon", "channel=a;b", true},
		{"semicolon in a key", "a;b=c", true},
		{"escaped semicolon", "channel=a%3Bb", false},
		{"empty pairs", "&&channel=a&", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := queryProblem(tc.query); (err != nil) != tc.bad {
				t.Fatalf("queryProblem(%q) = %v, want a refusal %v", tc.query, err, tc.bad)
			}
			if _, err := url.ParseQuery(tc.query); (err != nil) != tc.bad {
				t.Fatalf("url.ParseQuery(%q) = %v: the table disagrees with net/url", tc.query, err)
			}
		})
	}
}

// queryProblem refuses a query exactly when url.ParseQuery fails on it.
func FuzzQueryProblem(f *testing.F) {
	for _, q := range []string{"channel=news", "channel=a%ZZb", "a;b", "chan%6Eel=a+b&channel=%4", "%"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		if strings.Count(query, "&") >= 1000 {
			t.Skip("net/url refuses many pairs; the header limit keeps queries far below")
		}
		_, err := url.ParseQuery(query)
		if got := queryProblem(query); (got != nil) != (err != nil) {
			t.Fatalf("queryProblem(%q) = %v, url.ParseQuery gives %v", query, got, err)
		}
	})
}

// Reading the publish parameters allocates nothing unless they hold
// escapes.
func TestQueryValueDoesNotAllocate(t *testing.T) {
	q := "event=tick&channel=news"
	if n := testing.AllocsPerRun(100, func() { queryValue(q, "channel") }); n != 0 {
		t.Fatalf("%.1f allocations", n)
	}
}
