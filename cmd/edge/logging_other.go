//go:build !unix

package main

import "log/slog"

// watchLevel does nothing where there are no SIGUSR1 and SIGUSR2.
func watchLevel(*slog.LevelVar, *slog.Logger) (stop func()) { return func() {} }
