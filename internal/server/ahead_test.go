package server

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// orderLog is a backend that logs when Submits return and Cancels start,
// and holds the Submit of the job of priority 10 until release is closed.
type orderLog struct {
	backend.Backend
	mu      sync.Mutex
	log     []string
	entered chan struct{}
	release chan struct{}
}

func (o *orderLog) note(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
}

func (o *orderLog) lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.log...)
}

func (o *orderLog) Submit(ctx context.Context, spec backend.Spec) error {
	if spec.Priority == 10 {
		close(o.entered)
		select {
		case <-o.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := o.Backend.Submit(ctx, spec)
	o.note("submitted " + spec.Name)
	return err
}

func (o *orderLog) Cancel(ctx context.Context, name string) error {
	o.note("cancel " + name)
	return o.Backend.Cancel(ctx, name)
}

// On a queue_ahead cluster, a job that preempts running work reaches the
// engine before its victim is stopped: stopped first, the engine would
// hand the freed node to work queued ahead of it.
func TestPreemptionOnQueueAheadStopsVictimAfterSubmit(t *testing.T) {
	t.Parallel()
	o := &orderLog{entered: make(chan struct{}), release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(o.release)
		}
	}()
	e := newTestEnv(t, func(c *Config) {
		next := c.Backends
		c.Backends = func(cl model.Cluster) (backend.Backend, error) {
			b, err := next(model.Cluster{Name: cl.Name, Backend: model.BackendLocal})
			if err != nil {
				return nil, err
			}
			o.Backend = b
			return o, nil
		}
	})
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: `clusters:
  - name: hpc
    provider: onprem
    region: dc
    backend: slurm
    queue_ahead: 1
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]
`}, nil)
	low := e.submit(e.admin, "resources:\n  accelerators: H100:4\nrun: sleep 30\n")[0]
	e.waitState(low.ID, 20*time.Second, store.Running)
	lowName := backend.Name(low.ID, 1)
	high := e.submit(e.admin, "resources:\n  accelerators: H100:4\nx-gpubroker:\n  priority: 10\nrun: sleep 0.2\n")[0]
	select {
	case <-o.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the preempting job's Submit never came")
	}
	time.Sleep(300 * time.Millisecond) // rounds every 20 ms
	for _, l := range o.lines() {
		if l == "cancel "+lowName {
			t.Fatalf("the victim was stopped while the preempting job's Submit was held: %v", o.lines())
		}
	}
	if j := e.job(low.ID); j.State == store.Running && j.Attempt == 1 {
		t.Errorf("the victim was not moved on: %s attempt %d", j.State, j.Attempt)
	}
	close(o.release)
	released = true
	e.waitState(high.ID, 20*time.Second, store.Succeeded)
	lines := o.lines()
	submitted, cancelled := slices.Index(lines, "submitted "+backend.Name(high.ID, 1)), slices.Index(lines, "cancel "+lowName)
	if submitted < 0 || cancelled < 0 || cancelled < submitted {
		t.Errorf("want the preempting job submitted, then the victim stopped: %v", lines)
	}
}
