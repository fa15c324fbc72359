package edgetls

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeworks/edge/edge/configtest"
)

// Validate names the fields at fault and reports every problem at once;
// New refuses what Validate refuses.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		wants []string // each must start one line of the error
	}{
		{"zero value", Config{}, nil},
		{"self-signed", Config{Mode: SelfSigned}, nil},
		{"unknown mode", Config{Mode: "tls13-please"}, []string{`Mode: "tls13-please" is not a mode`}},
		{"files without a key", Config{Mode: Files, CertFile: "cert.pem"}, []string{`Mode: "files" needs CertFile and KeyFile`}},
		{"files outside files mode", Config{Mode: SelfSigned, CertFile: "cert.pem", KeyFile: "key.pem"},
			[]string{`CertFile: only used when Mode is "files"`, "KeyFile: only used"}},
		{"HTTP listener without TLS", Config{HTTPListen: ":80"}, []string{"HTTPListen: only used with TLS"}},
		{"acme without names", Config{Mode: ACME}, []string{`Mode: "acme" needs Domains`}},
		{"acme on demand", Config{Mode: ACME, OnDemand: true, OnDemandAsk: "https://api.example/ok"}, nil},
		{"on demand without approval, outside ACME", Config{Mode: SelfSigned, OnDemand: true},
			[]string{`OnDemand: only used when Mode is "acme"`, "OnDemand: needs OnDemandAllow or OnDemandAsk"}},
		{"every problem at once", Config{Mode: ACME, Domains: []string{"a.example"}, HTTPListen: "80", OnDemandRate: -1,
			ReloadInterval: -time.Second, RenewalWindowRatio: 1},
			[]string{"HTTPListen:", "OnDemandRate:", "ReloadInterval:", "RenewalWindowRatio:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			configtest.WantProblems(t, err, tt.wants)
			if err != nil {
				if _, newErr := New(tt.cfg); newErr == nil || !strings.Contains(newErr.Error(), err.Error()) {
					t.Errorf("New = %v, want Validate's %v", newErr, err)
				}
			}
		})
	}
}

// WithDefaults fills the defaults of this package's own and keeps Mode and
// explicit values.
func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name     string
		in, want Config
	}{
		{"zero value", Config{}, Config{ReloadInterval: 2 * time.Second, OnDemandRate: 10}},
		{"explicit values are kept", Config{Mode: ACME, ReloadInterval: time.Second, OnDemandRate: 3},
			Config{Mode: ACME, ReloadInterval: time.Second, OnDemandRate: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); got.Mode != tt.want.Mode || got.ReloadInterval != tt.want.ReloadInterval || got.OnDemandRate != tt.want.OnDemandRate {
				t.Errorf("WithDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
}
