package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/store"
)

func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	var inDoc, served []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			inDoc = append(inDoc, strings.ToUpper(m)+" "+p)
		}
	}
	served = append(served, "GET /healthz")
	for _, rt := range (&Server{}).apiRoutes() {
		served = append(served, rt.method+" "+rt.path)
	}
	sort.Strings(inDoc)
	sort.Strings(served)
	if diff := cmp.Diff(served, inDoc); diff != "" {
		t.Errorf("routes served vs in openapi.json (-served +documented):\n%s", diff)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task("echo m"))[0].ID
	e.waitState(id, 20*time.Second, store.Succeeded)
	time.Sleep(100 * time.Millisecond) // a round after the end
	code, body := e.do("GET", "/metrics", e.admin, nil)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`gpubroker_queue_depth{state="SUCCEEDED"} 1`,
		`gpubroker_admissions_total 1`,
		`gpubroker_dispatch_latency_seconds_count 1`,
		`gpubroker_gpus_in_use{provider="onprem"} 0`,
		`gpubroker_http_requests_total{code="201"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestReadEndpoints(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// Before any apply: the built-in local fleet.
	if code, _ := e.do("GET", "/v1/fleet", e.admin, nil); code != http.StatusNotFound {
		t.Errorf("fleet before apply: %d", code)
	}
	id := e.submit(e.admin, task("sleep 30"))[0].ID
	e.waitState(id, 20*time.Second, store.Running)
	time.Sleep(100 * time.Millisecond)
	var cl struct{ Clusters []api.Cluster }
	e.mustDo(http.StatusOK, "GET", "/v1/clusters", e.admin, nil, &cl)
	if len(cl.Clusters) != 1 || !cl.Clusters[0].Healthy || cl.Clusters[0].Pools[0].GPUsFree != 3 {
		t.Errorf("clusters %+v", cl.Clusters)
	}
	var teams struct{ Teams []api.Team }
	e.mustDo(http.StatusOK, "GET", "/v1/teams", e.admin, nil, &teams)
	if len(teams.Teams) != 1 || teams.Teams[0].InUse["H100"] != 1 {
		t.Errorf("teams %+v", teams.Teams)
	}
	var plan api.Plan
	e.mustDo(http.StatusOK, "POST", "/v1/plan", e.admin, api.PlanRequest{Spec: "resources:\n  accelerators: H100:4\nrun: x\n"}, &plan)
	if len(plan.Workloads) != 1 || plan.Workloads[0].Feasible != 0 || len(plan.Workloads[0].Candidates) != 1 ||
		plan.Workloads[0].Candidates[0].Rejections[0].Reason != "InsufficientCapacity" {
		t.Errorf("plan %+v", plan)
	}
	var usage struct {
		Rows         []map[string]any
		TotalCostUSD float64 `json:"total_cost_usd"`
	}
	// A running attempt's usage so far is in the view a round publishes;
	// the round that saw the job start may have counted none of it yet,
	// and a busy machine can stretch the rest between rounds.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.mustDo(http.StatusOK, "GET", "/v1/usage?since=1d&by=provider,team", e.admin, nil, &usage)
		if len(usage.Rows) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(usage.Rows) != 1 || usage.Rows[0]["provider"] != "onprem" || usage.Rows[0]["team"] != DefaultTeam || usage.Rows[0]["gpu_hours"].(float64) <= 0 {
		t.Errorf("usage %+v", usage.Rows)
	}
	if code, _ := e.do("GET", "/v1/usage?by=color", e.admin, nil); code != 400 {
		t.Errorf("usage by color: %d", code)
	}
	// An unhealthy cluster: a fleet with a slurm cluster the tests cannot reach.
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: twoNodeFleet + `  - name: hpc
    provider: onprem
    region: local
    backend: slurm
    pools:
      - name: a100
        gpu: A100
        gpus_per_node: 8
        nodes: 2
        price_class: committed
`}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mustDo(http.StatusOK, "GET", "/v1/clusters", e.admin, nil, &cl)
		if len(cl.Clusters) == 2 && !cl.Clusters[1].Healthy || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(cl.Clusters) != 2 || cl.Clusters[0].Name != "lab" || cl.Clusters[1].Healthy || cl.Clusters[1].Why == "" {
		t.Errorf("clusters %+v", cl.Clusters)
	}
	// The running job on the dropped local cluster keeps being observed.
	var j store.Job
	e.mustDo(http.StatusOK, "POST", "/v1/jobs/1/cancel", e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Errorf("cancel on a dropped cluster: %s %q %v", j.State, j.Reason, transitions(e.events(1)))
	}
}

func TestNamesAndSlots(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		id      int64
		attempt int
		ok      bool
	}{
		{"gpub-12-3", 12, 3, true}, {"gpub-1-1", 1, 1, true}, {"gpub-01-1", 0, 0, false},
		{"gpub-1", 0, 0, false}, {"other-1-1", 0, 0, false}, {"gpub-x-1", 0, 0, false},
	} {
		id, a, ok := parseName(c.name)
		if id != c.id || a != c.attempt || ok != c.ok {
			t.Errorf("parseName(%q) = %d %d %v", c.name, id, a, ok)
		}
	}
	used := slotTable{}
	p := engine.PoolRef{Cluster: "c", Pool: "p"}
	first := assignSlots(used, p, []int{0, 1}, 2)
	second := assignSlots(used, p, []int{1}, 1)
	releaseSlots(used, p, first)
	third := assignSlots(used, p, []int{1}, 3)
	want := []backend.Node{{Index: 1, GPUs: []int{0, 1, 3}}}
	if diff := cmp.Diff(want, third); diff != "" {
		t.Errorf("slots after release (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]backend.Node{{Index: 1, GPUs: []int{2}}}, second); diff != "" {
		t.Errorf("second (-want +got):\n%s", diff)
	}
	// The event text the store's backfill reads (sqlstore.TestParseSlots).
	if got, want := formatSlots(first), "gpu slots: 0=0,1 1=0,1"; got != want {
		t.Errorf("formatSlots = %q, want %q", got, want)
	}
}
