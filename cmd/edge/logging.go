package main

import (
	"io"
	"log/slog"
)

// newLogger returns the edge's logger as cfg says (text or JSON, at
// cfg.LogLevel) and the level it logs at, which can change at run time.
func newLogger(cfg config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// parseLevel reads a level that config.validate accepted.
func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s))
	return l
}
