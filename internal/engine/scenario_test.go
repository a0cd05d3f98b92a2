package engine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"gpubroker/internal/model"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of scenario tests")

// A scenario is one scheduling round written as YAML: a compact fleet, the
// observed state, the pending queue. Its expected decisions live beside it
// in NAME.golden, one line each; -rewrite regenerates them.
type scenario struct {
	Now       time.Time            `yaml:"now"`
	Policy    scPolicy             `yaml:"policy"`
	Providers []scProvider         `yaml:"providers"`
	Contracts []scContract         `yaml:"contracts"`
	Clusters  []scCluster          `yaml:"clusters"`
	Teams     []scTeam             `yaml:"teams"`
	State     []scPoolState        `yaml:"state"`
	Running   []scRunning          `yaml:"running"`
	Usage     map[string]float64   `yaml:"usage"`
	Spent     map[string]float64   `yaml:"spent"`
	TeamSpend map[string]float64   `yaml:"team_spend"`
	Pending   []scWorkload         `yaml:"pending"`
	Plan      string               `yaml:"plan"` // also print Plan for this workload id
	Extra     map[string]yaml.Node `yaml:",inline"`
}

type scPolicy struct {
	Cap         float64            `yaml:"cap"`
	Window      time.Duration      `yaml:"window"`
	Floor       float64            `yaml:"floor"`
	CapFallback bool               `yaml:"cap_fallback"`
	NoSpot      bool               `yaml:"no_spot"`
	Regions     []string           `yaml:"regions"`
	Ceiling     map[string]float64 `yaml:"ceiling"`
	NoPreempt   bool               `yaml:"no_preemption"`
	FIFO        bool               `yaml:"fifo"`
}

type scProvider struct {
	Name   string  `yaml:"name"`
	Egress float64 `yaml:"egress"`
	Spot   float64 `yaml:"spot_rate"`
}

type scContract struct {
	Name      string    `yaml:"name"`
	Provider  string    `yaml:"provider"`
	Kind      string    `yaml:"kind"`
	Start     time.Time `yaml:"start"`
	End       time.Time `yaml:"end"`
	Spend     float64   `yaml:"spend"`
	Minimums  []float64 `yaml:"minimums"`
	Discount  float64   `yaml:"discount"`
	TakeOrPay bool      `yaml:"take_or_pay"`
	GPU       string    `yaml:"gpu"`
	GPUs      int       `yaml:"gpus"`
}

type scCluster struct {
	Name     string   `yaml:"name"`
	Provider string   `yaml:"provider"`
	Region   string   `yaml:"region"`
	Pools    []scPool `yaml:"pools"`
}

type scPool struct {
	Name     string  `yaml:"name"`
	GPU      string  `yaml:"gpu"`
	GPN      int     `yaml:"gpn"`
	Nodes    int     `yaml:"nodes"`
	Max      int     `yaml:"max"`
	Class    string  `yaml:"class"`
	Price    float64 `yaml:"price"`
	Contract string  `yaml:"contract"`
	Instance string  `yaml:"instance"`
}

type scTeam struct {
	Name    string         `yaml:"name"`
	Quota   map[string]int `yaml:"quota"`
	Weight  float64        `yaml:"weight"`
	Cohort  string         `yaml:"cohort"`
	Budget  float64        `yaml:"budget"`
	Regions []string       `yaml:"regions"`
}

type scPoolState struct {
	Pool string `yaml:"pool"` // cluster/pool
	Free []int  `yaml:"free"`
	Down bool   `yaml:"down"`
}

type scRunning struct {
	ID         string    `yaml:"id"`
	Team       string    `yaml:"team"`
	Priority   int       `yaml:"priority"`
	Pool       string    `yaml:"pool"`
	Nodes      []int     `yaml:"nodes"`
	GPN        int       `yaml:"gpn"`
	GPU        string    `yaml:"gpu"`
	Borrowed   bool      `yaml:"borrowed"`
	Started    time.Time `yaml:"started"`
	Checkpoint time.Time `yaml:"checkpoint"`
	Ends       time.Time `yaml:"ends"`
}

type scWorkload struct {
	ID         string        `yaml:"id"`
	Team       string        `yaml:"team"`
	Priority   int           `yaml:"priority"`
	Nodes      int           `yaml:"nodes"`
	Options    []scOption    `yaml:"options"`
	Ordered    bool          `yaml:"ordered"`
	Duration   time.Duration `yaml:"duration"`
	Checkpoint time.Duration `yaml:"checkpoint"`
	DataRegion string        `yaml:"data_region"`
	DataGB     float64       `yaml:"data_gb"`
	Submitted  time.Time     `yaml:"submitted"`
}

