package sim

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gpubroker/internal/model"
	"gpubroker/internal/trace"
)

const traceDir = "../../../shared/data/traces"

// loadTrace reads a shared trace, or skips when it is absent.
func loadTrace(tb testing.TB, kind, dir string) []*model.Workload {
	tb.Helper()
	path := filepath.Join(traceDir, dir)
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("trace %s not present: %v", path, err)
	}
	res, err := trace.Open(kind+":"+path, trace.Options{Start: t0})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Workloads
}

// bigFleet is n clusters over six providers. Every cluster has an
// on-demand pool of the trace's GPU model (4-35 nodes of 8, so the largest
// gangs fit), a spot pool of it and a pool of a newer model the trace
// never asks for; every 5th cluster an elastic pool, every 100th a committed
// one.
func bigFleet(n int, gpu model.GPUModel) *model.Fleet {
	rng := rand.New(rand.NewPCG(11, 11))
	provs := []model.Provider{"aws", "azure", "coreweave", "gcp", "lambda", "oci"}
	f := &model.Fleet{Policy: model.DefaultPolicy()}
	f.Policy.MaxProviderShare = 0.3
	f.Policy.CapFallback = true
	for _, p := range provs {
		f.Providers = append(f.Providers, model.ProviderInfo{Name: p, SpotPreemptionPerHour: 0.02})
	}
	others := []model.GPUModel{"H100", "A100", "H200", "L40S"}
	for i := 0; i < n; i++ {
		p := provs[i%len(provs)]
		price := 1.0 + rng.Float64()
		cl := cluster(fmt.Sprintf("c%04d", i), p,
			pool("main", gpu, 4+rng.IntN(32), model.OnDemand, price),
			pool("spot", gpu, 2+rng.IntN(6), model.Spot, price*0.4),
			pool("new", others[rng.IntN(len(others))], 2+rng.IntN(8), model.OnDemand, 3+rng.Float64()))
		if i%5 == 0 {
			el := pool("elastic", gpu, 0, model.OnDemand, price*1.2)
			el.MaxNodes = 20
			cl.Pools = append(cl.Pools, el)
		}
		if i%100 == 0 {
			cl.Pools = append(cl.Pools, pool("committed", gpu, 4+rng.IntN(8), model.Committed, price*0.6))
		}
		f.Clusters = append(f.Clusters, cl)
	}
	return f
}

func TestRealTraces(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("real traces: skipped under -short and -race (run go test without them, or the benchmarks)")
	}
	for _, c := range []struct{ kind, dir string }{{"philly", "philly"}, {"itp", "microsoft-itp"}} {
		t.Run(c.kind, func(t *testing.T) {
			ws := loadTrace(t, c.kind, c.dir)
			f := bigFleet(1000, ws[0].Options[0].GPU)
			r := mustRun(t, Config{Seed: 1, Fleet: f, AllowSpot: true, CheckpointInterval: 30 * time.Minute}, ws)
			checkConservation2(t, r, f, ws)
			t.Logf("%s: %d jobs, %d completed, %d never runnable, %d events, %d rounds in %s (%.0f events/s); cost $%.0f, lost %.0f GPU-h, max share %.3f",
				c.kind, len(ws), r.Completed, len(r.NeverRunnable), r.Events, r.Rounds, r.Wall, float64(r.Events)/r.Wall.Seconds(), r.Summary.TotalUSD, r.Summary.GPUHoursLost, r.MaxShare)
		})
	}
}

// checkConservation2 is checkConservation without the scenario's planted
// never-runnable jobs.
func checkConservation2(t *testing.T, r *Result, f *model.Fleet, ws []*model.Workload) {
	t.Helper()
	if r.Completed+len(r.NeverRunnable) != len(ws) {
		t.Errorf("completed %d + never runnable %d != %d jobs", r.Completed, len(r.NeverRunnable), len(ws))
	}
	s := r.Summary
	if !near(s.GPUHoursBilled, s.GPUHoursRun+s.GPUHoursLost) {
		t.Errorf("billed %v != run %v + lost %v", s.GPUHoursBilled, s.GPUHoursRun, s.GPUHoursLost)
	}
	checkCapacity(t, r, f)
}

func benchTrace(b *testing.B, kind, dir string) {
	ws := loadTrace(b, kind, dir)
	f := bigFleet(1000, ws[0].Options[0].GPU)
	b.ResetTimer()
	var events int64
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		r, err := Run(Config{Seed: 1, Fleet: f, AllowSpot: true, CheckpointInterval: 30 * time.Minute}, ws)
		if err != nil {
			b.Fatal(err)
		}
		events += r.Events
		wall += r.Wall
	}
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s")
}

func BenchmarkSimulatePhilly(b *testing.B) { benchTrace(b, "philly", "philly") }
func BenchmarkSimulateITP(b *testing.B)    { benchTrace(b, "itp", "microsoft-itp") }
