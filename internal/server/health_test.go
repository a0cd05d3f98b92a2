package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// withHealth is a backend whose Health the test sets.
type withHealth struct {
	backend.Backend
	mu  sync.Mutex
	err error
}

func (h *withHealth) Health(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *withHealth) set(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// A cluster that answers but takes no new work (every Slurm node drained
// for maintenance) keeps its running attempts and gets nothing new; one
// that does not answer loses its attempts after the cluster timeout.
func TestClusterTakingNoNewWorkKeepsItsAttempts(t *testing.T) {
	t.Parallel()
	hb := &withHealth{}
	e := newTestEnv(t, func(c *Config) { c.ClusterTimeout = 300 * time.Millisecond },
		wrapBackend(hb, func(b backend.Backend) { hb.Backend = b }))
	first := e.submit(e.admin, task("sleep 30"))[0].ID
	e.waitState(first, 20*time.Second, store.Running)

	hb.set(fmt.Errorf("2 of 2 nodes down or drained: %w", backend.ErrNoNewWork))
	second := e.submit(e.admin, task("echo second"))[0].ID
	var cl struct{ Clusters []api.Cluster }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.mustDo(http.StatusOK, "GET", "/v1/clusters", e.admin, nil, &cl)
		if len(cl.Clusters) == 1 && !cl.Clusters[0].Healthy || time.Now().After(deadline) {
			break
		}
	}
	if len(cl.Clusters) != 1 || cl.Clusters[0].Healthy || !strings.Contains(cl.Clusters[0].Why, "takes no new work") {
		t.Errorf("clusters while closed: %+v, want it unhealthy, saying it takes no new work", cl.Clusters)
	}
	time.Sleep(5 * 300 * time.Millisecond) // five cluster timeouts
	if j := e.job(first); j.State != store.Running || j.Attempt != 1 {
		t.Errorf("running job on a cluster taking no new work: %s attempt %d (%s), want still Running as attempt 1", j.State, j.Attempt, j.Reason)
	}
	if j := e.job(second); j.State != store.Pending {
		t.Errorf("job submitted while the cluster takes no new work: %s, want Pending", j.State)
	}

	hb.set(nil)
	e.waitState(second, 20*time.Second, store.Succeeded)

	// Unreachable: the running attempt is lost and retried.
	hb.set(errors.New("scontrol ping: no answer"))
	j := e.waitState(first, 20*time.Second, store.Pending)
	lost := false
	for _, ev := range e.events(first) {
		lost = lost || ev.From == store.Running && ev.To == store.Pending && strings.HasPrefix(ev.Message, "Lost: cluster local unreachable")
	}
	if j.Attempt != 2 || !lost {
		t.Errorf("running job on an unreachable cluster: %s attempt %d, events %v, want Pending as attempt 2, lost", j.State, j.Attempt, transitions(e.events(first)))
	}
}