type scOption struct {
	GPU       string  `yaml:"gpu"`
	GPN       int     `yaml:"gpn"`
	Provider  string  `yaml:"provider"`
	Region    string  `yaml:"region"`
	Spot      bool    `yaml:"spot"`
	AllowSpot bool    `yaml:"allow_spot"`
	MaxHourly float64 `yaml:"max_hourly"`
	Instance  string  `yaml:"instance"`
}

func splitRef(s string) PoolRef {
	c, p, _ := strings.Cut(s, "/")
	return PoolRef{Cluster: c, Pool: p}
}

func (sc *scenario) build(t *testing.T) (*Snapshot, []*model.Workload, model.Policy) {
	t.Helper()
	f := &model.Fleet{}
	for _, p := range sc.Providers {
		f.Providers = append(f.Providers, model.ProviderInfo{Name: model.Provider(p.Name), EgressPerGB: p.Egress, SpotPreemptionPerHour: p.Spot})
	}
	for _, c := range sc.Contracts {
		f.Contracts = append(f.Contracts, model.Contract{
			Name: c.Name, Provider: model.Provider(c.Provider), Kind: model.ContractKind(c.Kind),
			Start: c.Start, End: c.End, SpendUSD: c.Spend, YearlyMinimumsUSD: c.Minimums,
			Discount: c.Discount, TakeOrPay: c.TakeOrPay, GPU: model.GPUModel(c.GPU), GPUs: c.GPUs,
		})
	}
	for _, c := range sc.Clusters {
		cl := model.Cluster{Name: c.Name, Provider: model.Provider(c.Provider), Region: c.Region, Backend: model.BackendKubernetes}
		for _, p := range c.Pools {
			class := model.PriceClass(p.Class)
			if class == "" {
				class = model.OnDemand
			}
			cl.Pools = append(cl.Pools, model.Pool{
				Name: p.Name, GPU: model.GPUModel(p.GPU), GPUsPerNode: p.GPN, Nodes: p.Nodes, MaxNodes: p.Max,
				PriceClass: class, PricePerGPUHour: p.Price, Contract: p.Contract, InstanceType: p.Instance,
			})
		}
		f.Clusters = append(f.Clusters, cl)
	}
	for _, tm := range sc.Teams {
		q := map[model.GPUModel]int{}
		for g, n := range tm.Quota {
			q[model.GPUModel(g)] = n
		}
		f.Teams = append(f.Teams, model.Team{Name: tm.Name, Quota: q, Weight: tm.Weight, Cohort: tm.Cohort, MonthlyBudgetUSD: tm.Budget, Regions: tm.Regions})
	}
	pol := model.Policy{
		MaxProviderShare: sc.Policy.Cap, ShareWindow: sc.Policy.Window, ShareFloorGPUHours: sc.Policy.Floor,
		CapFallback: sc.Policy.CapFallback, SpotAllowed: !sc.Policy.NoSpot, Regions: sc.Policy.Regions,
		Preemption: !sc.Policy.NoPreempt, FairShare: !sc.Policy.FIFO,
	}
	if pol.ShareWindow == 0 {
		pol.ShareWindow = 720 * time.Hour
	}
	if len(sc.Policy.Ceiling) > 0 {
		pol.MaxPricePerGPUHour = map[model.GPUModel]float64{}
		for g, v := range sc.Policy.Ceiling {
			pol.MaxPricePerGPUHour[model.GPUModel(g)] = v
		}
	}
	f.Policy = pol
	if err := f.Validate(); err != nil {
		t.Fatalf("scenario fleet is invalid: %v", err)
	}
	snap := &Snapshot{Fleet: f, ContractSpentUSD: sc.Spent, TeamSpendUSD: sc.TeamSpend, ProviderGPUHours: map[model.Provider]float64{}}
	for p, u := range sc.Usage {
		snap.ProviderGPUHours[model.Provider(p)] = u
	}
	for _, s := range sc.State {
		snap.Pools = append(snap.Pools, PoolState{Ref: splitRef(s.Pool), NodeFree: s.Free, Down: s.Down})
	}
	for _, r := range sc.Running {
		snap.Running = append(snap.Running, Allocation{
			Workload: r.ID, Team: r.Team, Priority: r.Priority, Pool: splitRef(r.Pool), Nodes: r.Nodes,
			GPUsPerNode: r.GPN, GPU: model.GPUModel(r.GPU), Borrowed: r.Borrowed, Started: r.Started, LastCheckpoint: r.Checkpoint, ExpectedEnd: r.Ends,
		})
	}
	var pending []*model.Workload
	for _, w := range sc.Pending {
		wl := &model.Workload{
			ID: w.ID, Name: w.ID, Kind: model.Job, Team: w.Team, Priority: w.Priority, NumNodes: w.Nodes,
			Order: model.AnyOf, Duration: w.Duration, CheckpointInterval: w.Checkpoint,
			DataRegion: w.DataRegion, DataGB: w.DataGB, Submitted: w.Submitted,
		}
		if wl.NumNodes == 0 {
			wl.NumNodes = 1
		}
		if w.Ordered {
			wl.Order = model.Ordered
		}
		for _, o := range w.Options {
			wl.Options = append(wl.Options, model.Resources{
				GPU: model.GPUModel(o.GPU), GPUsPerNode: o.GPN, Provider: model.Provider(o.Provider), Region: o.Region,
				UseSpot: o.Spot, AllowSpot: o.AllowSpot, MaxHourlyCost: o.MaxHourly, InstanceType: o.Instance,
			})
		}
		pending = append(pending, wl)
	}
	return snap, pending, pol
}

