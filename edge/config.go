package edge

import (
	"errors"
	"fmt"
)

// Config is the configuration of a Hub. The zero value is a valid
// configuration: NewHub fills every zero field with its default (see
// WithDefaults).
type Config struct {
	// MaxChannels is how many channels one session may subscribe to.
	// Zero means 64.
	MaxChannels int
	// QueueBytes bounds what may wait in one session's outgoing queue; a
	// session past it is closed as a slow consumer. Zero means 1 MiB.
	QueueBytes int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.MaxChannels, 64)
	setDefault(&c.QueueBytes, 1<<20)
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate reports every problem in c at once, naming the field and the
// fix.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxChannels", c.MaxChannels}, {"QueueBytes", c.QueueBytes}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative; use a positive value, or zero for the default", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}
