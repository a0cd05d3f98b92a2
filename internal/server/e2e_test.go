package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

func TestEchoJobSucceedsWithLogsAndEvents(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	jobs := e.submit(e.admin, task(`echo "hello from $SKYPILOT_NODE_RANK on GPU $CUDA_VISIBLE_DEVICES"`))
	if len(jobs) != 1 || jobs[0].State != store.Pending || jobs[0].Team != DefaultTeam {
		t.Fatalf("submit answered %+v", jobs[0])
	}
	id := jobs[0].ID
	j := e.waitState(id, 20*time.Second, store.Succeeded)
	if j.ExitCode == nil || *j.ExitCode != 0 || j.Placement == nil || j.Placement.Cluster != LocalCluster {
		t.Errorf("succeeded job: exit %v placement %+v", j.ExitCode, j.Placement)
	}
	code, logs := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs", id), e.admin, nil)
	if code != http.StatusOK || !strings.Contains(string(logs), "hello from 0 on GPU 0") {
		t.Errorf("logs: %d %q", code, logs)
	}
	got := transitions(e.events(id))
	want := []string{
		">PENDING@1 by local admin",
		"PENDING>ADMITTED@1 by reconciler",
		"ADMITTED>DISPATCHED@1 by reconciler",
		"DISPATCHED>RUNNING@1 by reconciler",
		"RUNNING>SUCCEEDED@1 by reconciler",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// The attempt's GPU-hours were booked.
	us, err := e.st.ListUsage(t.Context(), time.Time{}, time.Now().Add(time.Hour))
	if err != nil || len(us) != 1 || us[0].JobID != id || us[0].GPUs != 1 {
		t.Errorf("usage: %+v, %v", us, err)
	}
}

func TestFollowLogsStreamsUntilTheJobEnds(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task("echo one; sleep 0.3; echo two"))[0].ID
	// Follow from the start: the job is still pending.
	code, logs := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs?follow=1", id), e.admin, nil)
	if code != http.StatusOK || !strings.Contains(string(logs), "one\ntwo\n") {
		t.Errorf("followed logs: %d %q", code, logs)
	}
	if j := e.job(id); j.State != store.Succeeded {
		t.Errorf("the stream ended with the job %s", j.State)
	}
}

func TestFailingJobRestartsThenFails(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task("echo attempt $GPUBROKER_ATTEMPT; exit 3", "job_recovery:\n  max_restarts_on_errors: 1\n"))[0].ID
	j := e.waitState(id, 20*time.Second, store.Failed)
	if j.Attempt != 2 || j.Restarts != 1 || j.ExitCode == nil || *j.ExitCode != 3 {
		t.Errorf("failed job: attempt %d restarts %d exit %v reason %q", j.Attempt, j.Restarts, j.ExitCode, j.Reason)
	}
	var runs []string
	for _, ev := range e.events(id) {
		if ev.To == store.Running {
			runs = append(runs, fmt.Sprint(ev.Attempt))
		}
	}
	if diff := cmp.Diff([]string{"1", "2"}, runs); diff != "" {
		t.Errorf("attempts that ran (-want +got):\n%s", diff)
	}
	// Both attempts' logs are kept.
	for a := 1; a <= 2; a++ {
		code, logs := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs?attempt=%d", id, a), e.admin, nil)
		if code != http.StatusOK {
			t.Errorf("attempt %d logs: %d %s", a, code, logs)
		}
	}
}

func TestCancelSleepingJob(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	pidFile := filepath.Join(e.dir, "sleeper.pid")
	id := e.submit(e.admin, task(fmt.Sprintf("echo $$ > %s; exec sleep 60", pidFile)))[0].ID
	e.waitState(id, 20*time.Second, store.Running)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(data), "\n") {
			break
		}
	}
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Fatalf("cancel answered %s", j.State)
	}
	// Cancelling again answers the job unchanged.
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Fatalf("second cancel answered %s", j.State)
	}
	// The process is gone.
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s still alive after cancel", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And nothing is left on the backend once the reconciler tidied up.
	deadline = time.Now().Add(10 * time.Second)
	for {
		sts, err := e.be.Observe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend still holds %+v", sts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCancelPendingJob(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// 8 GPUs on a 4-GPU machine never fit: it stays pending with a reason.
	id := e.submit(e.admin, "resources:\n  accelerators: H100:8\nrun: echo never\n")[0].ID
	deadline := time.Now().Add(10 * time.Second)
	for e.job(id).Reason == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if j := e.job(id); j.State != store.Pending || !strings.HasPrefix(j.Reason, "NodeShapeMismatch:") {
		t.Errorf("pending job: %s %q", j.State, j.Reason)
	}
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Errorf("cancel answered %s", j.State)
	}
}

const twoNodeFleet = `
clusters:
  - name: lab
    provider: onprem
    region: local
    backend: local
    pools:
      - name: gpu
        gpu: H100
        gpus_per_node: 2
        nodes: 2
        price_class: committed
`

