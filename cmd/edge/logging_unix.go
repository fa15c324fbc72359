//go:build unix

package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// watchLevel switches the log level at run time: SIGUSR1 to debug,
// SIGUSR2 back to the configured level. stop ends the watch.
func watchLevel(level *slog.LevelVar, log *slog.Logger) (stop func()) {
	configured := level.Level()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range signals {
			if sig == syscall.SIGUSR1 {
				level.Set(slog.LevelDebug)
			} else {
				level.Set(configured)
			}
			log.Warn("log level changed", "new_level", level.Level().String(), "signal", sig.String())
		}
	}()
	return func() {
		signal.Stop(signals)
		close(signals)
		<-done
	}
}
