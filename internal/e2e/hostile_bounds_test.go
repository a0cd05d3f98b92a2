package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// Issue 21's unbounded inputs and jobs that can never start, against a
// real server on SQLite and the real local backend.

// preStore writes into the store at dir/broker.db what an older version
// accepted before the bounds: a fleet doc (when not empty) and jobs with
// the given environments. It returns the jobs' IDs.
func preStore(t *testing.T, dir, fleet string, envs ...map[string]string) []int64 {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	if fleet != "" {
		if _, err := st.PutFleet(ctx, fleet, "an older version", now); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	for _, env := range envs {
		task, err := spec.ParseTask([]byte("resources:\n  accelerators: H100:1\nrun: echo started\n"), "old.yaml")
		if err != nil {
			t.Fatal(err)
		}
		w := task.Workloads[0]
		w.Team, w.Envs = "default", env
		j, err := st.CreateJob(ctx, &store.Job{Team: "default", User: "old", Workload: w, Spec: "(stored by an older version)"}, now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

func startBoundsBroker(t *testing.T, dir string) *dashServer {
	t.Helper()
	be, err := local.New(filepath.Join(dir, "local"), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return startLocalBroker(t, dir, 50*time.Millisecond, func(model.Cluster) *local.Backend { return be })
}

// job reads job id as the admin sees it.
func (d *dashServer) job(t *testing.T, id int64) store.Job {
	t.Helper()
	var j store.Job
	d.api(t, "GET", fmt.Sprintf("/v1/jobs/%d", id), d.admin, nil, &j)
	return j
}

// waitEnded waits (20 s at most) for job id to end and returns it.
func (d *dashServer) waitEnded(t *testing.T, id int64) store.Job {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		j := d.job(t, id)
		if j.State.Terminal() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s at attempt %d after 20 s: %s", id, j.State, j.Attempt, j.Reason)
		}
	}
}

// A job whose environment the kernel refuses (a NUL byte, a 900 KB
// value: E2BIG) is refused at submit, naming the field. One stored
// before that check (by an older version) cannot start: it ends FAILED
// at its first attempt with the reason, instead of being retried as lost
// three times a second without end (issue 21 saw attempt 193).
func TestHostileEnvThatCannotStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := preStore(t, dir, "", map[string]string{"A": "a\x00b"}, map[string]string{"BIG": strings.Repeat("x", 900<<10)})
	d := startBoundsBroker(t, dir)
	for i, want := range []string{`holds a NUL byte`, "argument list too long"} {
		j := d.waitEnded(t, ids[i])
		if j.State != store.Failed || j.Attempt > 1 || !strings.Contains(j.Reason, "could not start") || !strings.Contains(j.Reason, want) {
			t.Errorf("stored job %d: %s at attempt %d, %q; want FAILED at attempt 1, could not start: ...%s", j.ID, j.State, j.Attempt, j.Reason, want)
		}
	}
	// The server goes on: a good job runs.
	if id := d.submit(t, d.admin, "good", "echo ok"); d.waitEnded(t, id).State != store.Succeeded {
		t.Errorf("a good job after the bad ones: %s", d.state(t, id))
	}
	for _, tc := range []struct{ env, field string }{
		{`A: "a\0b"`, `"field":"envs.A"`},
		{"BIG: " + strings.Repeat("x", 900<<10), `"field":"envs.BIG"`},
		{`"A=B": x`, `"field":"envs.A=B"`},
	} {
		src := "resources:\n  accelerators: H100:1\nenvs:\n  " + tc.env + "\nrun: echo\n"
		code, body := d.rawCall(t, "POST", "/v1/jobs", d.admin, map[string]string{"spec": src})
		if code != http.StatusBadRequest || !strings.Contains(body, tc.field) {
			t.Errorf("submit with env %.40q: %d %.300s; want 400 naming %s", tc.env, code, body, tc.field)
		}
	}
}

// Task numbers that size the broker's memory or work are refused at
// submit, each naming the field.
func TestHostileTaskSizes(t *testing.T) {
	t.Parallel()
	d := startBoundsBroker(t, t.TempDir())
	accels := make([]string, 16)
	for i := range accels {
		accels[i] = fmt.Sprintf("H100:%d", i+1)
	}
	anyOf := strings.Repeat("    - {region: r}\n", 5)
	for _, tc := range []struct{ task, field string }{
		{"num_nodes: 1000000\nresources:\n  accelerators: H100:1\n", "num_nodes"},
		{"resources:\n  accelerators: H100:1\nservice:\n  readiness_probe: /\n  replicas: 100000\n", "service.replicas"},
		{"resources:\n  accelerators: {" + strings.Join(accels, ", ") + "}\n  any_of:\n" + anyOf, "resources"},
		{"name: " + strings.Repeat("n", 10<<10) + "\nresources:\n  accelerators: H100:1\n", "name"},
		{"resources:\n  accelerators: H100:1\n  region: " + strings.Repeat("r", 10<<10) + "\n", "resources[0].region"},
		{"resources:\n  accelerators: H100:1\njob_recovery:\n  max_restarts_on_errors: 1000000\n", "job_recovery.max_restarts_on_errors"},
		{"resources:\n  accelerators: H100:1\nenvs:\n" + strings.Repeat("  V: x\n", 1) + manyEnvs(1001), "envs"},
	} {
		code, body := d.rawCall(t, "POST", "/v1/jobs", d.admin, map[string]string{"spec": tc.task + "run: echo\n"})
		if code != http.StatusBadRequest || !strings.Contains(body, `"field":"`+tc.field+`"`) {
			t.Errorf("submit %.60q: %d %.300s; want 400 naming %s", tc.task, code, body, tc.field)
		}
	}
}

func manyEnvs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  V%d: x\n", i)
	}
	return b.String()
}

