package sqlstore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

func TestAttemptsOfAFailedOverJob(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	lost := "Lost: cluster aws-slurm unreachable for 3s; gpub-7-1 on aws-slurm/h100: health check: down; retrying as attempt 2"
	evs := []store.Event{
		{Seq: 1, At: at(0), To: store.Pending, Attempt: 1, Message: "submitted"},
		{Seq: 2, At: at(1), From: store.Pending, To: store.Admitted, Attempt: 1, Message: "placed on aws-slurm/h100 (aws, committed, $0.00/GPU-h effective); node 0: GPUs 0-1"},
		{Seq: 3, At: at(1), From: store.Admitted, To: store.Dispatched, Attempt: 1, Message: "submitted as gpub-7-1"},
		{Seq: 4, At: at(2), From: store.Dispatched, To: store.Running, Attempt: 1, Message: "started"},
		{Seq: 5, At: at(9), From: store.Running, To: store.Pending, Attempt: 2, Message: lost},
		{Seq: 6, At: at(10), From: store.Pending, To: store.Admitted, Attempt: 2, Message: "placed on onprem/h100 (onprem, committed, $0.00/GPU-h effective); node 0: GPUs 2-3"},
		{Seq: 7, At: at(10), From: store.Admitted, To: store.Dispatched, Attempt: 2},
		{Seq: 8, At: at(11), From: store.Dispatched, To: store.Running, Attempt: 2},
		{Seq: 9, At: at(15), From: store.Running, To: store.Succeeded, Attempt: 2, Message: "Succeeded"},
	}
	want := []store.Attempt{
		{Attempt: 1, Cluster: "aws-slurm", Pool: "h100", State: store.Running, Admitted: at(1), Started: at(2), Ended: at(9),
			Outcome: store.OutcomeRetried, Reason: lost},
		{Attempt: 2, Cluster: "onprem", Pool: "h100", State: store.Succeeded, Admitted: at(10), Started: at(11), Ended: at(15),
			Outcome: "SUCCEEDED", Reason: "Succeeded"},
	}
	if diff := cmp.Diff(want, attemptsOf(evs)); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	// A job still waiting for its second attempt.
	if diff := cmp.Diff(want[:1], attemptsOf(evs[:5])[:1]); diff != "" {
		t.Errorf("attempts of a pending job (-want +got):\n%s", diff)
	}
	if got := attemptsOf(evs[:5])[1]; got.Attempt != 2 || got.State != store.Pending || got.Outcome != "" {
		t.Errorf("the waiting attempt: %+v", got)
	}
}

// TestParseSlots reads the slots the server wrote at the end of an
// admission's message before the store kept them (formatSlots).
func TestParseSlots(t *testing.T) {
	t.Parallel()
	msg := "placed on c/p (aws, committed, $0.00/GPU-h effective); gpu slots: 0=0,1 1=0,1"
	got, ok := parseSlots(msg)
	if !ok {
		t.Fatalf("parseSlots(%q) failed", msg)
	}
	want := []store.NodeSlots{{Node: 0, GPUs: []int{0, 1}}, {Node: 1, GPUs: []int{0, 1}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"placed somewhere", "gpu slots: 0=a", "gpu slots: 0"} {
		if _, ok := parseSlots(bad); ok {
			t.Errorf("parsed slots from %q", bad)
		}
	}
}
