package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/backend"
)

// squeueFormat is what Observe asks squeue for; parseSqueue reads it. The
// name is last, so that nothing in it can shift the other fields.
const squeueFormat = "JobID:|,State:|,Reason:|,SubmitTime:|,StartTime:|,EndTime:|,exit_code:|,Name:|"

// sacctFormat is what Observe asks sacct for; parseSacct reads it.
const sacctFormat = "JobIDRaw,State,ExitCode,Submit,Start,End,JobName"

// job is one job as squeue or sacct reports it.
type job struct {
	ID     int64
	Name   string
	State  string // first word of the state, e.g. CANCELLED of "CANCELLED by 0"
	Reason string
	// Code is the exit code and Signal the signal that ended the job (0 for
	// none); HasCode is false while the job has not ended.
	Code, Signal int
	HasCode      bool
	Submit       time.Time
	Start        time.Time
	End          time.Time
}

// Observe reports every held attempt. At most every Options.ListEvery it
// lists them with two Slurm commands at most (list), in the background
// unless the last listing failed or the one in flight hangs (see fresh); in
// between it reports what the last listing said, except that an attempt
// whose script has written a zero exit status since is reported
// Succeeded, one whose script has started since is Running, and one
// submitted since the listing is Pending. What only Slurm knows (a
// failure, a cancellation, a node lost) is seen by the next listing.
func (b *Backend) Observe(ctx context.Context) ([]backend.Status, error) {
	held := b.heldRecords()
	if len(held) == 0 {
		return nil, nil
	}
	listed, err := b.listing.get(ctx, b.opts.Clock(), b.opts.ListEvery, func(ctx context.Context) (map[string]backend.Status, error) {
		sts, err := b.list(ctx, held)
		if err != nil {
			return nil, err
		}
		m := make(map[string]backend.Status, len(sts))
		for _, st := range sts {
			m[st.Name] = st
		}
		return m, nil
	})
	if errors.Is(err, errNoAnswer) {
		return nil, fmt.Errorf("slurm: observe: %w", err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]backend.Status, 0, len(held))
	for _, r := range held {
		st, ok := listed[r.Name]
		switch {
		case ok && !active(st.Phase):
		case r.cancelled:
			// Cancelled by the broker: what Slurm says counts, not an
			// exit status the dying script may have written.
		default:
			// Only a success is taken from the script: a scancel from
			// outside ends srun first, and the script may still write
			// srun's failure before Slurm kills it, so a failure waits for
			// Slurm's own word (FAILED, or CANCELLED: Lost).
			if ex, ended := b.exitStatus(r); ended && ex.Phase == backend.PhaseSucceeded {
				if ex.Started.IsZero() {
					ex.Started = st.Started
				}
				st, ok = ex, true
			} else if !ok || st.Phase == backend.PhasePending {
				if at, started := b.startedAt(r); started {
					st, ok = backend.Status{Name: r.Name, Phase: backend.PhaseRunning, Started: at,
						Message: fmt.Sprintf("job %d running", r.JobID)}, true
				}
			}
		}
		if !ok {
			st = backend.Status{Name: r.Name, Phase: backend.PhasePending, Message: "submitted; not listed by Slurm yet"}
		}
		out = append(out, st)
	}
	return out, nil
}

// scriptFile reads a file r's batch script wrote, "JOBID FIELD...", and
// returns its fields after the job id; ok is false when there is none, it
// is not one whole line (still being written), it does not have n fields
// in all, or it is another job id's than r's.
func (b *Backend) scriptFile(r record, name string, n int) (rest []string, ok bool) {
	data, err := os.ReadFile(filepath.Join(b.dir, r.Name, name))
	if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
		return nil, false
	}
	f := strings.Fields(string(data))
	if len(f) != n {
		return nil, false
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || r.JobID == 0 || id != r.JobID {
		return nil, false
	}
	return f[1:], true
}

// startedAt reads when r's batch script started, from what it wrote as it
// started; started is false when it wrote nothing for r's job id.
func (b *Backend) startedAt(r record) (at time.Time, started bool) {
	f, ok := b.scriptFile(r, startFile, 2)
	if !ok {
		return at, false
	}
	return backend.UnixTime(f[0]), true
}