// A fleet stored by an older version that no longer validates (a pool of
// 10^9 nodes, which once took a server to 23 GB and an OOM kill on every
// restart) does not stop the server: it starts, GET /v1/fleet says why
// the fleet is not in force, a job submitted meanwhile waits with that
// reason and runs nowhere, and once a valid fleet is applied it runs.
func TestHostileStoredInvalidFleet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	preStore(t, dir, "clusters:\n  - {name: c, provider: onprem, region: r, backend: local,\n     pools: [{name: p, gpu: H100, gpus_per_node: 4, nodes: 1000000000, price_class: committed}]}\n")
	d := startBoundsBroker(t, dir)
	var doc struct {
		Version int64  `json:"version"`
		Error   string `json:"error"`
	}
	d.api(t, "GET", "/v1/fleet", d.admin, nil, &doc)
	if doc.Version != 1 || !strings.Contains(doc.Error, "the stored fleet v1 does not validate") || !strings.Contains(doc.Error, "clusters[0].pools[0].nodes: 1000000000 is more than 100000") {
		t.Errorf("GET /v1/fleet: version %d, error %q; want v1 with the validation error", doc.Version, doc.Error)
	}
	id := d.submit(t, d.admin, "waits", "echo ran")
	time.Sleep(500 * time.Millisecond) // ten rounds
	if j := d.job(t, id); j.State != store.Pending || !strings.Contains(j.Reason, "FleetInvalid: the stored fleet v1 does not validate") {
		t.Errorf("job under an invalid fleet: %s, %q; want PENDING with reason FleetInvalid", j.State, j.Reason)
	}
	var clusters struct {
		Clusters []map[string]any `json:"clusters"`
	}
	d.api(t, "GET", "/v1/clusters", d.admin, nil, &clusters)
	if len(clusters.Clusters) != 0 {
		t.Errorf("GET /v1/clusters under an invalid fleet lists %v; want no cluster", clusters.Clusters)
	}
	fleet := "clusters:\n  - {name: c, provider: onprem, region: r, backend: local,\n     pools: [{name: p, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]}\n"
	if code, body := d.rawCall(t, "PUT", "/v1/fleet", d.admin, map[string]string{"fleet": fleet}); code != http.StatusOK {
		t.Fatalf("PUT a valid fleet: %d %s", code, body)
	}
	if j := d.waitEnded(t, id); j.State != store.Succeeded || j.Placement == nil || j.Placement.Cluster != "c" {
		t.Errorf("job after a valid fleet: %s on %+v; want SUCCEEDED on cluster c", j.State, j.Placement)
	}
	doc.Error = "" // omitted when none
	d.api(t, "GET", "/v1/fleet", d.admin, nil, &doc)
	if doc.Version != 2 || doc.Error != "" {
		t.Errorf("GET /v1/fleet after the valid fleet: v%d, error %q; want v2 and no error", doc.Version, doc.Error)
	}
}
