package edge_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/edgeworks/edge/edge"
	"github.com/edgeworks/edge/edge/configtest"
)

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   edge.Config
		want edge.Config
	}{
		{"zero value", edge.Config{}, edge.Config{MaxChannels: 64, QueueBytes: 1 << 20, MaxPollMembers: 100_000}},
		{"explicit values are kept", edge.Config{MaxChannels: 2, QueueBytes: 4096, MaxPollMembers: 3}, edge.Config{MaxChannels: 2, QueueBytes: 4096, MaxPollMembers: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.WithDefaults()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WithDefaults = %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if again := got.WithDefaults(); !reflect.DeepEqual(again, got) {
				t.Errorf("WithDefaults is not idempotent: %+v", again)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   edge.Config
		wants []string // each must start one line of the error
	}{
		{"zero value", edge.Config{}, nil},
		{"negative MaxChannels", edge.Config{MaxChannels: -1}, []string{"MaxChannels: -1 is negative"}},
		{"every problem at once", edge.Config{MaxChannels: -1, QueueBytes: -2, MaxPollMembers: -3}, []string{"MaxChannels:", "QueueBytes: -2 is negative", "MaxPollMembers: -3 is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configtest.WantProblems(t, tt.cfg.Validate(), tt.wants)
		})
	}
}

// NewHub fills in the defaults of a zero configuration and refuses an
// invalid one as the programmer error it is.
func TestNewHubConfig(t *testing.T) {
	h, _ := newHub(t, edge.Config{})
	if got, want := h.Config(), (edge.Config{}).WithDefaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "QueueBytes") {
			t.Errorf("NewHub with a negative QueueBytes: recovered %v, want a panic naming QueueBytes", r)
		}
	}()
	newHub(t, edge.Config{QueueBytes: -1})
}
