package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"gpubroker/internal/backend"
)

// Runner runs one Slurm command (sbatch, squeue, ...) and returns its
// standard output. An error for a non-zero exit should carry the command's
// standard error, as CommandRunner's does. Tests inject one to count or
// rewrite commands; production uses CommandRunner.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// stderrLimit bounds the standard error a command's error keeps: a
// command that hangs may keep writing (scontrol retries a missing
// slurm.conf once a second for a minute, a line each time).
const stderrLimit = 4 << 10

// killGrace is how long a killed command's output pipes may stay open
// (held by a child that escaped the kill) before Run stops reading them.
const killGrace = 2 * time.Second

// CommandRunner runs the real commands with SLURM_CONF=conf (when conf is
// not empty) added to the broker's environment; jobs submitted through it
// inherit that environment (sbatch --export=ALL).
//
// Each command runs in a process group of its own, and when ctx is done
// the whole group is killed (SIGKILL: a command that hangs on a dead
// controller may ignore SIGTERM, and a wrapper script's children would
// otherwise outlive it and hold its output open). The error then says
// how long the command was given ("scontrol ping: timed out after 5s")
// and what it had written on standard error.
func CommandRunner(conf string) Runner {
	env := os.Environ()
	if conf != "" {
		env = append(env, "SLURM_CONF="+conf)
	}
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		var budget time.Duration
		if dl, ok := ctx.Deadline(); ok {
			budget = time.Until(dl)
		}
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = killGrace
		var stdout bytes.Buffer
		stderr := &limitedBuffer{max: stderrLimit}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		err := cmd.Run()
		if err == nil {
			return stdout.Bytes(), nil
		}
		if ctx.Err() != nil {
			// Killed at the deadline (or on cancellation): say so, whatever
			// the kill made the command exit with.
			err = &timeoutError{budget: budget, err: ctx.Err()}
		}
		return stdout.Bytes(), &CommandError{
			Command: name, Args: args,
			Stderr: strings.TrimSpace(stderr.String()), Err: err,
		}
	}
}

// timeoutError is a command killed when its context ended.
type timeoutError struct {
	budget time.Duration
	err    error // the context's error
}

func (e *timeoutError) Error() string {
	if errors.Is(e.err, context.DeadlineExceeded) && e.budget > 0 {
		return "timed out after " + roundBudget(e.budget).String()
	}
	return "stopped: " + e.err.Error()
}

func (e *timeoutError) Unwrap() error { return e.err }

// roundBudget rounds a deadline's budget for messages: whole seconds from
// a second on, hundredths below (the budget is measured as the command
// starts, a little after the deadline was set).
func roundBudget(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// limitedBuffer keeps the first max bytes written to it and counts the
// rest.
type limitedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := l.max - l.buf.Len()
	if room < len(p) {
		l.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	l.buf.Write(p)
	return n, nil
}

func (l *limitedBuffer) String() string {
	if l.dropped == 0 {
		return l.buf.String()
	}
	return fmt.Sprintf("%s ... (%d bytes more)", l.buf.String(), l.dropped)
}

// CommandError is a Slurm command that failed. It unwraps to
// backend.ErrUnavailable when the command could not reach the controller
// (or could not run at all, or did not answer in time), so callers retry
// instead of giving up.
type CommandError struct {
	Command string
	Args    []string
	Stderr  string
	Err     error
}

// maxStderrInError bounds how much of the command's standard error its
// message repeats (the message reaches logs, events and fleet show).
const maxStderrInError = 300

func (e *CommandError) Error() string {
	cmd := e.Command
	if len(e.Args) > 0 && !strings.HasPrefix(e.Args[0], "-") {
		cmd += " " + e.Args[0] // "scontrol ping", "sacctmgr show"
	}
	stderr := e.Stderr
	if len(stderr) > maxStderrInError {
		stderr = stderr[:maxStderrInError] + "..."
	}
	var te *timeoutError
	switch {
	case errors.As(e.Err, &te) && stderr != "":
		return cmd + ": " + te.Error() + ": " + stderr
	case errors.As(e.Err, &te):
		return cmd + ": " + te.Error()
	case stderr != "":
		return e.Command + ": " + stderr
	}
	return e.Command + ": " + e.Err.Error()
}

// Unwrap returns the exec error and, for failures to reach Slurm,
// backend.ErrUnavailable.
func (e *CommandError) Unwrap() []error {
	errs := []error{e.Err}
	if e.unavailable() {
		errs = append(errs, backend.ErrUnavailable)
	}
	return errs
}

func (e *CommandError) unavailable() bool {
	var ee *exec.Error
	if errors.As(e.Err, &ee) || errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) {
		return true
	}
	s := strings.ToLower(e.Stderr)
	for _, m := range []string{
		"unable to contact slurm controller", "connection refused", "socket timed out",
		"slurm_persist_conn_open", "unable to establish", "communications connection failure",
		"zero bytes were transmitted", "slurmdbd", "temporarily unavailable", "cannot stat file",
	} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
