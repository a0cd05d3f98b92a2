package sim

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

// The simulator replays a job's recovery policy through internal/lifecycle:
// a job whose first three attempts exit 33 completes on its fourth when 33
// is in recover_on_exit_codes (those restarts do not count toward
// max_restarts_on_errors: 1), and fails after one restart when it is not.
// Each failed attempt's hour is billed; the lost work is redone.
func TestSimulatedRecoverOnExitCodes(t *testing.T) {
	t.Parallel()
	fleet := &model.Fleet{Policy: model.DefaultPolicy(), Clusters: []model.Cluster{
		cluster("c", "aws", pool("od", "H100", 1, model.OnDemand, 2)),
	}}
	for _, tc := range []struct {
		name      string
		codes     []int
		outcomes  []string
		completed int
		failed    int
		gpuHours  float64 // 8 GPUs x (1 h per failed attempt + 4 h to complete)
		usd       float64 // at $2/GPU-h
	}{
		{"listed", []int{33}, []string{"RETRIED", "RETRIED", "RETRIED", "SUCCEEDED"}, 1, 0, 8 * (3 + 4), 112},
		{"not listed", nil, []string{"RETRIED", "FAILED"}, 0, 1, 8 * 2, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := wl("j", 0, 8, 4*time.Hour)
			w.Recovery = model.Recovery{MaxRestartsOnErrors: 1, RecoverOnExitCodes: tc.codes}
			res, err := Run(Config{Seed: 1, Fleet: fleet, RecordAttempts: true,
				Failures: []Failure{{Job: "j", Attempts: []int{1, 2, 3}, After: time.Hour, ExitCode: 33}}}, []*model.Workload{w})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range res.AttemptLogs[0] {
				got = append(got, a.Outcome)
			}
			if diff := cmp.Diff(tc.outcomes, got); diff != "" {
				t.Errorf("attempt outcomes (-want +got):\n%s\n%+v", diff, res.AttemptLogs[0])
			}
			if res.Completed != tc.completed || res.Failed != tc.failed {
				t.Errorf("completed %d, failed %d; want %d, %d", res.Completed, res.Failed, tc.completed, tc.failed)
			}
			if h, usd := res.Summary.GPUHoursBilled, res.Summary.TotalUSD; h != tc.gpuHours || usd != tc.usd {
				t.Errorf("billed %v GPU-h, $%v; want %v, $%v", h, usd, tc.gpuHours, tc.usd)
			}
		})
	}
}
