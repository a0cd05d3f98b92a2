package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

// recoveryFleet has a local cluster in us-east-1 and a cluster in
// us-west-2 that never answers (the tests have no Kubernetes backend).
const recoveryFleet = `clusters:
  - name: east
    provider: onprem
    region: us-east-1
    backend: local
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]
  - name: west
    provider: azure
    region: us-west-2
    backend: kubernetes
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: ondemand, price_per_gpu_hour: 1}]
`

// A job preempted on east comes back as a new attempt. Under
// EAGER_NEXT_REGION that attempt must not run in us-east-1 again, so with
// west down it waits (RecoveryAvoidsRegion) even once east is free; under
// FAILOVER it goes back to east.
func TestRecoveryStrategyAfterPreemption(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"EAGER_NEXT_REGION", "FAILOVER"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: recoveryFleet}, nil)
			low := e.submit(e.admin, fmt.Sprintf("resources:\n  accelerators: H100:4\njob_recovery: %s\nrun: sleep 30\n", strategy))[0].ID
			j := e.waitState(low, 20*time.Second, store.Running)
			if j.Placement.Cluster != "east" {
				t.Fatalf("job %d runs on %s, want east", low, j.Placement.Cluster)
			}
			high := e.submit(e.admin, "resources:\n  accelerators: H100:4\nx-gpubroker:\n  priority: 10\nrun: sleep 0.5\n")[0].ID
			e.waitState(high, 20*time.Second, store.Succeeded)

			var as struct{ Attempts []Attempt }
			e.mustDo(http.StatusOK, "GET", fmt.Sprintf("/v1/jobs/%d/attempts", low), e.admin, nil, &as)
			if len(as.Attempts) < 2 || as.Attempts[0].Outcome != OutcomeRetried || !strings.HasPrefix(as.Attempts[0].Reason, "Preempted: ") {
				t.Fatalf("attempts of job %d: %+v; want the first preempted", low, as.Attempts)
			}
			if strategy == "FAILOVER" {
				j := e.waitState(low, 20*time.Second, store.Running)
				if j.Attempt != 2 || j.Placement.Cluster != "east" {
					t.Errorf("job %d attempt %d on %s; want attempt 2 back on east", low, j.Attempt, j.Placement.Cluster)
				}
				return
			}
			// East is free; a few rounds later the job still waits.
			time.Sleep(300 * time.Millisecond)
			j = e.job(low)
			if j.State != store.Pending || j.Attempt != 2 || !strings.Contains(j.Reason, "RecoveryAvoidsRegion") || !strings.Contains(j.Reason, "us-east-1") {
				t.Errorf("job %d is %s at attempt %d (%s); want PENDING at attempt 2, RecoveryAvoidsRegion in us-east-1", low, j.State, j.Attempt, j.Reason)
			}
		})
	}
}
