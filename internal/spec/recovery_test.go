package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recover_on_exit_codes takes one code or a list (SkyPilot's forms),
// drops duplicates, and names the item and the fix when a code is not one.
func TestRecoverOnExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, codes string
		want        []int
		err         string
	}{
		{"one", "33", []int{33}, ""},
		{"list", "[33, 34, 33]", []int{33, 34}, ""},
		{"out of range", "[33, 300]", nil, "5: job_recovery.recover_on_exit_codes[1]: 300 is not an exit code; give 0 to 255"},
		{"not a number", "nccl", nil, `5: job_recovery.recover_on_exit_codes: expected a whole number, got "nccl"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "resources:\n  accelerators: H100:8\njob_recovery:\n  max_restarts_on_errors: 1\n  recover_on_exit_codes: " + tc.codes + "\nrun: train\n"
			task, err := ParseTask([]byte(src), "t.yaml")
			if tc.err != "" {
				var errs Errors
				if !errors.As(err, &errs) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseTask: %v; want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTask: %v", err)
			}
			if len(task.Warnings) > 0 {
				t.Errorf("warnings: %v", task.Warnings)
			}
			if diff := cmp.Diff(tc.want, task.Workloads[0].Recovery.RecoverOnExitCodes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
		})
	}
}
