package lifecycle

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func code(c int) *int { return &c }

func TestNext(t *testing.T) {
	t.Parallel()
	eager := model.Recovery{Strategy: model.RecoveryEagerNextRegion, MaxRestartsOnErrors: 2}
	failover := model.Recovery{Strategy: model.RecoveryFailover, MaxRestartsOnErrors: 2}
	tests := []struct {
		name     string
		rec      model.Recovery
		restarts int
		a        Attempt
		want     Move
	}{
		{"succeeded", eager, 0, Attempt{Number: 1, Ending: Succeeded, ExitCode: code(0)},
			Move{Kind: Succeed, Reason: "Succeeded"}},
		{"first error restarts", eager, 0, Attempt{Number: 1, Region: "r1", Ending: Failed, ExitCode: code(3)},
			Move{Kind: Retry, CountRestart: true, Reason: "Restarting: attempt 1 exited with code 3; restart 1 of 2"}},
		{"second error restarts", failover, 1, Attempt{Number: 4, Ending: Failed, ExitCode: code(3)},
			Move{Kind: Retry, CountRestart: true, Reason: "Restarting: attempt 4 exited with code 3; restart 2 of 2"}},
		{"budget spent fails", eager, 2, Attempt{Number: 5, Ending: Failed, ExitCode: code(3)},
			Move{Kind: Fail, Reason: "Failed: exited with code 3 after 2 restarts"}},
		{"no restarts allowed", model.Recovery{}, 0, Attempt{Number: 1, Ending: Failed, ExitCode: code(1)},
			Move{Kind: Fail, Reason: "Failed: exited with code 1"}},
		{"unknown exit code", model.Recovery{}, 0, Attempt{Number: 1, Ending: Failed},
			Move{Kind: Fail, Reason: "Failed: exited with code unknown"}},
		{"unknown ending counts as failed", model.Recovery{MaxRestartsOnErrors: 1}, 0, Attempt{Number: 1},
			Move{Kind: Retry, CountRestart: true, Reason: "Restarting: attempt 1 exited with code unknown; restart 1 of 1"}},
		{"lost under eager avoids its region", eager, 2, Attempt{Number: 2, Region: "us-east-1", Ending: Lost, Why: "Lost: gone"},
			Move{Kind: Retry, AvoidRegion: "us-east-1", Reason: "Lost: gone"}},
		{"preempted under eager avoids its region", eager, 0, Attempt{Number: 1, Region: "us-east-1", Ending: Preempted, Why: "Preempted: x"},
			Move{Kind: Retry, AvoidRegion: "us-east-1", Reason: "Preempted: x"}},
		{"lost under failover goes anywhere", failover, 0, Attempt{Number: 1, Region: "us-east-1", Ending: Lost, Why: "Lost: gone"},
			Move{Kind: Retry, Reason: "Lost: gone"}},
		{"a listed exit code restarts without counting", model.Recovery{MaxRestartsOnErrors: 1, RecoverOnExitCodes: []int{33, 34}}, 1,
			Attempt{Number: 7, Ending: Failed, ExitCode: code(34)},
			Move{Kind: Retry, Reason: "Restarting: attempt 7 exited with code 34 (recover_on_exit_codes)"}},
		{"another exit code still counts", model.Recovery{MaxRestartsOnErrors: 1, RecoverOnExitCodes: []int{33}}, 1,
			Attempt{Number: 8, Ending: Failed, ExitCode: code(1)},
			Move{Kind: Fail, Reason: "Failed: exited with code 1 after 1 restarts"}},
		{"an unknown exit code is never listed", model.Recovery{RecoverOnExitCodes: []int{0}}, 0,
			Attempt{Number: 1, Ending: Failed},
			Move{Kind: Fail, Reason: "Failed: exited with code unknown"}},
		{"not started fails at once, whatever the restart budget", model.Recovery{MaxRestartsOnErrors: 5, RecoverOnExitCodes: []int{1}}, 0,
			Attempt{Number: 2, Ending: NotStarted, Why: "fork/exec /bin/bash: argument list too long"},
			Move{Kind: Fail, Reason: "Failed: attempt 2 could not start: fork/exec /bin/bash: argument list too long"}},
		{"lost does not spend the restart budget", model.Recovery{}, 0, Attempt{Number: 9, Ending: Lost, Why: "Lost"},
			Move{Kind: Retry, Reason: "Lost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Next(tt.rec, tt.restarts, tt.a)); diff != "" {
				t.Errorf("Next (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		done, ok bool
		want     Gate
	}{{false, false, Wait}, {true, true, Go}, {true, false, Cancel}} {
		if got := Stage(tt.done, tt.ok); got != tt.want {
			t.Errorf("Stage(%v, %v) = %v, want %v", tt.done, tt.ok, got, tt.want)
		}
	}
}
