// Package configtest is a test helper for the layers' configurations (the
// manner of net/http/httptest): it checks the problems that a Validate of
// edge.Config, the stores' configs, transports.Config or edgetls.Config
// reports, so that each layer's tests state only their cases.
package configtest

import (
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
)

// WantProblems checks that err, the error of a Validate, reports exactly
// len(wants) problems, the i-th starting with wants[i] (its field's path),
// and that none names a command-line flag: a layer speaks of its fields,
// and only cmd/edge of flags.
func WantProblems(t testing.TB, err error, wants []string) {
	t.Helper()
	problems := edge.Problems(err)
	if len(problems) != len(wants) {
		t.Fatalf("Validate = %v, want %d problems", err, len(wants))
	}
	for i, w := range wants {
		p := problems[i].Error()
		if !strings.HasPrefix(p, w) {
			t.Errorf("problem %d = %q, want it to start %q", i, p, w)
		}
		if strings.Contains(p, "--") {
			t.Errorf("problem %d = %q names a flag", i, p)
		}
	}
}
