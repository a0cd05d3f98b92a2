package slurm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// A command that hangs (here a script whose child sleeps and ignores
// SIGTERM, as scontrol does on a dead controller) is killed with its whole
// process group at the deadline: Run returns, the error says it timed out
// and what it wrote on stderr, and no process is left behind.
func TestCommandRunnerKillsAHungCommandAtTheDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := filepath.Join(dir, "scontrol")
	body := "#!/bin/sh\necho 'error: cannot reach slurmctld, retrying' >&2\n" +
		"sh -c 'trap \"\" TERM; echo $$ > " + pidFile + "; exec sleep 1000000' &\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := CommandRunner("")(ctx, script, "ping")
	t.Logf("returned after %s", time.Since(start))
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a CommandError that is ErrUnavailable and DeadlineExceeded", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "ping: timed out after 2s") || !strings.Contains(msg, "cannot reach slurmctld") {
		t.Errorf("message %q: want the command, its deadline and its stderr", msg)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the child never started: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d still alive after the deadline", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stderr kept in an error is bounded.
func TestLimitedBuffer(t *testing.T) {
	t.Parallel()
	l := &limitedBuffer{max: 4}
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := l.String(), "abcd ... (4 bytes more)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// alive: pid names a process that has not exited (a zombie, not reaped
// yet by an init that does not reap, has).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}
