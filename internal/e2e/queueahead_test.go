package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend/slurm"
)

// TestQueueAheadSlurm: a broker over the CI Slurm cluster (4 nodes of 8
// GPUs) with queue_ahead: 1 holds one node's worth of work beyond the
// cluster's 32 GPUs in Slurm's queue, says so in the job's reason, and
// every job still runs once and succeeds.
func TestQueueAheadSlurm(t *testing.T) {
	conf := slurmCIConf(t)
	be, err := slurm.New(slurm.Options{Conf: conf, Dir: filepath.Join(t.TempDir(), "slurm"), GPUType: "h100",
		Runner: slurm.CommandRunner(conf)})
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now().UnixMilli() * 1000
	env := startBroker(t, be, fmt.Sprintf(slurmFleet, 1), first)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 48
	if _, err := env.submit(ctx, n, strings.Replace(slurmTask, `run: "true"`, `run: "sleep 4"`, 1)); err != nil {
		t.Fatal(err)
	}
	maxHeld, sawReason := 0, ""
	var over []int64 // the jobs held the first time more than 40 were
	for {
		jobs, err := env.api.allJobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held, done := 0, 0
		var holding []int64
		for _, j := range jobs {
			if j.ID < first {
				continue
			}
			switch j.State {
			case "ADMITTED", "DISPATCHED", "RUNNING":
				held++
				holding = append(holding, j.ID)
			case "SUCCEEDED":
				done++
			case "FAILED", "CANCELLED":
				t.Fatalf("job %d %s: %s", j.ID, j.State, j.Reason)
			}
			if strings.HasPrefix(j.Reason, "QueuedAhead:") && j.State != "PENDING" {
				sawReason = j.Reason
			}
			if j.Attempt != 1 {
				t.Errorf("job %d is on attempt %d: queued work was moved", j.ID, j.Attempt)
			}
		}
		maxHeld = max(maxHeld, held)
		if held > 40 && over == nil {
			over = holding
		}
		if done == n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d jobs succeeded before the timeout", done, n)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if maxHeld <= 32 || maxHeld > 40 {
		t.Errorf("at most %d jobs held at once; want more than the cluster's 32 GPUs and at most 40 (one node ahead)", maxHeld)
	}
	// What each job held at the first count over 40 went through: which
	// round placed it where (real node or queue slot) and when it moved.
	for _, id := range over {
		var out struct {
			Events []struct {
				At       time.Time `json:"at"`
				From, To string
				Message  string `json:"message"`
			} `json:"events"`
		}
		if err := env.api.do(ctx, "GET", fmt.Sprintf("/v1/jobs/%d/events", id), nil, &out); err != nil {
			t.Logf("job %d: events: %v", id, err)
			continue
		}
		for _, e := range out.Events {
			t.Logf("job %d %s %s -> %s: %s", id, e.At.Format("15:04:05.000000"), e.From, e.To, e.Message)
		}
	}
	if sawReason == "" {
		t.Errorf("no job queued ahead said so in its reason")
	}
	t.Logf("held at most %d jobs; reason: %s", maxHeld, sawReason)
}