func TestGangOfTwoNodesGetsTwoProcesses(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var put struct{ Version int64 }
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: twoNodeFleet}, &put)
	if put.Version != 1 {
		t.Errorf("fleet version %d", put.Version)
	}
	out := filepath.Join(e.dir, "ranks")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf("num_nodes: 2\nresources:\n  accelerators: H100:2\nrun: |\n  echo \"$SKYPILOT_NUM_NODES $CUDA_VISIBLE_DEVICES $$\" > %s/rank-$SKYPILOT_NODE_RANK\n", out)
	id := e.submit(e.admin, spec)[0].ID
	j := e.waitState(id, 20*time.Second, store.Succeeded)
	if diff := cmp.Diff([]int{0, 1}, j.Placement.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names, pids []string
	for _, ent := range ents {
		names = append(names, ent.Name())
		data, _ := os.ReadFile(filepath.Join(out, ent.Name()))
		f := strings.Fields(string(data))
		if len(f) != 3 || f[0] != "2" || f[1] != "0,1" {
			t.Errorf("%s: %q", ent.Name(), data)
			continue
		}
		pids = append(pids, f[2])
	}
	sort.Strings(names)
	if diff := cmp.Diff([]string{"rank-0", "rank-1"}, names); diff != "" {
		t.Errorf("ranks (-want +got):\n%s", diff)
	}
	if len(pids) == 2 && pids[0] == pids[1] {
		t.Errorf("both nodes ran in one process %s", pids[0])
	}
}

func TestGPUSlotsDoNotOverlap(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	out := filepath.Join(e.dir, "slots")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Four 1-GPU jobs on the 4-GPU local pool run at once on distinct GPUs.
	var ids []int64
	for range 4 {
		ids = append(ids, e.submit(e.admin, task(fmt.Sprintf("echo $CUDA_VISIBLE_DEVICES > %s/$GPUBROKER_JOB_ID; sleep 0.5", out)))[0].ID)
	}
	for _, id := range ids {
		e.waitState(id, 20*time.Second, store.Succeeded)
	}
	var gpus []string
	ents, _ := os.ReadDir(out)
	for _, ent := range ents {
		data, _ := os.ReadFile(filepath.Join(out, ent.Name()))
		gpus = append(gpus, strings.TrimSpace(string(data)))
	}
	sort.Strings(gpus)
	if diff := cmp.Diff([]string{"0", "1", "2", "3"}, gpus); diff != "" {
		t.Errorf("GPUs given (-want +got):\n%s", diff)
	}
}

func TestPipelineSubmitsJobsInOrder(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	spec := "name: two\n---\nname: first\nresources:\n  accelerators: H100:1\nrun: echo 1\n---\nname: second\nresources:\n  accelerators: H100:1\nrun: echo 2\n"
	jobs := e.submit(e.admin, spec)
	if len(jobs) != 2 || jobs[0].ID >= jobs[1].ID || jobs[0].Workload.Name != "first" || jobs[1].Workload.Name != "second" {
		t.Fatalf("pipeline gave %+v", jobs)
	}
	for _, j := range jobs {
		e.waitState(j.ID, 20*time.Second, store.Succeeded)
	}
}

// TestRestartCompletesJobOnce closes the server while a job runs and
// starts a new one on the same store and state: the job is found again
// and completes exactly once.
func TestRestartCompletesJobOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ran := filepath.Join(e.dir, "ran")
	id := e.submit(e.admin, task(fmt.Sprintf("echo $GPUBROKER_JOB_ID >> %s; sleep 1; echo done", ran)))[0].ID
	e.waitState(id, 20*time.Second, store.Running)
	e.stop()
	// A new broker process: new server, new backend value, same files.
	e.be = e.newBackend()
	e.start()
	j := e.waitState(id, 20*time.Second, store.Succeeded)
	if j.Attempt != 1 {
		t.Errorf("attempt %d after the restart; want 1", j.Attempt)
	}
	data, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 1 {
		t.Errorf("the job ran %d times: %q", len(lines), data)
	}
	var tos []string
	for _, ev := range e.events(id) {
		tos = append(tos, string(ev.To))
	}
	if slices.Contains(tos[1:], "PENDING") {
		t.Errorf("the job went back to pending: %v", tos)
	}
}

// TestRestartBetweenSubmitAndRecord: an attempt the backend accepted while
// the store still says ADMITTED (the broker died in between) is found by
// name and recorded, not launched twice.
func TestRestartBetweenSubmitAndRecord(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.stop() // no reconciler: this test plays the dying broker's part
	ran := filepath.Join(e.dir, "ran")
	ctx := t.Context()
	j := e.submitDirect(task(fmt.Sprintf("echo x >> %s", ran)))
	j, err := e.st.MoveJob(ctx, j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Actor: "test",
		Placement: &store.Placement{Cluster: LocalCluster, Pool: LocalPool, Provider: "onprem", GPU: "H100", GPUsPerNode: 1, Nodes: []int{0}},
		Message:   "gpu slots: 0=2"})
	if err != nil {
		t.Fatal(err)
	}
	w := j.Workload
	if err := e.be.Submit(ctx, specFor(j, w.Run)); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitState(j.ID, 20*time.Second, store.Succeeded)
	data, _ := os.ReadFile(ran)
	if string(data) != "x\n" {
		t.Errorf("ran %q; want one line", data)
	}
}
