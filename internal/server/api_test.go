package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task("echo m"))[0].ID
	e.waitState(id, 20*time.Second, store.Succeeded)
	want := []string{
		`gpubroker_queue_depth{state="SUCCEEDED"} 1`,
		`gpubroker_admissions_total 1`,
		`gpubroker_dispatch_latency_seconds_count 1`,
		`gpubroker_gpus_in_use{provider="onprem"} 0`,
		`gpubroker_http_requests_total{code="201"} 1`,
	}
	// The gauges are set by the rounds after the end: wait for one (a
	// loaded machine may take seconds).
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := e.do("GET", "/metrics", e.admin, nil)
		if code != http.StatusOK {
			t.Fatalf("metrics: %d", code)
		}
		missing = missing[:0]
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range missing {
		t.Errorf("metrics lack %q", w)
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
