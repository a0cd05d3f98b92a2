package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// benchServer is a server on a fresh SQLite file whose reconciler does not
// run (only Handler is served), and its admin token.
func benchServer(b *testing.B, be backend.Backend) (*Server, *sqlite.Store, string) {
	b.Helper()
	dir := b.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := New(Config{
		Store: st,
		Backends: func(c model.Cluster) (backend.Backend, error) {
			if be == nil {
				return nil, fmt.Errorf("no backend")
			}
			return be, nil
		},
		StateDir: filepath.Join(dir, "state"),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	secret, tok := NewToken("bench", RoleMember, "bench")
	tok.Created = time.Now()
	if err := st.CreateToken(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	return srv, st, secret
}

const benchTask = `name: bench
resources:
  accelerators: H100:1
run: |
  echo hello
x-gpubroker:
  priority: 1
`

const sleepTask = `name: bench
resources:
  accelerators: H100:1
run: sleep 600
`

// BenchmarkSubmitHTTP measures submissions per second through the HTTP
// API into SQLite, from many parallel clients over keep-alive connections.
func BenchmarkSubmitHTTP(b *testing.B) {
	srv, st, token := benchServer(b, nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	body, _ := json.Marshal(api.SubmitRequest{Spec: benchTask})
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/jobs", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submissions/s")
	if n, err := st.CountByState(context.Background()); err != nil || n[store.Pending] != b.N {
		b.Errorf("stored %d jobs, submitted %d (%v)", n[store.Pending], b.N, err)
	}
}

// BenchmarkReconcileRound measures one reconcile round with 100,000
// workloads in the store, on the built-in local fleet of 8 GPUs and the
// real local backend: 8 run (sleeping), the rest wait. A round reads the
// fleet and every active job, observes the backend, builds the snapshot,
// schedules the 99,992 pending ones and records why they wait. It runs
// twice: rounds as the server runs them (the jobs written since the last
// round read over the ones read before: none here), and rounds that read
// every active job (the first round, and one every fullReadEvery).
func BenchmarkReconcileRound(b *testing.B) {
	b.Run("changes", func(b *testing.B) { benchReconcileRound(b, false) })
	b.Run("full", func(b *testing.B) { benchReconcileRound(b, true) })
}

func benchReconcileRound(b *testing.B, full bool) {
	const n = 100_000
	be, err := local.New(filepath.Join(b.TempDir(), "local"), local.Options{GPUs: DefaultLocalGPUs, Grace: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	srv, st, _ := benchServer(b, be)
	ctx := context.Background()
	b.Cleanup(func() {
		sts, _ := be.Observe(ctx)
		for _, s := range sts {
			be.Cancel(ctx, s.Name)
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			sts, _ := be.Observe(ctx)
			busy := false
			for _, s := range sts {
				busy = busy || s.Phase == backend.PhaseRunning || s.Phase == backend.PhasePending
			}
			if !busy {
				return
			}
		}
	})
	tk, err := spec.ParseTask([]byte(sleepTask), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// Eight GPUs run something; the rest wait. No GPU is freed during the
	// benchmark, so every round after the first sees the same state.
	at := time.Now()
	for i := range n {
		w := *tk.Workloads[0]
		w.Name = "bench-" + strconv.Itoa(i)
		w.Team = "bench"
		if _, err := st.CreateJob(ctx, &store.Job{Team: "bench", User: "bench", Workload: &w, Spec: sleepTask}, at); err != nil {
			b.Fatal(err)
		}
	}
	if err := srv.reconcile(ctx); err != nil { // admits and dispatches 8
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if full {
			srv.ctl.ReadAll()
		}
		if err := srv.reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/round")
	b.StopTimer()
	waiting := srv.ctl.Waiting()
	if waiting != n-DefaultLocalGPUs {
		b.Errorf("%d jobs wait; want %d", waiting, n-DefaultLocalGPUs)
	}
}

// BenchmarkReconcileRound100k measures one reconcile round with 100,000
// jobs in the store as a broker that has run for a while holds them: most
// ended (succeeded, failed, cancelled), 8 running on the built-in local
// fleet and the real local backend, 1,992 waiting. As on a busy broker,
// every round has something new to read: one job is submitted before each
// (untimed). It runs as BenchmarkReconcileRound does: rounds as the server
// runs them ("changes"), and rounds that read every active job ("full").
func BenchmarkReconcileRound100k(b *testing.B) {
	b.Run("changes", func(b *testing.B) { benchReconcileRound100k(b, false) })
	b.Run("full", func(b *testing.B) { benchReconcileRound100k(b, true) })
}

func benchReconcileRound100k(b *testing.B, full bool) {
	const (
		n      = 100_000
		active = 2_000
	)
	be, err := local.New(filepath.Join(b.TempDir(), "local"), local.Options{GPUs: DefaultLocalGPUs, Grace: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	srv, st, _ := benchServer(b, be)
	ctx := context.Background()
	b.Cleanup(func() {
		sts, _ := be.Observe(ctx)
		for _, s := range sts {
			be.Cancel(ctx, s.Name)
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			sts, _ := be.Observe(ctx)
			busy := false
			for _, s := range sts {
				busy = busy || s.Phase == backend.PhaseRunning || s.Phase == backend.PhasePending
			}
			if !busy {
				return
			}
		}
	})
	tk, err := spec.ParseTask([]byte(sleepTask), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// The first n-active jobs ended long ago, a third each succeeded,
	// failed and cancelled; the last active ones are live. They are
	// created by 8 callers at once (the store commits them in groups).
	at := time.Now().Add(-time.Hour)
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += 8 {
				w := *tk.Workloads[0]
				w.Name = "bench-" + strconv.Itoa(i)
				w.Team = "bench"
				j, err := st.CreateJob(ctx, &store.Job{Team: "bench", User: "bench", Workload: &w, Spec: sleepTask}, at)
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = j.ID
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	slices.Sort(ids)
	ends := []store.State{store.Succeeded, store.Failed, store.Cancelled}
	var moves []store.JobMove
	flush := func() {
		if _, _, err := st.MoveJobs(ctx, moves); err != nil {
			b.Fatal(err)
		}
		moves = moves[:0]
	}
	for i, id := range ids[:n-active] {
		to := ends[i%len(ends)]
		path := []store.State{store.Admitted, store.Dispatched, store.Running, to}
		if to == store.Cancelled {
			path = []store.State{to}
		}
		from := store.Pending
		for _, s := range path {
			m := store.Move{From: from, Attempt: 1, To: s, At: at, Message: "bench"}
			if s == store.Admitted {
				m.Placement = &store.Placement{Cluster: LocalCluster, Pool: LocalPool, Provider: "onprem", Region: "local",
					GPU: DefaultLocalGPU, GPUsPerNode: 1, Nodes: []int{0}, PriceClass: model.Committed}
			}
			moves = append(moves, store.JobMove{ID: id, Move: m})
			from = s
		}
		if len(moves) >= 4000 {
			flush()
		}
	}
	flush()
	if err := srv.reconcile(ctx); err != nil { // admits and dispatches 8
		b.Fatal(err)
	}
	// Rounds until the 8 admitted are recorded running: the steady state.
	for range 3 {
		time.Sleep(50 * time.Millisecond)
		if err := srv.reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var took, cpu time.Duration
	for i := range b.N {
		w := *tk.Workloads[0]
		w.Name, w.Team = "new-"+strconv.Itoa(i), "bench"
		if _, err := st.CreateJob(ctx, &store.Job{Team: "bench", User: "bench", Workload: &w, Spec: sleepTask}, at); err != nil {
			b.Fatal(err)
		}
		if full {
			srv.ctl.ReadAll()
		}
		start, cpu0 := time.Now(), cpuTime()
		if err := srv.reconcile(ctx); err != nil {
			b.Fatal(err)
		}
		took, cpu = took+time.Since(start), cpu+cpuTime()-cpu0
	}
	b.StopTimer()
	b.ReportMetric(took.Seconds()/float64(b.N), "s/round")
	// CPU time, which other tenants of a shared machine do not inflate.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/round")
	waiting := srv.ctl.Waiting()
	if waiting != active-DefaultLocalGPUs+b.N {
		b.Errorf("%d jobs wait; want %d", waiting, active-DefaultLocalGPUs+b.N)
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
