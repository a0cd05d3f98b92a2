package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
)

// TestListJobDecodes: listJob, the part of api.Job that lists decode,
// reads every field it holds under api.Job's JSON names.
func TestListJobDecodes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	full := &api.Job{ID: 9, Team: "ml", State: api.Running, Attempt: 2, Reason: "why", Spec: "run: x",
		Placement: &api.Placement{Cluster: "c", Pool: "p", GPU: "H100", GPUsPerNode: 8, Nodes: []int{0}},
		Created:   at, Updated: at.Add(time.Minute), StartedAt: at.Add(2 * time.Minute),
		Workload: &api.Workload{Name: "train", Kind: "job", Priority: 5, NumNodes: 2, Run: "x",
			Options: []api.Resources{{GPU: "H100", GPUsPerNode: 8, Region: "r"}, {GPU: "A100", GPUsPerNode: 8}}}}
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var l listJob
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	want := &api.Job{ID: 9, Team: "ml", State: api.Running, Attempt: 2, Reason: "why", Placement: full.Placement,
		Created: at, Updated: at.Add(time.Minute), StartedAt: at.Add(2 * time.Minute),
		Workload: &api.Workload{Name: "train", Priority: 5, NumNodes: 2, Options: []api.Resources{{GPU: "H100", GPUsPerNode: 8}}}}
	if diff := cmp.Diff(want, l.job()); diff != "" {
		t.Errorf("listJob (-want +got):\n%s", diff)
	}
}
