package telemetry

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// env reads OTEL_* variables through a lookup function and collects every
// problem it finds, so that New can report them all at once. It is used by
// one goroutine, inside New.
type env struct {
	get  func(string) string
	errs []error
}

// str returns the trimmed value of name; "" means unset.
func (e *env) str(name string) string { return strings.TrimSpace(e.get(name)) }

// first returns the first of names that is set, and its value; "", "" when
// none is.
func (e *env) first(names ...string) (name, value string) {
	for _, n := range names {
		if v := e.str(n); v != "" {
			return n, v
		}
	}
	return "", ""
}

// failf records a problem with the environment, once: both signals read
// the general variables.
func (e *env) failf(format string, args ...any) {
	err := fmt.Errorf("telemetry: "+format, args...)
	for _, seen := range e.errs {
		if seen.Error() == err.Error() {
			return
		}
	}
	e.errs = append(e.errs, err)
}

// oneOf checks that value, read from name, is one of accepted (case
// insensitively) and returns it in lower case; def when value is "" or
// wrong.
func (e *env) oneOf(name, value, def string, accepted ...string) string {
	if value == "" {
		return def
	}
	v := strings.ToLower(value)
	if !slices.Contains(accepted, v) {
		e.failf("%s=%q: want one of %s", name, value, strings.Join(accepted, ", "))
		return def
	}
	return v
}

// boolean reads a true/false variable of the first of names that is set;
// false when none is.
func (e *env) boolean(names ...string) bool {
	name, v := e.first(names...)
	return e.oneOf(name, v, "false", "true", "false") == "true"
}

// millis reads a duration in whole milliseconds of the first of names that
// is set; 0 when none is.
func (e *env) millis(names ...string) time.Duration {
	name, v := e.first(names...)
	if v == "" {
		return 0
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 || ms > int64(24*time.Hour/time.Millisecond) {
		e.failf("%s=%q: want a positive whole number of milliseconds", name, v)
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// list reads a comma-separated list from name, checking each entry against
// accepted. It returns nil when name is unset.
func (e *env) list(name string, accepted ...string) []string {
	v := e.str(name)
	if v == "" {
		return nil
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		out = append(out, e.oneOf(name, strings.TrimSpace(item), "", accepted...))
	}
	return out
}

// pairs reads the first of names that is set as k=v,k2=v2 with
// percent-encoded values (the W3C baggage form that OTEL_RESOURCE_ATTRIBUTES
// and OTEL_EXPORTER_OTLP_HEADERS use), checking each key with validKey
// when it is not nil. Errors name the entry by position and key, never its
// value: headers carry credentials.
func (e *env) pairs(validKey func(string) bool, names ...string) map[string]string {
	name, v := e.first(names...)
	if v == "" {
		return nil
	}
	out := make(map[string]string)
	i := 0
	for entry := range strings.SplitSeq(v, ",") {
		i++
		if strings.TrimSpace(entry) == "" {
			continue
		}
		key, val, ok := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			e.failf("%s: entry %d is not key=value", name, i)
			continue
		}
		if validKey != nil && !validKey(key) {
			e.failf("%s: entry %d: %q is not a valid name", name, i, key)
			continue
		}
		decoded, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			e.failf("%s: entry %d (%s): the value is not percent-encoded", name, i, key)
			continue
		}
		out[key] = decoded
	}
	return out
}
