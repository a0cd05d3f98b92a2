package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
)

// scenario is a small mixed fleet and trace with every kind of event:
// spot preemptions, an outage, elastic pools, committed pools, a share cap,
// jobs too large or of a model no pool has.
func scenario() (*model.Fleet, []*model.Workload, []Outage) {
	rng := rand.New(rand.NewPCG(7, 7))
	f := randomFleet(24, rng)
	f.Policy.MaxProviderShare = 0.4
	f.Policy.CapFallback = true
	f.Policy.ShareFloorGPUHours = 50 // small, so the cap binds
	ws := randomJobs(1500, rng, "H100", "A100", "V100")
	for i := 0; i < len(ws); i += 10 {
		ws[i].Priority = 1
	}
	ws = append(ws, wl("zz-gpu", time.Hour, 8, time.Hour), wl("zz-huge", 2*time.Hour, 8*400, time.Hour))
	ws[len(ws)-2].Options[0].GPU = "TPUv9"
	slices.SortStableFunc(ws, func(a, b *model.Workload) int { return a.Submitted.Compare(b.Submitted) })
	out := []Outage{
		{Provider: "gcp", From: t0.Add(24 * time.Hour), To: t0.Add(30 * time.Hour)},
		{Cluster: "c0003", From: t0.Add(50 * time.Hour), To: t0.Add(52 * time.Hour)},
	}
	return f, ws, out
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	f, ws, out := scenario()
	var prev []byte
	for i := 0; i < 2; i++ {
		var runs []*Result
		for _, pol := range []string{"gpubroker", "cheapest", "fifo", "single:aws"} {
			runs = append(runs, mustRun(t, Config{Seed: 42, Fleet: f, Policy: pol, Outages: out, AllowSpot: true}, ws))
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		if err := enc.Encode(runs); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(NewReport("test", "fleet", 42, 1, runs)); err != nil {
			t.Fatal(err)
		}
		if i > 0 && !bytes.Equal(prev, buf.Bytes()) {
			t.Fatal("two runs with the same inputs and seed differ")
		}
		prev = buf.Bytes()
	}
	other := mustRun(t, Config{Seed: 43, Fleet: f, Outages: out, AllowSpot: true}, ws)
	again := mustRun(t, Config{Seed: 42, Fleet: f, Outages: out, AllowSpot: true}, ws)
	if other.SpotPreemptions == again.SpotPreemptions && other.Summary.GPUHoursLost == again.Summary.GPUHoursLost {
		t.Error("a different seed changed nothing; is the RNG used?")
	}
}

func TestConservation(t *testing.T) {
	t.Parallel()
	f, ws, out := scenario()
	for _, pol := range []string{"gpubroker", "cheapest", "fifo", "single:gcp"} {
		t.Run(pol, func(t *testing.T) {
			t.Parallel()
			r := mustRun(t, Config{Seed: 3, Fleet: f, Policy: pol, Outages: out, AllowSpot: true, CheckInvariants: true}, ws)
			checkConservation(t, r, f, ws)
			if pol != "single:gcp" && r.SpotPreemptions == 0 {
				t.Error("no spot preemption in a fleet with spot pools")
			}
			if pol == "gpubroker" && (r.OutageKills == 0 || r.OverCapAdmissions == 0) {
				t.Errorf("outage kills %d, over-cap admissions %d: want some of each", r.OutageKills, r.OverCapAdmissions)
			}
		})
	}
}

func checkConservation(t *testing.T, r *Result, f *model.Fleet, ws []*model.Workload) {
	t.Helper()
	// Every job ends exactly once.
	never := map[string]string{}
	for _, n := range r.NeverRunnable {
		if _, dup := never[n.Workload]; dup {
			t.Errorf("%s listed twice as never runnable", n.Workload)
		}
		never[n.Workload] = n.Reason
	}
	if r.Completed+len(r.NeverRunnable) != len(ws) || len(r.Outcomes) != len(ws) {
		t.Errorf("completed %d + never runnable %d != %d jobs", r.Completed, len(r.NeverRunnable), len(ws))
	}
	dur := map[string]*model.Workload{}
	for _, w := range ws {
		dur[w.ID] = w
	}
	wantRun := 0.0
	for _, o := range r.Outcomes {
		_, nv := never[o.Workload]
		if o.Completed == nv {
			t.Errorf("%s: completed=%v, never runnable=%v", o.Workload, o.Completed, nv)
		}
		if o.Completed {
			wantRun += float64(o.GPUs) * dur[o.Workload].Duration.Hours()
		}
	}
	if never["zz-gpu"] != "GPUModelMismatch" || never["zz-huge"] != "GangTooLarge" {
		t.Errorf("never runnable reasons: zz-gpu %q, zz-huge %q", never["zz-gpu"], never["zz-huge"])
	}
	// GPU-hours: billed = run + lost, and the work kept is exactly the
	// completed jobs' work.
	s := r.Summary
	if !near(s.GPUHoursBilled, s.GPUHoursRun+s.GPUHoursLost) {
		t.Errorf("billed %v != run %v + lost %v", s.GPUHoursBilled, s.GPUHoursRun, s.GPUHoursLost)
	}
	if !near(s.GPUHoursRun, wantRun) {
		t.Errorf("GPU-hours run %v, completed jobs' work %v", s.GPUHoursRun, wantRun)
	}
	sum := 0.0
	for _, iv := range r.Ledger.Intervals() {
		sum += iv.GPUHours()
	}
	if !near(sum, s.GPUHoursBilled) {
		t.Errorf("intervals hold %v GPU-hours, summary bills %v", sum, s.GPUHoursBilled)
	}
	// Money adds up the same by every key.
	for name, as := range map[string][]ledger.Amount{"price class": s.ByPriceClass, "provider": s.ByProvider} {
		tot := 0.0
		for _, a := range as {
			tot += a.USD
		}
		if !near(tot, s.TotalUSD) {
			t.Errorf("by %s adds to %v, total %v", name, tot, s.TotalUSD)
		}
	}
	// Placements never exceed capacity: sweep each pool's intervals.
	checkCapacity(t, r, f)
}

func checkCapacity(t *testing.T, r *Result, f *model.Fleet) {
	t.Helper()
	capa := map[[2]string]int{}
	for _, c := range f.Clusters {
		for _, p := range c.Pools {
			capa[[2]string{c.Name, p.Name}] = p.GPUsPerNode * max(p.Nodes, p.MaxNodes)
		}
	}
	type edge struct {
		at   time.Time
		gpus int
	}
	byPool := map[[2]string][]edge{}
	for _, iv := range r.Ledger.Intervals() {
		k := [2]string{iv.Cluster, iv.Pool}
		byPool[k] = append(byPool[k], edge{iv.Start, iv.GPUs}, edge{iv.End, -iv.GPUs})
	}
	for k, es := range byPool {
		slices.SortFunc(es, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return a.gpus - b.gpus // ends before starts at the same instant
		})
		busy := 0
		for _, e := range es {
			busy += e.gpus
			if busy > capa[k] {
				t.Fatalf("pool %v holds %d GPUs at %s, capacity %d", k, busy, e.at, capa[k])
			}
		}
	}
}

