package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileClustersFleet: a local cluster beside two broken Slurm clusters:
// "noconf", whose slurm.conf does not exist (every Slurm command retries
// it for a minute), and "hung", whose controller never answers (the
// scontrol on the server's PATH sleeps for ever, ignoring SIGTERM).
const hostileClustersFleet = `
clusters:
  - name: box
    provider: onprem
    region: lab
    backend: local
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed, price_per_gpu_hour: 9}
  - name: noconf
    provider: onprem
    region: lab
    backend: slurm
    slurm: {conf: %[1]s/missing/slurm.conf, dir: %[1]s/noconf}
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed, price_per_gpu_hour: 1}
  - name: hung
    provider: onprem
    region: lab
    backend: slurm
    slurm: {conf: %[1]s/slurm.conf, dir: %[1]s/hung}
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed, price_per_gpu_hour: 1}
`

// hangingSlurmCommand is every Slurm command of the "hung" cluster: it
// writes what scontrol writes on a dead controller, then waits for ever
// on a child that ignores SIGTERM.
const hangingSlurmCommand = `#!/bin/sh
echo "error: slurm_receive_msg: Socket timed out on send/recv operation (retrying)" >&2
sh -c 'trap "" TERM; exec sleep 1000000' &
wait
`

// One cluster cannot slow another (issue 21): with a Slurm cluster whose
// controller hangs and one whose slurm.conf is missing, a one-GPU echo on
// the local cluster beside them succeeds within 10 s of its submission
// (the Slurm clusters are cheaper, so only their health keeps it off
// them), and fleet show says each Slurm cluster is UNHEALTHY and why.
func TestHostileHungSlurmCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server; skipped with -short")
	}
	bin := binary(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "fakebin")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"scontrol", "sinfo", "squeue", "sacct", "sbatch", "scancel"} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(hangingSlurmCommand), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "slurm.conf"), []byte("ClusterName=hung\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The server (started without t.Parallel, so no other test sees it)
	// finds the fake Slurm commands first.
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))

	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// A hung command still running when the server stops outlives it
	// (its deadline had not come): end them all after the server.
	t.Cleanup(func() { exec.Command("pkill", "-9", "-f", fake).Run() })
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	srv := newServerProc(t, bin, state, "--listen", strings.TrimPrefix(url, "http://"), "--round", "1s")
	srv.start(url)
	token, err := os.ReadFile(filepath.Join(state, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{url: url, token: strings.TrimSpace(string(token)), hc: &http.Client{Timeout: 10 * time.Second}}
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--server", url, "--token", a.token)...)
		cmd.Env = cleanEnv()
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpubroker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	fleetFile := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleetFile, []byte(fmt.Sprintf(hostileClustersFleet, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	cli("fleet", "apply", fleetFile)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	submitted := time.Now()
	var out struct {
		Jobs []job `json:"jobs"`
	}
	spec := "name: hello\nresources:\n  accelerators: H100:1\nrun: echo hello from box\n"
	if err := a.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec}, &out); err != nil || len(out.Jobs) != 1 {
		t.Fatalf("submit: %v %+v", err, out.Jobs)
	}
	id := out.Jobs[0].ID
	for {
		var j job
		if err := a.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j); err != nil {
			t.Fatal(err)
		}
		if j.State == "SUCCEEDED" {
			t.Logf("job %d SUCCEEDED %s after its submission", id, time.Since(submitted).Round(time.Millisecond))
			break
		}
		if terminal(j.State) || time.Since(submitted) > 10*time.Second {
			t.Fatalf("job %d is %s (%s) %s after its submission, want SUCCEEDED within 10s; fleet show:\n%s\nserver log:\n%s",
				id, j.State, j.Reason, time.Since(submitted).Round(time.Millisecond), cli("fleet", "show"), readFile(filepath.Join(state, "server-1.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each Slurm cluster: UNHEALTHY, with its reason, once its check has
	// answered or timed out (the Slurm driver gives a health check 5 s).
	want := map[string]string{
		"noconf": "slurm.conf not found: " + dir + "/missing/slurm.conf",
		"hung":   "scontrol ping: timed out after 5s",
	}
	var show string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		show = cli("fleet", "show")
		ok := true
		for name, why := range want {
			if !strings.Contains(show, "\n"+name+": UNHEALTHY: ") || !strings.Contains(show, why) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet show after 30s, want noconf and hung UNHEALTHY with %q:\n%s", want, show)
		}
	}
	t.Logf("fleet show:\n%s", show)
	for _, line := range strings.Split(show, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		switch f[0] {
		case "box":
			if f[4] != "HEALTHY" {
				t.Errorf("box: %q, want HEALTHY", line)
			}
		case "noconf", "hung":
			if f[4] != "UNHEALTHY" || f[5] == "-" {
				t.Errorf("%s: %q, want UNHEALTHY with when it was checked", f[0], line)
			}
		}
	}
	// The JSON output carries the same (fields added, none renamed).
	js := cli("fleet", "show", "-o", "json")
	for _, s := range []string{`"healthy": false`, `"state": "UNHEALTHY"`, `"checked_at"`, "scontrol ping: timed out after 5s"} {
		if !strings.Contains(js, s) {
			t.Errorf("fleet show -o json lacks %s:\n%s", s, js)
		}
	}
}
