package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAutostart is the README's first command on a fresh machine: with an
// empty state directory, `gpubroker launch examples/hello.yaml` starts a
// local server, runs the job and prints its output; `status -o json` then
// shows it SUCCEEDED, and `server stop` stops the server.
func TestAutostart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts a server; skipped with -short")
	}
	bin := binary(t)
	dir := t.TempDir()
	env := cleanEnv("GPUBROKER_STATE_DIR=" + dir)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = repoRoot
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	// Whatever happens, the background server goes away with the test.
	t.Cleanup(func() {
		if p, err := os.ReadFile(filepath.Join(dir, "server.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(p))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	stdout, stderr, err := run("launch", "examples/hello.yaml")
	if err != nil {
		t.Fatalf("launch: %v\nstdout:\n%s\nstderr:\n%s\nserver log:\n%s", err, stdout, stderr, readFile(filepath.Join(dir, "server.log")))
	}
	t.Logf("launch stdout:\n%sstderr:\n%s", stdout, stderr)
	for _, want := range []string{"submitted job 1 (hello)", "hello from gpubroker on ", "job 1 (hello) SUCCEEDED"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("launch stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "started a local gpubroker server (SQLite + local backend) at http://") {
		t.Errorf("launch stderr does not say it started a server")
	}

	stdout, stderr, err = run("status", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	var st struct {
		Jobs []job `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, stdout)
	}
	if len(st.Jobs) != 1 || st.Jobs[0].State != "SUCCEEDED" || st.Jobs[0].Workload.Name != "hello" {
		t.Errorf("status: %+v, want one job hello SUCCEEDED", st.Jobs)
	}
	stdout, _, _ = run("status")
	t.Logf("status:\n%s", stdout)

	// A second launch reuses the running server: no second start.
	stdout, stderr, err = run("launch", "examples/hello.yaml", "--detach")
	if err != nil || strings.Contains(stderr, "started a local") || !strings.Contains(stdout, "submitted job 2 (hello)") {
		t.Errorf("second launch: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}

	stdout, stderr, err = run("server", "stop")
	if err != nil || !strings.Contains(stdout, "stopped the gpubroker server") {
		t.Fatalf("server stop: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	for _, f := range []string{"server.url", "server.pid"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s left behind after server stop", f)
		}
	}
	// Stopped means stopped: status now says no server answers.
	time.Sleep(100 * time.Millisecond)
	if _, stderr, err := run("status"); err == nil || !strings.Contains(stderr, "no gpubroker server") {
		t.Errorf("status after stop: err %v, stderr %q", err, stderr)
	}
}
