package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jobsDir is a directory that jobs of every team can write (1777 right
// under the temporary directory, every ancestor traversable): a server that
// runs as root runs local jobs under per-team uids, which cannot reach a
// path below t.TempDir() (0700) nor write a root-owned file.
func jobsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpubroker-e2e-jobs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHostileIsolation: a member of team alpha runs a job on the local
// backend of a real server (run as root, as in CI) that tries to read the
// admin token, the SQLite store, team beta's running job (its work
// directory, log, record and environment), the server's environment and
// its own parent's. Every read is refused, no secret reaches alpha's log,
// and nothing of the server's environment (a canary) reaches the job's.
func TestHostileIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts a server; skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal("job isolation needs the server to run as root (GPUBROKER_REQUIRE_ENGINES=1)")
		}
		t.Skip("job isolation needs the server to run as root: run this test as root")
	}
	bin := binary(t)
	// A state directory every uid can reach by path, as a real one
	// (/var/lib/gpubroker) is: a refusal then comes from the modes of the
	// files themselves, not from an ancestor's.
	dir, err := os.MkdirTemp("", "gpubroker-e2e-iso-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const canary = "canary-7f3e91"
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "server", "--state-dir", dir, "--listen", strings.TrimPrefix(url, "http://"), "--round", "100ms")
	srv.Env = cleanEnv("GPUBROKER_TEST_CANARY=" + canary)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", readFile(logPath))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !healthy(url); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer within 30s; log:\n%s", readFile(logPath))
		}
	}
	adminToken, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admin := &api{url: url, token: strings.TrimSpace(string(adminToken)), hc: &http.Client{Timeout: 10 * time.Second}}
	fleet := `clusters:
  - {name: box, provider: onprem, region: r, backend: local,
     pools: [{name: p, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]}
teams:
  - {name: alpha, quota: {H100: 2}}
  - {name: beta, quota: {H100: 2}}
`
	if err := admin.do(ctx, http.MethodPut, "/v1/fleet", map[string]string{"fleet": fleet}, nil); err != nil {
		t.Fatalf("apply fleet: %v", err)
	}
	member := func(team string) *api {
		var out struct {
			Token string `json:"token"`
		}
		if err := admin.do(ctx, http.MethodPost, "/v1/tokens", map[string]string{"team": team, "role": "member", "name": "isolation e2e"}, &out); err != nil {
			t.Fatalf("token for %s: %v", team, err)
		}
		return &api{url: url, token: out.Token, hc: admin.hc}
	}
	alpha, beta := member("alpha"), member("beta")
	submit := func(a *api, spec string) int64 {
		var out struct {
			Jobs []job `json:"jobs"`
		}
		if err := a.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec}, &out); err != nil {
			t.Fatalf("submit: %v\n%s", err, spec)
		}
		return out.Jobs[0].ID
	}
	logs := func(a *api, id int64) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/jobs/%d/logs", url, id), nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := a.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	state := func(id int64) job {
		var j job
		if err := admin.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j); err != nil {
			t.Fatal(err)
		}
		return j
	}

	// Team beta's job: a secret file in its work directory, a secret in
	// its environment, and it stays running.
	betaID := submit(beta, `name: beta-secret
resources:
  accelerators: H100:1
envs:
  BETA_TOKEN: beta-env-secret-52
run: |
  echo beta-file-secret-52 > secret.txt
  echo "HOME=$HOME"
  echo "PID=$$"
  echo ready
  sleep 120
`)
	t.Cleanup(func() {
		admin.do(context.Background(), http.MethodPost, fmt.Sprintf("/v1/jobs/%d/cancel", betaID), map[string]string{}, nil)
		// The job outlives the server: wait until it is gone.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var j job
			if err := admin.do(context.Background(), http.MethodGet, fmt.Sprintf("/v1/jobs/%d", betaID), nil, &j); err != nil || terminal(j.State) {
				break
			}
		}
	})
	var betaHome, betaPID string
	waitFor(t, ctx, "beta's job running and ready", func() (bool, string) {
		out := logs(admin, betaID)
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "HOME="); ok {
				betaHome = v
			}
			if v, ok := strings.CutPrefix(l, "PID="); ok {
				betaPID = v
			}
		}
		return strings.Contains(out, "ready\n"), fmt.Sprintf("%s: %q", state(betaID).State, out)
	})
	if data, err := os.ReadFile(filepath.Join(betaHome, "secret.txt")); err != nil || !strings.Contains(string(data), "beta-file-secret-52") {
		t.Fatalf("beta's secret file: %q, %v; without it the test proves nothing", data, err)
	}
	if data, _ := os.ReadFile("/proc/" + strconv.Itoa(srv.Process.Pid) + "/environ"); !strings.Contains(string(data), canary) {
		t.Fatalf("the server's environment lacks the canary; without it the test proves nothing")
	}
	betaDir := filepath.Dir(betaHome)
	targets := []struct{ name, cmd string }{
		{"admin-token", "cat " + filepath.Join(dir, "admin.token")},
		{"db", "head -c 64 " + filepath.Join(dir, "gpubroker.db")},
		{"db-wal", "head -c 64 " + filepath.Join(dir, "gpubroker.db-wal")},
		{"db-shm", "head -c 64 " + filepath.Join(dir, "gpubroker.db-shm")},
		{"server-log", "cat " + logPath},
		{"state-dir", "ls " + dir},
		{"local-dir", "ls " + filepath.Join(dir, "local")},
		{"cluster-dir", "ls " + filepath.Join(dir, "local", "box")},
		{"uid-table", "cat " + filepath.Join(dir, "local", "uids.json")},
		{"beta-work", "ls " + betaHome},
		{"beta-secret", "cat " + filepath.Join(betaHome, "secret.txt")},
		{"beta-attempt", "ls " + betaDir},
		{"beta-record", "cat " + filepath.Join(betaDir, "spec.json")},
		{"beta-log", "cat " + filepath.Join(betaDir, "node-0.log")},
		{"beta-script", "cat " + filepath.Join(betaDir, "run.sh")},
		{"beta-environ", "cat /proc/" + betaPID + "/environ"},
		{"server-environ", "cat /proc/" + strconv.Itoa(srv.Process.Pid) + "/environ"},
		{"parent-environ", "cat /proc/$PPID/environ"},
	}
	var script strings.Builder
	script.WriteString("echo home-ok > \"$HOME/mine\" && cat \"$HOME/mine\"\n")
	script.WriteString("echo \"ENV: $(env | grep -c " + canary + ")\"\n")
	for _, tg := range targets {
		fmt.Fprintf(&script, "if out=$(%s 2>&1); then echo \"READ %s: $out\"; else echo \"DENIED %s: $out\"; fi\n", tg.cmd, tg.name, tg.name)
	}
	alphaID := submit(alpha, "name: alpha-snoop\nresources:\n  accelerators: H100:1\nrun: |\n"+indent(script.String(), "  "))
	waitFor(t, ctx, "alpha's job to end", func() (bool, string) {
		j := state(alphaID)
		return terminal(j.State), j.State + " " + j.Reason
	})
	if j := state(alphaID); j.State != "SUCCEEDED" {
		t.Errorf("alpha's job %s (%s), want SUCCEEDED", j.State, j.Reason)
	}
	out := logs(alpha, alphaID)
	t.Logf("alpha's job:\n%s", out)
	for _, secret := range []string{strings.TrimSpace(string(adminToken)), "SQLite format", "beta-file-secret-52", "beta-env-secret-52", "BETA_TOKEN", canary} {
		if strings.Contains(out, secret) {
			t.Errorf("alpha's job read %q", secret)
		}
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			lines[k] = v
		}
	}
	for _, tg := range targets {
		if v, ok := lines["DENIED "+tg.name]; !ok || !strings.Contains(v, "Permission denied") {
			t.Errorf("%s (%s) was not refused: %q", tg.name, tg.cmd, lines["READ "+tg.name]+v)
		}
	}
	if lines["ENV"] != "0" {
		t.Errorf("the job's environment has the server's canary (%q)", lines["ENV"])
	}
	if !strings.Contains(out, "home-ok\n") {
		t.Errorf("alpha's job could not use its own HOME")
	}
}
