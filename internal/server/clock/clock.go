// Package clock is the wall clock of the control plane, injected: the
// server, its reconciler and its API read the time and start timers only
// through a Clock (internal/arch checks that they call no time.Now,
// time.Since, time.NewTimer, ... of their own), so that a test or a tool can
// run them on another clock.
package clock

import "time"

// Clock reads the time and starts timers.
type Clock interface {
	Now() time.Time
	// NewTimer starts a timer that fires once, after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a *time.Timer behind an interface: C delivers the time it
// fired; Reset and Stop are time.Timer's (Go 1.23 semantics: no stale
// value is received after either).
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

// Real is the machine's clock.
func Real() Clock { return realClock{} }

// WithNow is a clock that reads the time from now and runs real timers:
// what a caller that only sets the time (Config.Now) gets.
func WithNow(now func() time.Time) Clock { return nowClock{now} }

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type nowClock struct{ now func() time.Time }

func (c nowClock) Now() time.Time               { return c.now() }
func (nowClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
func (t realTimer) Stop() bool                 { return t.t.Stop() }

// Sleep waits d on c, or until done is closed; it reports whether the
// whole d passed.
func Sleep(c Clock, done <-chan struct{}, d time.Duration) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C():
		return true
	}
}
