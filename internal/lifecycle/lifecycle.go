package lifecycle

import (
	"fmt"
	"slices"
	"strconv"

	"gpubroker/internal/model"
)

// Ending is how an attempt ended, as its backend (or the simulator) saw it.
type Ending int

// Endings.
const (
	// Succeeded: the attempt's command ended with exit code 0.
	Succeeded Ending = iota + 1
	// Failed: the attempt's command ended with an error (its exit code,
	// when known, in Attempt.ExitCode).
	Failed
	// Lost: the cluster lost the attempt (it vanished, the cluster stopped
	// answering, its node went away).
	Lost
	// Preempted: the broker stopped the attempt to make room for other
	// work, or a spot provider took the capacity back.
	Preempted
	// NotStarted: the backend could not start the attempt because of what
	// its spec asks for (backend.StartError: an environment the kernel
	// refuses, a missing program, a job the workload manager rejects).
	// Why holds the backend's words.
	NotStarted
)

// Attempt is one ended attempt of a job.
type Attempt struct {
	// Number is the attempt's number (1 for the first).
	Number int
	// Region is where it ran ("" when unknown).
	Region string
	Ending Ending
	// ExitCode, for Failed: nil when the backend could not tell.
	ExitCode *int
	// Why, for Lost and Preempted, is the reason the caller records
	// ("Lost: cluster east unreachable for 3s", "Preempted: ...").
	Why string
}

// Kind is what a move does to the job.
type Kind int

// Kinds of move.
const (
	// Succeed ends the job SUCCEEDED.
	Succeed Kind = iota + 1
	// Fail ends the job FAILED.
	Fail
	// Retry makes the job pending again as a new attempt.
	Retry
)

func (k Kind) String() string {
	switch k {
	case Succeed:
		return "succeed"
	case Fail:
		return "fail"
	case Retry:
		return "retry"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Move is what to do after an attempt ended.
type Move struct {
	Kind Kind
	// CountRestart, for a Retry, counts it toward max_restarts_on_errors.
	CountRestart bool
	// AvoidRegion, for a Retry, is a region the next attempt must not run
	// in (job_recovery EAGER_NEXT_REGION); "" for none.
	AvoidRegion string
	// Reason is the job's reason after the move ("Succeeded", "Restarting:
	// attempt 1 exited with code 3; restart 1 of 2", "Failed: exited with
	// code 3 after 2 restarts", or the Attempt's Why).
	Reason string
}

// Next is the move after attempt a of a job with recovery policy rec, which
// has counted restarts restarts on errors before a. Lost and preempted
// attempts are always retried (they are not the job's fault); under
// EAGER_NEXT_REGION the retry avoids the region they ended in. An attempt
// that could not start fails the job at once, whatever rec says: the same
// spec would not start the next time either (retried as a loss, such a job
// once ran to attempt 193, three attempts a second). An attempt that
// exited with one of rec.RecoverOnExitCodes is restarted without
// counting; any other failure (an unknown Ending counts as failed) is
// restarted while restarts stay below rec.MaxRestartsOnErrors, else the
// job fails.
func Next(rec model.Recovery, restarts int, a Attempt) Move {
	switch a.Ending {
	case NotStarted:
		return Move{Kind: Fail, Reason: "Failed: attempt " + strconv.Itoa(a.Number) + " could not start: " + a.Why}
	case Lost, Preempted:
		m := Move{Kind: Retry, Reason: a.Why}
		if rec.Strategy == model.RecoveryEagerNextRegion {
			m.AvoidRegion = a.Region
		}
		return m
	case Succeeded:
		return Move{Kind: Succeed, Reason: "Succeeded"}
	}
	code := "unknown"
	if a.ExitCode != nil {
		code = strconv.Itoa(*a.ExitCode)
		if slices.Contains(rec.RecoverOnExitCodes, *a.ExitCode) {
			return Move{Kind: Retry,
				Reason: fmt.Sprintf("Restarting: attempt %d exited with code %s (recover_on_exit_codes)", a.Number, code)}
		}
	}
	max := rec.MaxRestartsOnErrors
	if restarts < max {
		return Move{Kind: Retry, CountRestart: true,
			Reason: fmt.Sprintf("Restarting: attempt %d exited with code %s; restart %d of %d", a.Number, code, restarts+1, max)}
	}
	reason := "Failed: exited with code " + code
	if max > 0 {
		reason += fmt.Sprintf(" after %d restarts", restarts)
	}
	return Move{Kind: Fail, Reason: reason}
}

// Gate is what a pipeline stage waiting for the stage before it does.
type Gate int

// Gates.
const (
	// Wait: the stage before has not ended; keep this one back.
	Wait Gate = iota + 1
	// Go: the stage before SUCCEEDED; schedule this one.
	Go
	// Cancel: the stage before ended otherwise; this one never runs.
	Cancel
)

// Stage is the pipeline rule: a stage runs only once the one before it
// succeeded, and is cancelled when that one failed or was cancelled. done
// reports whether the previous stage ended, succeeded whether it ended
// SUCCEEDED.
func Stage(done, succeeded bool) Gate {
	switch {
	case !done:
		return Wait
	case succeeded:
		return Go
	default:
		return Cancel
	}
}
