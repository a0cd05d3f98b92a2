package slurm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"

	"gpubroker/internal/backend"
)

// Runner runs one Slurm command (sbatch, squeue, ...) and returns its
// standard output. An error for a non-zero exit should carry the command's
// standard error, as CommandRunner's does. Tests inject one to count or
// rewrite commands; production uses CommandRunner.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// CommandRunner runs the real commands with SLURM_CONF=conf (when conf is
// not empty) added to the broker's environment; jobs submitted through it
// inherit that environment (sbatch --export=ALL).
func CommandRunner(conf string) Runner {
	env := os.Environ()
	if conf != "" {
		env = append(env, "SLURM_CONF="+conf)
	}
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		cmd.Dir = "/"
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.Bytes(), &CommandError{
				Command: name, Args: args,
				Stderr: strings.TrimSpace(stderr.String()), Err: err,
			}
		}
		return stdout.Bytes(), nil
	}
}

// CommandError is a Slurm command that failed. It unwraps to
// backend.ErrUnavailable when the command could not reach the controller
// (or could not run at all), so callers retry instead of giving up.
type CommandError struct {
	Command string
	Args    []string
	Stderr  string
	Err     error
}

func (e *CommandError) Error() string {
	msg := e.Stderr
	if msg == "" {
		msg = e.Err.Error()
	}
	return e.Command + ": " + msg
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
	if errors.As(e.Err, &ee) || errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	s := strings.ToLower(e.Stderr)
	for _, m := range []string{
		"unable to contact slurm controller", "connection refused", "socket timed out",
		"slurm_persist_conn_open", "unable to establish", "communications connection failure",
		"zero bytes were transmitted", "slurmdbd", "temporarily unavailable",
	} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
