package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// hungBackend is a cluster whose health check hangs until its context
// ends (a Slurm controller that never answers): it counts the checks in
// flight and the most that ever were at once.
type hungBackend struct {
	backend.Backend
	inFlight, most, calls atomic.Int32
	// ignoreCtx: the check hangs past its deadline too, until release.
	ignoreCtx bool
	release   chan struct{}
}

func (h *hungBackend) Health(ctx context.Context) error {
	h.calls.Add(1)
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.most.Load()
		if n <= m || h.most.CompareAndSwap(m, n) {
			break
		}
	}
	if h.ignoreCtx {
		<-h.release
		return errors.New("released")
	}
	<-ctx.Done()
	return ctx.Err()
}

// hungFleet: a local cluster beside a Slurm one whose controller hangs.
const hungFleet = `
clusters:
  - name: box
    provider: onprem
    region: dc
    backend: local
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}
  - name: hpc
    provider: onprem
    region: dc
    backend: slurm
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed}
`

// A cluster whose health check hangs delays no round past the first
// probeWait: the local cluster's job is placed, dispatched and succeeds
// round after round while the check hangs (its deadline, an hour here,
// never passes during the test), whether the check heeds its context or
// not; the hung cluster is UNKNOWN until a check of it answers, takes no
// work, and is never checked twice at once.
func TestHungHealthCheckDoesNotDelayTheRound(t *testing.T) {
	t.Parallel()
	for _, ignoreCtx := range []bool{false, true} {
		e := newStoppedEnv(t)
		hung := &hungBackend{Backend: e.be, ignoreCtx: ignoreCtx, release: make(chan struct{})}
		cfg := e.config()
		cfg.Backends = func(c model.Cluster) (backend.Backend, error) {
			if c.Backend == model.BackendSlurm {
				return hung, nil
			}
			return e.be, nil
		}
		cfg.Deadlines = Deadlines{Health: time.Hour}
		// On a clock that moves only when told, a round that waits for the
		// hung check returns only when its context ends.
		fc := &fakeClock{now: time.Now()}
		cfg.Clock = fc
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := e.st.PutFleet(ctx, hungFleet, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
		j := e.submitDirect(task("true"))
		// The first round waits probeWait for the hung check.
		first := make(chan error, 1)
		go func() { first <- c.Reconcile(ctx) }()
	wait:
		for {
			select {
			case err := <-first:
				if err != nil {
					t.Fatal(err)
				}
				break wait
			case <-time.After(20 * time.Millisecond):
				fc.Advance(probeWait)
			}
		}
		// No round after waits for it at all: one that did would never
		// return, its timer never firing.
		rounds := 1
		for deadline := time.Now().Add(30 * time.Second); ; rounds++ {
			go func() { first <- c.Reconcile(ctx) }()
			select {
			case err := <-first:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d waits for the hung check", rounds+1)
			}
			got, err := e.st.GetJob(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == store.Succeeded {
				if got.Placement.Cluster != "box" {
					t.Errorf("placed on %s, want box", got.Placement.Cluster)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job is %s (%s) after %d rounds, want SUCCEEDED", got.State, got.Reason, rounds)
			}
			time.Sleep(20 * time.Millisecond)
		}
		h := c.View().Health
		if h["box"].State != StateHealthy || h["hpc"].State != StateUnknown || !strings.Contains(h["hpc"].Why, "first health check") {
			t.Errorf("health %+v: want box HEALTHY, hpc UNKNOWN waiting for its first check", h)
		}
		if n := hung.most.Load(); n != 1 {
			t.Errorf("%d checks of the hung cluster at once, want 1", n)
		}
		if n := hung.calls.Load(); n != 1 {
			t.Errorf("%d checks of the hung cluster over %d rounds, want 1 (never started again while one hangs)", n, rounds)
		}
		cancel()
		close(hung.release)
	}
}

// A check that does not answer within its deadline makes the cluster
// UNHEALTHY with "health check timed out after D", and the next check
// starts only once the hung call has returned.
func TestHealthCheckTimesOut(t *testing.T) {
	t.Parallel()
	e := newStoppedEnv(t)
	hung := &hungBackend{Backend: e.be}
	cfg := e.config()
	cfg.Backends = func(c model.Cluster) (backend.Backend, error) {
		if c.Backend == model.BackendSlurm {
			return hung, nil
		}
		return e.be, nil
	}
	cfg.Deadlines = Deadlines{Health: 200 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := e.st.PutFleet(ctx, hungFleet, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		h := c.View().Health["hpc"]
		if h.State == StateUnhealthy {
			if h.Why != "health check timed out after 200ms" || h.Checked.IsZero() {
				t.Errorf("hpc %+v: want UNHEALTHY, health check timed out after 200ms, with the time checked", h)
			}
			break
		}
		if h.State != StateUnknown {
			t.Fatalf("hpc %+v before its first check answered, want UNKNOWN", h)
		}
		if time.Now().After(deadline) {
			t.Fatalf("hpc still %+v", h)
		}
	}
	if n := hung.most.Load(); n != 1 {
		t.Errorf("%d checks at once, want 1", n)
	}
}

// bounded gives up a call that ignores its context at the deadline, and
// keeps the call's own words when it gave up itself.
func TestBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	release := make(chan struct{})
	finished, err := bounded(ctx, 50*time.Millisecond, "observe", func(context.Context) error { <-release; return nil })
	if err == nil || err.Error() != "observe timed out after 50ms" || !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("err = %v, want observe timed out after 50ms (ErrUnavailable)", err)
	}
	select {
	case <-finished:
		t.Error("finished before the call returned")
	default:
	}
	close(release)
	<-finished
	_, err = bounded(ctx, time.Second, "health check", func(context.Context) error { return errors.New("slurm.conf not found") })
	if err == nil || err.Error() != "health check: slurm.conf not found" {
		t.Errorf("err = %v", err)
	}
	_, err = bounded(ctx, 50*time.Millisecond, "health check", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("scontrol ping: timed out after 50ms")
	})
	if err == nil || err.Error() != "health check: scontrol ping: timed out after 50ms" && err.Error() != "health check timed out after 50ms" {
		t.Errorf("err = %v", err)
	}
}

// A call that gives up at the deadline with words of its own (a
// Kubernetes client's "context deadline exceeded" inside its request's
// error) is reported as timed out, with those words.
func TestBoundedDriverWords(t *testing.T) {
	t.Parallel()
	_, err := bounded(t.Context(), 50*time.Millisecond, "health check", func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("kubernetes: /readyz: Get \"https://k/readyz\": %v: %w", ctx.Err(), backend.ErrUnavailable)
	})
	want := `health check timed out after 50ms: kubernetes: /readyz: Get "https://k/readyz": context deadline exceeded: backend unavailable`
	if err == nil || err.Error() != want || !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("err = %v, want %s", err, want)
	}
}
