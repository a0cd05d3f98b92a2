package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// testEnv is a real SQLite store and a real local backend of 4 GPUs, for
// controllers that tests drive round by round.
type testEnv struct {
	t  *testing.T
	st *sqlite.Store
	be *local.Backend
}

// newStoppedEnv is a testEnv with no controller started.
func newStoppedEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be, err := local.New(filepath.Join(dir, "local"), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, st: st, be: be}
	t.Cleanup(e.drain)
	return e
}

// drain stops every attempt still on the backend, so the temporary
// directory can go (it runs before its removal; a test closes its
// controller first).
func (e *testEnv) drain() {
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sts, err := e.be.Observe(ctx)
		if err != nil {
			e.t.Errorf("drain: %v", err)
			return
		}
		busy := false
		for _, st := range sts {
			if st.Phase == backend.PhasePending || st.Phase == backend.PhaseRunning {
				busy = true
				e.be.Cancel(ctx, st.Name)
			}
		}
		if !busy {
			return
		}
	}
	e.t.Errorf("drain: attempts still running after 10s")
}

// config is a controller's on the env: the built-in local fleet of 4 H100
// on the env's backend.
func (e *testEnv) config() Config {
	return Config{
		Store: e.st,
		Backends: func(c model.Cluster) (backend.Backend, error) {
			if c.Backend == model.BackendLocal {
				return e.be, nil
			}
			return nil, fmt.Errorf("no %s backend in tests", c.Backend)
		},
		Clock:          clock.Real(),
		RoundInterval:  20 * time.Millisecond,
		ClusterTimeout: 30 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		LocalGPU:       "H100",
		LocalGPUs:      4,
		LeaderID:       "test",
		Registry:       prometheus.NewRegistry(),
	}
}

// submitDirect stores a job of team "default" without the API.
func (e *testEnv) submitDirect(src string) *store.Job {
	e.t.Helper()
	tk, err := spec.ParseTask([]byte(src), "task.yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	w := tk.Workloads[0]
	w.Team = "default"
	j, err := e.st.CreateJob(e.t.Context(), &store.Job{Team: "default", User: "test", Workload: w, Spec: src}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// task is a task file that runs run on one H100.
func task(run string) string {
	return "resources:\n  accelerators: H100:1\nrun: " + run + "\n"
}

// Names of the built-in local fleet.
const (
	LocalCluster = view.LocalCluster
	LocalPool    = view.LocalPool
)
