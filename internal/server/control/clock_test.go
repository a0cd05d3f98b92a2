package control

import (
	"context"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
)

// fakeClock is a clock.Clock whose time moves only when Advance is called;
// its timers fire then.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	at     time.Time
	active bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t
}

// Advance moves the time on by d and fires the timers due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fire()
}

func (c *fakeClock) fire() {
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			select {
			case t.ch <- c.now:
			default:
			}
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	select {
	case <-t.ch:
	default:
	}
	t.at, t.active = t.c.now.Add(d), true
	t.c.fire()
	return was
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

// TestRoundsRunOnTheInjectedClock: the reconciler's pacing waits on
// Config.Clock, not on the machine's: with the clock stopped, no round
// follows the first however short the interval; each step of the clock
// past the interval brings one.
func TestRoundsRunOnTheInjectedClock(t *testing.T) {
	t.Parallel()
	e := newStoppedEnv(t)
	w := newChanWatcher(e.be)
	fc := &fakeClock{now: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}
	cfg := e.config()
	cfg.Clock = fc
	cfg.RoundInterval = time.Millisecond
	cfg.Backends = func(model.Cluster) (backend.Backend, error) { return w, nil }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); w.observed.Load() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no first round")
		}
	}
	time.Sleep(300 * time.Millisecond) // a real clock would have run ten rounds by now
	if n := w.observed.Load(); n != 1 {
		t.Fatalf("%d rounds with the clock stopped, want 1", n)
	}
	for want := int32(2); want <= 3; want++ {
		for deadline := time.Now().Add(10 * time.Second); w.observed.Load() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d rounds after the clock moved on, want %d", w.observed.Load(), want)
			}
			fc.Advance(time.Second)
		}
	}
}
