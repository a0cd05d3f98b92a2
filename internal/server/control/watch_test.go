package control

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// chanWatcher is a backend that is a backend.Watcher, and counts its
// Observes.
type chanWatcher struct {
	backend.Backend
	ch       chan struct{}
	observed atomic.Int32
}

func newChanWatcher(b backend.Backend) *chanWatcher {
	return &chanWatcher{Backend: b, ch: make(chan struct{}, 1)}
}

func (w *chanWatcher) Changes() <-chan struct{} { return w.ch }

func (w *chanWatcher) Observe(ctx context.Context) ([]backend.Status, error) {
	w.observed.Add(1)
	return w.Backend.Observe(ctx)
}

// drained reports whether something took the signal sent on w (within a
// while).
func (w *chanWatcher) drained() bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if len(w.ch) == 0 {
			return true
		}
	}
	return false
}

// TestWatchersFollowTheBackends: one forwarder per watched channel,
// started when its backend appears and stopped when it goes; stopAll
// leaves none running.
func TestWatchersFollowTheBackends(t *testing.T) {
	t.Parallel()
	a, b := newChanWatcher(nil), newChanWatcher(nil)
	w := newWatchers()
	w.sync([]backend.Backend{a, b, a})
	if len(w.live) != 2 {
		t.Fatalf("%d forwarders for two watched channels", len(w.live))
	}
	a.ch <- struct{}{}
	select {
	case <-w.changed:
	case <-time.After(5 * time.Second):
		t.Fatal("a change of a watched backend did not reach the reconciler")
	}
	w.sync([]backend.Backend{b})
	if len(w.live) != 1 {
		t.Fatalf("%d forwarders after a backend went, want 1", len(w.live))
	}
	a.ch <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if len(a.ch) != 1 {
		t.Error("the forwarder of a backend that went still takes its changes")
	}
	b.ch <- struct{}{}
	if !b.drained() {
		t.Error("the forwarder of a backend that stayed stopped taking its changes")
	}
	w.stopAll() // returns once every forwarder has
	if len(w.live) != 0 {
		t.Errorf("%d forwarders after stopAll", len(w.live))
	}
	b.ch <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if len(b.ch) != 1 {
		t.Error("a forwarder runs on after stopAll")
	}
}

// TestBackendChangeWakesTheReconciler: with an hour between rounds, a
// backend's change starts a round at once; Close stops the watchers.
func TestBackendChangeWakesTheReconciler(t *testing.T) {
	t.Parallel()
	e := newStoppedEnv(t)
	w := newChanWatcher(e.be)
	cfg := e.config()
	cfg.RoundInterval = time.Hour
	cfg.Backends = func(model.Cluster) (backend.Backend, error) { return w, nil }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	waitFor := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); w.observed.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d rounds, want %d", w.observed.Load(), n)
			}
		}
	}
	waitFor(1) // the first round, at Open
	time.Sleep(50 * time.Millisecond)
	w.ch <- struct{}{}
	waitFor(2)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.ch <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if len(w.ch) != 1 {
		t.Error("a watcher runs on after Close")
	}
}
