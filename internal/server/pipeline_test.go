package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// pipelineSpec is a task file of stages named s1, s2, ... whose run
// scripts are runs, in order; each asks for one of the local pool's four
// GPUs, so only the pipeline rule keeps them from running at once.
func pipelineSpec(runs ...string) string {
	var b strings.Builder
	b.WriteString("name: pipe\n")
	for i, run := range runs {
		fmt.Fprintf(&b, "---\nname: s%d\nresources:\n  accelerators: H100:1\nrun: |\n  %s\n", i+1, run)
	}
	return b.String()
}

// waitReason polls until the job's reason is want.
func (e *testEnv) waitReason(id int64, want string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := e.job(id)
		if j.Reason == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %d is %s with reason %q after %v; want reason %q", id, j.State, j.Reason, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPipelineStagesRunInOrder(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	out := filepath.Join(e.dir, "out")
	gate := filepath.Join(e.dir, "gate")
	// Stage 1 waits for the test to open the gate, so the later stages'
	// reasons can be read while it runs; each stage appends its number.
	jobs := e.submit(e.admin, pipelineSpec(
		fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; echo 1 >> %s", gate, out),
		fmt.Sprintf("sleep 0.2; echo 2 >> %s", out),
		fmt.Sprintf("echo 3 >> %s", out),
	))
	if len(jobs) != 3 {
		t.Fatalf("submit gave %d jobs, want 3", len(jobs))
	}
	var afters []int64
	for _, j := range jobs {
		afters = append(afters, j.After)
	}
	if d := cmp.Diff([]int64{0, jobs[0].ID, jobs[1].ID}, afters); d != "" {
		t.Errorf("After of the stages (-want +got):\n%s", d)
	}
	e.waitState(jobs[0].ID, 20*time.Second, store.Running)
	e.waitReason(jobs[1].ID, fmt.Sprintf("waiting for job %d (stage 2 of 3)", jobs[0].ID), 10*time.Second)
	e.waitReason(jobs[2].ID, fmt.Sprintf("waiting for job %d (stage 3 of 3)", jobs[1].ID), 10*time.Second)
	for _, j := range jobs[1:] {
		if got := e.job(j.ID); got.State != store.Pending {
			t.Errorf("job %d is %s while stage 1 runs", j.ID, got.State)
		}
	}
	// Listing shows the same reasons.
	var list listResponse
	e.mustDo(http.StatusOK, "GET", "/v1/jobs?state=PENDING", e.admin, nil, &list)
	if len(list.Jobs) != 2 || !strings.HasPrefix(list.Jobs[0].Reason, "waiting for job ") {
		t.Errorf("pending jobs listed: %+v", list.Jobs)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var done []*store.Job
	for _, j := range jobs {
		done = append(done, e.waitState(j.ID, 20*time.Second, store.Succeeded))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff("1\n2\n3\n", string(data)); d != "" {
		t.Errorf("stages' output (-want +got):\n%s", d)
	}
	// Each stage started only after the previous one ended, by the events.
	for i := 1; i < len(jobs); i++ {
		prevEnd, start := eventAt(e.events(jobs[i-1].ID), store.Succeeded), eventAt(e.events(jobs[i].ID), store.Running)
		if start.Before(prevEnd) {
			t.Errorf("stage %d started at %v, before stage %d ended at %v", i+1, start, i, prevEnd)
		}
		admitted := eventAt(e.events(jobs[i].ID), store.Admitted)
		if admitted.Before(prevEnd) {
			t.Errorf("stage %d admitted at %v, before stage %d ended at %v", i+1, admitted, i, prevEnd)
		}
		if done[i].StartedAt.Before(done[i-1].EndedAt) {
			t.Errorf("stage %d: started_at %v before stage %d's ended_at %v", i+1, done[i].StartedAt, i, done[i-1].EndedAt)
		}
	}
}

// eventAt is when the first event into state to happened.
func eventAt(evs []store.Event, to store.State) time.Time {
	for _, ev := range evs {
		if ev.To == to {
			return ev.At
		}
	}
	return time.Time{}
}

func TestPipelineFailedStageCancelsLaterStages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	out := filepath.Join(e.dir, "out")
	jobs := e.submit(e.admin, pipelineSpec(
		"exit 3",
		fmt.Sprintf("echo 2 >> %s", out),
		fmt.Sprintf("echo 3 >> %s", out),
	))
	if j := e.waitState(jobs[0].ID, 20*time.Second, store.Failed); j.ExitCode == nil || *j.ExitCode != 3 {
		t.Errorf("stage 1: exit %v", j.ExitCode)
	}
	wantReasons := []string{
		fmt.Sprintf("job %d ended FAILED", jobs[0].ID),
		fmt.Sprintf("job %d ended CANCELLED", jobs[1].ID),
	}
	for i, j := range jobs[1:] {
		got := e.waitState(j.ID, 20*time.Second, store.Cancelled)
		if got.Reason != wantReasons[i] {
			t.Errorf("stage %d: reason %q, want %q", i+2, got.Reason, wantReasons[i])
		}
		evs := e.events(j.ID)
		if d := cmp.Diff([]string{">PENDING@1 by local admin", "PENDING>CANCELLED@1 by reconciler"}, transitions(evs)); d != "" {
			t.Errorf("stage %d events (-want +got):\n%s", i+2, d)
		}
		wantMsg := fmt.Sprintf("%s; stage %d of 3 of the pipeline will not run", wantReasons[i], i+2)
		if msg := evs[len(evs)-1].Message; msg != wantMsg {
			t.Errorf("stage %d: cancel event says %q, want %q", i+2, msg, wantMsg)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a later stage ran: %v", err)
	}
}

func TestPipelineCancelledStageCancelsLaterStages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	jobs := e.submit(e.admin, pipelineSpec("exec sleep 60", "echo 2", "echo 3"))
	e.waitState(jobs[0].ID, 20*time.Second, store.Running)
	// Cancelling the middle stage leaves the first running and the last
	// to the pipeline rule.
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", jobs[1].ID), e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Fatalf("cancel answered %s", j.State)
	}
	got := e.waitState(jobs[2].ID, 20*time.Second, store.Cancelled)
	if want := fmt.Sprintf("job %d ended CANCELLED", jobs[1].ID); got.Reason != want {
		t.Errorf("stage 3: reason %q, want %q", got.Reason, want)
	}
	if first := e.job(jobs[0].ID); first.State != store.Running {
		t.Errorf("stage 1 is %s; cancelling a later stage must leave it alone", first.State)
	}
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", jobs[0].ID), e.admin, nil, &j)
}