// render prints decisions one per line, in decision order.
func render(d Decisions) string {
	var b strings.Builder
	for _, p := range d.Preempt {
		fmt.Fprintf(&b, "preempt %s in %s for %s: %s (lost %.2f GPU-h)\n", p.Workload, p.Pool, p.For, p.Reason, p.LostGPUHours)
	}
	for _, s := range d.Scale {
		fmt.Fprintf(&b, "scale %s +%d\n", s.Pool, s.Nodes)
	}
	for _, a := range d.Admit {
		flags := ""
		if a.Borrowed {
			flags += " borrowed"
		}
		if a.OverCap {
			flags += " over-cap"
		}
		if a.Contract != "" {
			flags += " contract=" + a.Contract
		}
		fmt.Fprintf(&b, "admit %s -> %s nodes=%v %s:%d %s list=%.3f billed=%.3f eff=%.3f%s\n",
			a.Workload, a.Pool, a.Nodes, a.GPU, a.GPUsPerNode, a.PriceClass,
			a.Cost.ListPerGPUHour, a.Cost.BilledPerGPUHour, a.Cost.EffectivePerGPUHour, flags)
	}
	for _, w := range d.Wait {
		fmt.Fprintf(&b, "wait %s %s: %s\n", w.Workload, w.Reason, w.Detail)
	}
	return b.String()
}

func renderPlan(cands []Candidate) string {
	var b strings.Builder
	for _, c := range cands {
		var why []string
		for _, r := range c.Rejections {
			why = append(why, string(r.Reason))
		}
		over := ""
		if c.OverCap {
			over = " over-cap"
		}
		fmt.Fprintf(&b, "plan #%d %s opt=%d %s list/h=%.2f eff/h=%.2f feasible=%v%s %s\n",
			c.Rank, c.Pool, c.Option, c.PriceClass, c.ListPerHour, c.EffectivePerHour, c.Feasible, over, strings.Join(why, ","))
	}
	return b.String()
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	sort.Strings(files)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var sc scenario
			if err := yaml.Unmarshal(data, &sc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(sc.Extra) > 0 {
				t.Fatalf("%s: unknown keys %v", file, sortedKeys(sc.Extra))
			}
			snap, pending, pol := sc.build(t)
			got := render(Schedule(snap, pending, pol, sc.Now))
			if again := render(Schedule(snap, pending, pol, sc.Now)); again != got {
				t.Fatalf("Schedule is not deterministic:\n%s", cmp.Diff(got, again))
			}
			if sc.Plan != "" {
				for _, w := range pending {
					if w.ID == sc.Plan {
						got += renderPlan(Plan(snap, pol, w, sc.Now))
					}
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *rewrite {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/engine -run TestScenarios -rewrite to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("decisions differ from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestInvalidPoolIgnored: a fleet that skipped validation (a pool with 64
// GPUs per node, free counts out of range) must not panic the engine.
func TestInvalidPoolIgnored(t *testing.T) {
	f := &model.Fleet{Clusters: []model.Cluster{{Name: "c", Provider: "x", Region: "r", Backend: model.BackendLocal, Pools: []model.Pool{
		{Name: "huge", GPU: "H100", GPUsPerNode: 64, Nodes: 1, PriceClass: model.Committed},
		{Name: "ok", GPU: "H100", GPUsPerNode: 8, Nodes: 2, PriceClass: model.Committed},
	}}}}
	snap := &Snapshot{Fleet: f, Pools: []PoolState{{Ref: PoolRef{"c", "ok"}, NodeFree: []int{99, -3}}}}
	w := &model.Workload{ID: "w", Kind: model.Job, NumNodes: 1, Order: model.AnyOf, Options: []model.Resources{{GPU: "H100", GPUsPerNode: 8}}}
	d := Schedule(snap, []*model.Workload{w}, model.DefaultPolicy(), time.Unix(0, 0))
	if len(d.Admit) != 1 || d.Admit[0].Pool.Pool != "ok" || d.Admit[0].Nodes[0] != 0 {
		t.Fatalf("want w admitted on c/ok node 0, got %+v", d)
	}
	if c := Plan(snap, model.DefaultPolicy(), w, time.Unix(0, 0)); len(c) != 1 {
		t.Fatalf("Plan lists %d candidates, want only the valid pool", len(c))
	}
}
