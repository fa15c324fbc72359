package telemetry

import (
	"strconv"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// defaultSampler is the sampler when OTEL_TRACES_SAMPLER is unset: follow
// the caller's decision, sample every root.
const defaultSampler = "parentbased_always_on"

// readSampler returns the sampler that OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG ask for, and its name for Describe.
func readSampler(e *env) (sdktrace.Sampler, string) {
	name := e.oneOf("OTEL_TRACES_SAMPLER", e.str("OTEL_TRACES_SAMPLER"), defaultSampler,
		"always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio")
	ratio := 1.0
	if arg := e.str("OTEL_TRACES_SAMPLER_ARG"); arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			e.failf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", arg)
		} else {
			ratio = r
		}
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), name
	case "always_off":
		return sdktrace.NeverSample(), name
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), name + " " + strconv.FormatFloat(ratio, 'g', -1, 64)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), name
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), name + " " + strconv.FormatFloat(ratio, 'g', -1, 64)
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample()), defaultSampler
}
