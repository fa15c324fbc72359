package edge_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// A FieldError names its field and those it refers to by their paths, or
// as the caller names them, and keeps its cause for errors.Is.
func TestFieldError(t *testing.T) {
	cause := errors.New("missing port")
	flag := func(path string) string { return "--" + strings.ToLower(strings.ReplaceAll(path, ".", "-")) }
	tests := []struct {
		name        string
		err         *edge.FieldError
		wantError   string
		wantProblem string // with fields named by flag
	}{
		{"plain", edge.Invalid("QueueBytes", "%d is negative", -1),
			"QueueBytes: -1 is negative", "-1 is negative"},
		{"refers to another field", edge.Invalid("PollTimeout", "over %s; raise %[1]s", edge.FieldRef("PollTimeoutMax")),
			"PollTimeout: over PollTimeoutMax; raise PollTimeoutMax", "over --polltimeoutmax; raise --polltimeoutmax"},
		{"wraps a cause", edge.Invalid("Listen", "%q: %w", "x", cause),
			`Listen: "x": missing port`, `"x": missing port`},
		{"nested", edge.InField("Hub", edge.Invalid("QueueBytes", "under %s", edge.FieldRef("MaxPayload")))[0].(*edge.FieldError),
			"Hub.QueueBytes: under Hub.MaxPayload", "under --hub-maxpayload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.wantError {
				t.Errorf("Error() = %q, want %q", got, tt.wantError)
			}
			if got := tt.err.Problem(flag); got != tt.wantProblem {
				t.Errorf("Problem(flag) = %q, want %q", got, tt.wantProblem)
			}
		})
	}
	if err := edge.Invalid("Listen", "%q: %w", "x", cause); !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false", err)
	}
}

// InField prefixes every problem of a joined Validate error, and each
// stays a FieldError that errors.As finds.
func TestInField(t *testing.T) {
	if got := edge.InField("Hub", nil); got != nil {
		t.Errorf("InField(nil) = %v, want nil", got)
	}
	got := edge.InField("Hub", edge.Config{MaxChannels: -1, QueueBytes: -1}.Validate())
	var fields []string
	for _, e := range got {
		var fe *edge.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if strings.Join(fields, " ") != "Hub.MaxChannels Hub.QueueBytes" {
		t.Errorf("fields = %v, want Hub.MaxChannels Hub.QueueBytes", fields)
	}
}

// Problems lists what a Validate error joins: none for nil, the error
// itself when it joins nothing, each joined problem otherwise.
func TestProblems(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	for _, tt := range []struct {
		name string
		err  error
		want []error
	}{
		{"nil", nil, nil},
		{"one", a, []error{a}},
		{"joined", errors.Join(a, b), []error{a, b}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := edge.Problems(tt.err)
			if len(got) != len(tt.want) {
				t.Fatalf("Problems = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("problem %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