// exitStatus reads what r's batch script wrote as it ended; ended is false
// when it wrote nothing for r's job id (it runs, or was killed).
func (b *Backend) exitStatus(r record) (st backend.Status, ended bool) {
	f, ok := b.scriptFile(r, exitFile, 4)
	if !ok {
		return st, false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 0 {
		return st, false
	}
	st = backend.Status{Name: r.Name, Phase: backend.PhaseSucceeded, ExitCode: &code,
		Started: backend.UnixTime(f[1]), Ended: backend.UnixTime(f[2])}
	if code != 0 {
		st.Phase = backend.PhaseFailed
		st.Message = fmt.Sprintf("job %d ended (exit code %d)", r.JobID, code)
	}
	return st, true
}

// list reports every held attempt with two Slurm commands at most: one
// squeue for every job of this user that slurmctld still remembers, and,
// only when some held attempt is not among them, one sacct for those names.
func (b *Backend) list(ctx context.Context, held []record) ([]backend.Status, error) {
	out, err := b.run(ctx, "squeue", "--me", "--noheader", "--states=all", "--Format="+squeueFormat)
	if err != nil {
		return nil, fmt.Errorf("slurm: observe: %w", err)
	}
	jobs, err := parseSqueue(string(out))
	if err != nil {
		return nil, fmt.Errorf("slurm: observe: %w", err)
	}
	live := newest(jobs)

	var missing []string
	var since time.Time
	for _, r := range held {
		if _, ok := live[r.Name]; ok {
			continue
		}
		missing = append(missing, r.Name)
		if since.IsZero() || r.Submitted.Before(since) {
			since = r.Submitted
		}
	}
	past := map[string]job{}
	accounting := true
	if len(missing) > 0 {
		out, err := b.run(ctx, "sacct", "--noheader", "--parsable2", "--allocations",
			"--starttime="+slurmTime(since.Add(-time.Minute)), "--name="+strings.Join(missing, ","),
			"--format="+sacctFormat)
		switch {
		case err == nil:
			jobs, err := parseSacct(string(out))
			if err != nil {
				return nil, fmt.Errorf("slurm: observe: %w", err)
			}
			past = newest(jobs)
		case accountingDisabled(err):
			accounting = false
		default:
			return nil, fmt.Errorf("slurm: observe: %w", err)
		}
	}

	sts := make([]backend.Status, 0, len(held))
	for _, r := range held {
		j, ok := live[r.Name]
		if !ok {
			j, ok = past[r.Name]
		}
		if !ok {
			st := backend.Status{Name: r.Name, Phase: backend.PhaseLost, Ended: r.Submitted}
			switch {
			case r.JobID == 0:
				st.Message = "the broker stopped before sbatch accepted the job"
			case !accounting:
				st.Message = fmt.Sprintf("job %d is gone from slurmctld and the cluster keeps no accounting", r.JobID)
			default:
				st.Message = fmt.Sprintf("job %d is known to neither squeue nor sacct", r.JobID)
			}
			sts = append(sts, st)
			continue
		}
		sts = append(sts, status(j, r.cancelled))
	}
	return sts, nil
}

// newest keeps, per name, the job to report: an active one over an ended
// one (a resubmission racing its predecessor), then the highest id.
func newest(jobs []job) map[string]job {
	m := map[string]job{}
	for _, j := range jobs {
		if !strings.HasPrefix(j.Name, namePrefix) {
			continue
		}
		old, ok := m[j.Name]
		if !ok {
			m[j.Name] = j
			continue
		}
		oa, ja := active(phaseOf(old.State)), active(phaseOf(j.State))
		if (ja && !oa) || (ja == oa && j.ID > old.ID) {
			m[j.Name] = j
		}
	}
	return m
}

func active(p backend.Phase) bool {
	return p == backend.PhasePending || p == backend.PhaseRunning
}

// phaseOf maps a Slurm job state to a phase. States a job holds resources
// in (COMPLETING, SUSPENDED, ...) are Running, so that its GPUs are not
// handed out while still in use.
func phaseOf(state string) backend.Phase {
	switch state {
	case "PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "RESV_DEL_HOLD":
		return backend.PhasePending
	case "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
		"RESIZING", "UPDATE_DB", "POWER_UP_NODE":
		return backend.PhaseRunning
	case "COMPLETED":
		return backend.PhaseSucceeded
	case "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED":
		return backend.PhaseLost
	default: // FAILED, TIMEOUT, OUT_OF_MEMORY, DEADLINE, CANCELLED, SPECIAL_EXIT, ...
		return backend.PhaseFailed
	}
}

// status is what Observe reports of j; byBroker: the broker cancelled it.
//
// A CANCELLED job the broker did not cancel is Lost, not Failed: Slurm
// cancels a job itself when its launch fails and it cannot requeue it (a
// slurmctld that restarted from a state saved seconds before it died hands
// out job ids its slurmd still hold: "Job N already running, do not
// launch second copy"), and an administrator's scancel is no failure of
// the job's own. Either way the job's work did not fail; the attempt is
// retried as the job's recovery policy says.
func status(j job, byBroker bool) backend.Status {
	st := backend.Status{Name: j.Name, Phase: phaseOf(j.State)}
	if j.State == "CANCELLED" && !byBroker {
		st.Phase = backend.PhaseLost
	}
	if st.Phase != backend.PhasePending {
		st.Started = j.Start
	}
	if active(st.Phase) {
		if j.Reason != "" && j.Reason != "None" {
			st.Message = fmt.Sprintf("job %d %s: %s", j.ID, strings.ToLower(j.State), j.Reason)
		}
		return st
	}
	st.Ended = j.End
	code := j.Code
	if j.Signal != 0 {
		code = 128 + j.Signal
	}
	switch {
	case st.Phase == backend.PhaseSucceeded:
		zero := 0
		st.ExitCode = &zero
	case j.State == "CANCELLED" && byBroker:
		st.Message = fmt.Sprintf("job %d cancelled", j.ID)
	case j.State == "CANCELLED":
		st.Message = fmt.Sprintf("job %d cancelled outside the broker (by Slurm after a failed launch, or by scancel)", j.ID)
	case st.Phase == backend.PhaseLost:
		st.Message = fmt.Sprintf("job %d ended %s", j.ID, j.State)
	default:
		if j.HasCode {
			st.ExitCode = &code
		}
		st.Message = fmt.Sprintf("job %d ended %s", j.ID, j.State)
		if j.Signal != 0 {
			st.Message += fmt.Sprintf(" (signal %d)", j.Signal)
		} else if j.HasCode {
			st.Message += fmt.Sprintf(" (exit code %d)", j.Code)
		}
	}
	return st
}

// parseSqueue reads squeue --Format=squeueFormat output. exit_code there is
// the raw wait status: code<<8, or the signal number.
func parseSqueue(out string) ([]job, error) {
	var jobs []job
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 8)
		if len(f) != 8 {
			return nil, fmt.Errorf("squeue line %d: %d fields, want 8: %q", i+1, len(f), line)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
		if err != nil {
			// Array and heterogeneous jobs (123_4, 123+1) are not the broker's.
			continue
		}
		j := job{
			ID:     id,
			State:  stateWord(f[1]),
			Reason: strings.TrimSpace(f[2]),
			Submit: parseTime(f[3]),
			Start:  parseTime(f[4]),
			End:    parseTime(f[5]),
			Name:   strings.TrimSpace(strings.TrimSuffix(strings.TrimRight(f[7], " "), "|")),
		}
		if !active(phaseOf(j.State)) {
			if ws, err := strconv.Atoi(strings.TrimSpace(f[6])); err == nil && ws >= 0 {
				j.HasCode = true
				if sig := ws & 0x7f; sig != 0 {
					j.Signal = sig
				} else {
					j.Code = (ws >> 8) & 0xff
				}
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// parseSacct reads sacct --parsable2 --format=sacctFormat output; ExitCode
// there is "code:signal".
func parseSacct(out string) ([]job, error) {
	var jobs []job
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 7)
		if len(f) != 7 {
			return nil, fmt.Errorf("sacct line %d: %d fields, want 7: %q", i+1, len(f), line)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
		if err != nil {
			continue // a step (123.batch) or an array element
		}
		j := job{
			ID:     id,
			State:  stateWord(f[1]),
			Submit: parseTime(f[3]),
			Start:  parseTime(f[4]),
			End:    parseTime(f[5]),
			Name:   strings.TrimSpace(f[6]),
		}
		if c, s, ok := strings.Cut(strings.TrimSpace(f[2]), ":"); ok && !active(phaseOf(j.State)) {
			code, err1 := strconv.Atoi(c)
			sig, err2 := strconv.Atoi(s)
			if err1 == nil && err2 == nil {
				j.Code, j.Signal, j.HasCode = code, sig, true
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// stateWord is the state without sacct's " by UID" or squeue's "+" flags.
func stateWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	return strings.ToUpper(s)
}

// parseTime reads Slurm's local times; "Unknown", "N/A", "None" are zero.
func parseTime(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", strings.TrimSpace(s), time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}
