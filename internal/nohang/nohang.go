// Package nohang guards tests of code that must never block (an open of a
// FIFO waits for its other end forever): a hang fails the test instead of
// stopping the whole run.
package nohang

import (
	"testing"
	"time"
)

// Run runs f in a goroutine and fails t with what if f has not returned
// after limit. A hang is the bug itself, not a slow machine, so limit is
// a generous bound, never a speed measurement. f may report with t.Error
// but must not call t.Fatal (it does not run on the test's goroutine).
func Run(t testing.TB, limit time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("blocked for %v: %s", limit, what)
	}
}