// TestReferenceAgrees runs the scenario through the long-lived
// engine.Scheduler and through a fresh engine.Schedule every round: the
// results must be the same.
func TestReferenceAgrees(t *testing.T) {
	t.Parallel()
	f, ws, out := scenario()
	a := mustRun(t, Config{Seed: 5, Fleet: f, Outages: out, AllowSpot: true}, ws)
	b := mustRun(t, Config{Seed: 5, Fleet: f, Outages: out, AllowSpot: true, reference: true}, ws)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		for i := range a.Outcomes {
			if a.Outcomes[i] != b.Outcomes[i] {
				t.Fatalf("first difference: live %+v, reference %+v", a.Outcomes[i], b.Outcomes[i])
			}
		}
		t.Fatal("live and reference runs differ")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	f, ws, _ := scenario()
	cases := map[string]struct {
		cfg  Config
		want error
	}{
		"no seed":        {Config{Fleet: f}, ErrConfig},
		"no fleet":       {Config{Seed: 1}, ErrConfig},
		"bad policy":     {Config{Seed: 1, Fleet: f, Policy: "greedy"}, ErrUnknownPolicy},
		"no provider":    {Config{Seed: 1, Fleet: f, Policy: "single:ibm"}, ErrUnknownPolicy},
		"outage both":    {Config{Seed: 1, Fleet: f, Outages: []Outage{{Provider: "aws", Cluster: "c0001", From: t0, To: t0.Add(time.Hour)}}}, ErrConfig},
		"outage reverse": {Config{Seed: 1, Fleet: f, Outages: []Outage{{Provider: "aws", From: t0.Add(time.Hour), To: t0}}}, ErrConfig},
		"outage unknown": {Config{Seed: 1, Fleet: f, Outages: []Outage{{Cluster: "nope", From: t0, To: t0.Add(time.Hour)}}}, ErrConfig},
	}
	for name, c := range cases {
		if _, err := Run(c.cfg, ws[:10]); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestApplyPolicy(t *testing.T) {
	t.Parallel()
	f := &model.Fleet{
		Clusters: []model.Cluster{
			cluster("a", "aws", pool("c", "H100", 1, model.Committed, 2)),
			cluster("g", "gcp", pool("p", "H100", 2, model.OnDemand, 3)),
		},
		Contracts: []model.Contract{{Name: "k", Provider: "aws", Kind: model.SpendCommitment, SpendUSD: 1e6, Start: t0, End: t0.AddDate(1, 0, 0)}},
		Policy:    model.Policy{MaxProviderShare: 0.6, ShareWindow: 24 * time.Hour, FairShare: true},
	}
	f.Clusters[0].Pools[0].Contract = "k"
	v, err := ApplyPolicy(f, "single:AWS")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Fleet.Clusters) != 1 || v.Fleet.Clusters[0].Pools[0].PriceClass != model.OnDemand || v.Fleet.Clusters[0].Pools[0].Contract != "" || len(v.Fleet.Contracts) != 0 || v.Policy.MaxProviderShare != 0 {
		t.Errorf("single:aws = %+v", v.Fleet)
	}
	if f.Clusters[0].Pools[0].PriceClass != model.Committed {
		t.Error("ApplyPolicy modified its input")
	}
	v, _ = ApplyPolicy(f, "cheapest")
	if v.Billing != f || len(v.Fleet.Contracts) != 0 || v.Policy.MaxProviderShare != 0 || len(v.Fleet.Clusters) != 2 {
		t.Errorf("cheapest = %+v", v)
	}
	v, _ = ApplyPolicy(f, "fifo")
	if v.Policy.FairShare || v.Policy.MaxProviderShare != 0.6 {
		t.Errorf("fifo policy = %+v", v.Policy)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	f, ws, _ := scenario()
	last, calls := 0, 0
	r := mustRun(t, Config{Seed: 1, Fleet: f, Progress: func(done, total int) {
		calls++
		if done < last || total != len(ws) {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}}, ws)
	if calls == 0 || last != len(ws) {
		t.Errorf("progress calls %d, last %d, completed %d", calls, last, r.Completed)
	}
}

func TestRunPolicies(t *testing.T) {
	t.Parallel()
	f, ws, out := scenario()
	names := []string{"gpubroker", "cheapest"}
	last := 0
	rs, err := RunPolicies(Config{Seed: 9, Fleet: f, Outages: out, Progress: func(d, total int) {
		if total != 2*len(ws) {
			t.Errorf("total %d", total)
		}
		last = max(last, d)
	}}, ws, names)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		one := mustRun(t, Config{Seed: 9, Fleet: f, Outages: out, Policy: n}, ws)
		a, _ := json.Marshal(one)
		b, _ := json.Marshal(rs[i])
		if !bytes.Equal(a, b) {
			t.Errorf("%s: concurrent run differs from a lone one", n)
		}
	}
	if last != 2*len(ws) {
		t.Errorf("progress reached %d of %d", last, 2*len(ws))
	}
	if _, err := RunPolicies(Config{Seed: 9, Fleet: f}, ws, []string{"gpubroker", "nope"}); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("err = %v", err)
	}
}
