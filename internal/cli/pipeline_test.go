package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
)

// TestStatusShowsPipelineReasons: status prints the server's reasons for
// pipeline stages, waiting and cancelled, as they come (see docs/api.md).
func TestStatusShowsPipelineReasons(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t)
	stage := func(id, after int64, name string, st api.State, reason string) *api.Job {
		return &api.Job{ID: id, After: after, Team: "default", User: "tok-1", State: st, Attempt: 1, Reason: reason,
			Created: testNow.Add(-90 * time.Second), Updated: testNow,
			Workload: &api.Workload{Name: name, Kind: "job", NumNodes: 1, Options: []api.Resources{{GPU: "H100", GPUsPerNode: 1}}}}
	}
	f.mu.Lock()
	f.jobs = []*api.Job{
		stage(1, 0, "train", api.Failed, "Failed: exited with code 3"),
		stage(2, 1, "eval", api.Cancelled, "job 1 ended FAILED"),
		stage(3, 2, "report", api.Cancelled, "job 2 ended CANCELLED"),
		stage(4, 0, "train", api.Running, ""),
		stage(5, 4, "eval", api.Pending, "waiting for job 4 (stage 2 of 2)"),
	}
	f.mu.Unlock()
	r := runCLI(t, apiArgs(srv.URL, "status")...)
	want := `ID  NAME    TEAM     STATE      GPUS    WHERE  ATTEMPT  AGE  REASON
1   train   default  FAILED     H100:1  -      1        1m   Failed: exited with code 3
2   eval    default  CANCELLED  H100:1  -      1        1m   job 1 ended FAILED
3   report  default  CANCELLED  H100:1  -      1        1m   job 2 ended CANCELLED
4   train   default  RUNNING    H100:1  -      1        1m   -
5   eval    default  PENDING    H100:1  -      1        1m   waiting for job 4 (stage 2 of 2)
`
	if d := cmp.Diff(want, r.stdout); d != "" || r.code != exitOK {
		t.Errorf("status: exit %d (-want +got):\n%s%s", r.code, d, r.stderr)
	}
	// -o json carries the stage's predecessor.
	if r := runCLI(t, apiArgs(srv.URL, "status", "5", "-o", "json")...); !strings.Contains(r.stdout, `"after": 4`) {
		t.Errorf("status 5 -o json lacks \"after\": 4:\n%s%s", r.stdout, r.stderr)
	}
}
