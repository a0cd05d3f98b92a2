package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/sim"
	"gpubroker/internal/spec"
)

// recoveryFleet has two clusters, each a real local backend in its own
// directory: east (us-east-1, committed, so the engine's first choice)
// and west (us-west-2, on demand).
const recoveryFleet = `clusters:
  - name: east
    provider: onprem
    region: us-east-1
    backend: local
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]
  - name: west
    provider: azure
    region: us-west-2
    backend: local
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: ondemand, price_per_gpu_hour: 1}]
`

// recoveryTask always exits with code 3 after a while; the scenarios lose
// its first attempt before that.
const recoveryTask = `name: low
resources:
  accelerators: H100:4
job_recovery:
  strategy: %s
  max_restarts_on_errors: 2
run: sleep 2; exit 3
`

// step is one attempt as the scenario compares it: where it ran, how it
// ended, and the first word of why ("Preempted", "Restarting", "Failed").
type step struct {
	Attempt int
	Cluster string
	Outcome string
	Why     string
}

func why(reason string) string {
	w, _, _ := strings.Cut(reason, ":")
	return w
}

// TestRecoveryReplaysInSimulator runs one recovery story in the server on
// two real local backends and in the simulator, and wants the same
// attempts from both, because both apply internal/lifecycle. Attempt 1 on
// east is lost (it vanishes from the cluster, which stays up). Under
// EAGER_NEXT_REGION attempt 2 must leave us-east-1, runs on west and exits
// 3 (restart 1 of 2); under FAILOVER it goes back to east, the cheaper.
// Attempts 3 and 4 run on east and exit 3; after 2 restarts the job fails.
func TestRecoveryReplaysInSimulator(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		strategy string
		want     []step
	}{
		{"EAGER_NEXT_REGION", []step{
			{1, "east", "RETRIED", "Lost"},
			{2, "west", "RETRIED", "Restarting"},
			{3, "east", "RETRIED", "Restarting"},
			{4, "east", "FAILED", "Failed"},
		}},
		{"FAILOVER", []step{
			{1, "east", "RETRIED", "Lost"},
			{2, "east", "RETRIED", "Restarting"},
			{3, "east", "RETRIED", "Restarting"},
			{4, "east", "FAILED", "Failed"},
		}},
	} {
		task := fmt.Sprintf(recoveryTask, tc.strategy)
		t.Run(tc.strategy+"/simulator", func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, simulateRecovery(t, task)); diff != "" {
				t.Errorf("simulated attempts (-want +got):\n%s", diff)
			}
		})
		t.Run(tc.strategy+"/server", func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, serveRecovery(t, task)); diff != "" {
				t.Errorf("server attempts (-want +got):\n%s", diff)
			}
		})
	}
}

func simulateRecovery(t *testing.T, task string) []step {
	t.Helper()
	fl, _, err := spec.ParseFleet([]byte(recoveryFleet), "fleet.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	workload := func(src string, at time.Time, d time.Duration) *model.Workload {
		tk, err := spec.ParseTask([]byte(src), "task.yaml")
		if err != nil {
			t.Fatal(err)
		}
		w := tk.Workloads[0]
		w.ID, w.Submitted, w.Duration = w.Name, at, d
		return w
	}
	ws := []*model.Workload{workload(task, start, 10*time.Hour)}
	res, err := sim.Run(sim.Config{Seed: 1, Fleet: fl, RecordAttempts: true,
		Failures: []sim.Failure{
			{Job: "low", Attempts: []int{1}, After: 30 * time.Minute, Lost: true},
			{Job: "low", After: 2 * time.Hour, ExitCode: 3},
		}}, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 {
		t.Errorf("simulation: %d jobs failed, want 1 (low)", res.Failed)
	}
	var out []step
	for _, a := range res.AttemptLogs[0] {
		out = append(out, step{a.Attempt, a.Cluster, a.Outcome, why(a.Reason)})
	}
	return out
}

func serveRecovery(t *testing.T, task string) []step {
	t.Helper()
	dir := t.TempDir()
	bes := map[string]*local.Backend{}
	for _, name := range []string{"east", "west"} {
		be, err := local.New(filepath.Join(dir, name), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		bes[name] = be
	}
	d := startLocalBroker(t, dir, 50*time.Millisecond, func(c model.Cluster) *local.Backend { return bes[c.Name] })
	d.api(t, "PUT", "/v1/fleet", d.admin, map[string]string{"fleet": recoveryFleet}, nil)

	submit := func(src string) int64 {
		var out struct {
			Jobs []struct {
				ID int64 `json:"id"`
			} `json:"jobs"`
		}
		d.api(t, "POST", "/v1/jobs", d.admin, map[string]string{"spec": src}, &out)
		return out.Jobs[0].ID
	}
	type attempt struct {
		Attempt int    `json:"attempt"`
		Cluster string `json:"cluster"`
		State   string `json:"state"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	}
	attempts := func(id int64) []attempt {
		var out struct {
			Attempts []attempt `json:"attempts"`
		}
		d.api(t, "GET", fmt.Sprintf("/v1/jobs/%d/attempts", id), d.admin, nil, &out)
		return out.Attempts
	}
	low := submit(task)
	deadline := time.Now().Add(30 * time.Second)
	for {
		as := attempts(low)
		if n := len(as); n == 1 && as[0].State == "RUNNING" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d never ran its first attempt: %+v", low, as)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Lose attempt 1: its directory goes, so east's backend no longer
	// reports it (the processes, orphaned, end by themselves).
	if err := os.RemoveAll(filepath.Join(dir, "east", backend.Name(low, 1))); err != nil {
		t.Fatal(err)
	}
	var as []attempt
	for deadline = time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		as = attempts(low)
		if n := len(as); n > 0 && as[n-1].Outcome != "" && as[n-1].Outcome != "RETRIED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d did not end: %+v", low, as)
		}
	}
	var out []step
	for _, a := range as {
		out = append(out, step{a.Attempt, a.Cluster, a.Outcome, why(a.Reason)})
	}
	return out
}
