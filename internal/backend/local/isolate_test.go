package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// needRoot skips a test that runs jobs under other uids when this process
// cannot, and fails it instead under GPUBROKER_REQUIRE_ENGINES=1 (CI runs
// as root).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
		t.Fatal("job isolation needs root (GPUBROKER_REQUIRE_ENGINES=1)")
	}
	t.Skip("job isolation needs root: jobs run under per-team uids")
}

// reachableDir is a directory that every uid can traverse to (0711 below
// /tmp), unlike t.TempDir's, so that a denied read says something about
// the file read and not about its ancestors.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpubroker-iso-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func logsOf(t *testing.T, b *Backend, name string) string {
	t.Helper()
	r, err := b.Logs(context.Background(), name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	return string(data)
}

// A job's environment is built from scratch: nothing of the broker's
// (here a canary) reaches it, whoever the broker runs as.
func TestJobEnvIsScrubbed(t *testing.T) {
	t.Setenv("GPUBROKER_TEST_CANARY", "canary-value-3141")
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(1, `env; echo "PWD=$(pwd -P)"; cat /proc/$PPID/environ | tr '\0' '\n' | grep -c CANARY || true`)
	sp.Envs = map[string]string{"TASK_VAR": "task value"}
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	if st, _ := waitEnded(t, b, sp.Name, 10*time.Second); st.Phase != backend.PhaseSucceeded {
		t.Fatalf("%+v, want Succeeded", st)
	}
	out := logsOf(t, b, sp.Name)
	if strings.Contains(out, "canary-value-3141") {
		t.Errorf("the broker's environment reached the job:\n%s", out)
	}
	work := filepath.Join(dir, sp.Name, workDir)
	work, _ = filepath.EvalSymlinks(work)
	for _, want := range []string{"PATH=" + jobPath, "HOME=" + filepath.Join(b.dir, sp.Name, workDir), "PWD=" + work, "TASK_VAR=task value", "GPUBROKER_JOB_ID=1", "SKYPILOT_TASK_ID=" + sp.Name} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("job environment lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		k, _, ok := strings.Cut(line, "=")
		if !ok || k == "PWD" || k == "SHLVL" || k == "_" || k == "OLDPWD" {
			continue
		}
		if !strings.HasPrefix(k, "GPUBROKER_") && !strings.HasPrefix(k, "SKYPILOT_") &&
			k != "PATH" && k != "HOME" && k != "TASK_VAR" && k != "CUDA_VISIBLE_DEVICES" {
			t.Errorf("job environment has %q, which neither the task nor the backend set", line)
		}
	}
}

// Each team gets an id of its own from the range, the same one again
// (from the table, across Backends), and an error naming the fix once the
// range is full.
func TestTeamIDs(t *testing.T) {
	table := filepath.Join(t.TempDir(), "uids.json")
	iso := &Isolation{UIDBase: 5000, UIDCount: 2, Table: table}
	if err := iso.check(); err != nil {
		t.Fatal(err)
	}
	a, err := iso.teamID("alpha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := iso.teamID("beta")
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a < 5000 || a > 5001 || b < 5000 || b > 5001 {
		t.Errorf("alpha %d, beta %d: want two different ids in [5000, 5002)", a, b)
	}
	again := &Isolation{UIDBase: 5000, UIDCount: 2, Table: table}
	if a2, err := again.teamID("alpha"); err != nil || a2 != a {
		t.Errorf("alpha again: %d, %v; want %d", a2, err, a)
	}
	if _, err := again.teamID("gamma"); err == nil || !strings.Contains(err.Error(), "GPUBROKER_LOCAL_UID_COUNT") {
		t.Errorf("a third team in a range of 2: %v, want an error naming GPUBROKER_LOCAL_UID_COUNT", err)
	}
	moved := &Isolation{UIDBase: 9000, UIDCount: 10, Table: table}
	if _, err := moved.teamID("alpha"); err == nil || !strings.Contains(err.Error(), "outside the range") {
		t.Errorf("alpha after the range moved: %v, want an error", err)
	}
	fi, err := os.Stat(table)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("table: %v, %v; want mode 0600", fi.Mode(), err)
	}
}

func TestIsolationFromEnv(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if iso, err := IsolationFromEnv(getenv, 1000, "t"); iso != nil || err != nil {
		t.Errorf("not root: %+v, %v; want none", iso, err)
	}
	iso, err := IsolationFromEnv(getenv, 0, "t")
	if err != nil || iso.UIDBase != DefaultUIDBase || iso.UIDCount != DefaultUIDCount {
		t.Errorf("root: %+v, %v; want the default range", iso, err)
	}
	env["GPUBROKER_LOCAL_UID_BASE"] = "300000"
	if iso, err := IsolationFromEnv(getenv, 0, "t"); err != nil || iso.UIDBase != 300000 {
		t.Errorf("base 300000: %+v, %v", iso, err)
	}
	for _, bad := range []string{"x", "-5", "10", "2147483000"} {
		env["GPUBROKER_LOCAL_UID_BASE"] = bad
		if _, err := IsolationFromEnv(getenv, 0, "t"); err == nil || !strings.Contains(err.Error(), "GPUBROKER_LOCAL_UID_BASE") {
			t.Errorf("base %q: %v, want an error naming GPUBROKER_LOCAL_UID_BASE", bad, err)
		}
	}
}

func isolatedBackend(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := New(dir, Options{Hostname: "testhost", GPUs: 2, Grace: time.Second, LogPoll: 20 * time.Millisecond,
		Isolation: &Isolation{UIDBase: 3_000_000, UIDCount: 1000, Table: filepath.Join(filepath.Dir(dir), "uids.json")}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Team alpha's job runs under another uid than team beta's and cannot
// read beta's work directory, scripts, record, log or environment, while
// it can use its own HOME by path.
func TestIsolatedTeams(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(reachableDir(t), "local")
	b := isolatedBackend(t, dir)
	ctx := context.Background()

	beta := spec(1, `echo "UID=$(id -u)"; echo beta-file-secret > secret.txt; echo "PID=$$"; sleep 30`)
	beta.Team, beta.Envs = "beta", map[string]string{"BETA_TOKEN": "beta-env-secret"}
	if err := b.Submit(ctx, beta); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Forget(ctx, beta.Name) })
	var pid string
	deadline := time.Now().Add(10 * time.Second)
	for pid == "" {
		if time.Now().After(deadline) {
			t.Fatalf("beta did not start: %q", logsOf(t, b, beta.Name))
		}
		time.Sleep(20 * time.Millisecond)
		for _, l := range strings.Split(logsOf(t, b, beta.Name), "\n") {
			if v, ok := strings.CutPrefix(l, "PID="); ok {
				pid = v
			}
		}
	}
	badir := filepath.Join(dir, beta.Name)
	if data, err := os.ReadFile(filepath.Join(badir, workDir, "secret.txt")); err != nil || string(data) != "beta-file-secret\n" {
		t.Fatalf("beta's secret: %q, %v; want it written (else the test below proves nothing)", data, err)
	}
	targets := map[string]string{
		"work":     filepath.Join(badir, workDir, "secret.txt"),
		"workls":   filepath.Join(badir, workDir),
		"attempt":  badir,
		"record":   filepath.Join(badir, "spec.json"),
		"log":      filepath.Join(badir, "node-0.log"),
		"script":   filepath.Join(badir, "run.sh"),
		"environ":  "/proc/" + pid + "/environ",
		"broker":   "/proc/" + strconv.Itoa(os.Getpid()) + "/environ",
		"wrapper":  "/proc/$PPID/environ",
		"uidtable": filepath.Join(filepath.Dir(dir), "uids.json"),
	}
	var script strings.Builder
	script.WriteString("echo \"UID=$(id -u)\"\necho home-ok > \"$HOME/mine\" && cat \"$HOME/mine\"\n")
	for name, p := range targets {
		cmd := "cat"
		if strings.HasSuffix(name, "ls") || name == "attempt" {
			cmd = "ls"
		}
		fmt.Fprintf(&script, "if out=$(%s %s 2>&1); then echo \"READ %s: $out\"; else echo \"DENIED %s: $out\"; fi\n", cmd, p, name, name)
	}
	alpha := spec(2, script.String())
	alpha.Team = "alpha"
	if err := b.Submit(ctx, alpha); err != nil {
		t.Fatal(err)
	}
	if st, _ := waitEnded(t, b, alpha.Name, 10*time.Second); st.Phase != backend.PhaseSucceeded {
		t.Fatalf("alpha %+v\n%s", st, logsOf(t, b, alpha.Name))
	}
	out := logsOf(t, b, alpha.Name)
	t.Logf("alpha's job:\n%s", out)
	for _, secret := range []string{"beta-file-secret", "beta-env-secret", "BETA_TOKEN"} {
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
	for name, p := range targets {
		if v, ok := lines["DENIED "+name]; !ok || !strings.Contains(v, "Permission denied") {
			t.Errorf("alpha's job was not denied %s (%s): %q", name, p, v)
		}
	}
	if !strings.Contains(out, "home-ok") {
		t.Errorf("alpha's job could not use its own HOME by path")
	}
	uid := func(log string) string {
		for _, l := range strings.Split(log, "\n") {
			if v, ok := strings.CutPrefix(l, "UID="); ok {
				return v
			}
		}
		return ""
	}
	if a, bu := uid(out), uid(logsOf(t, b, beta.Name)); a == "" || a == "0" || bu == "" || bu == "0" || a == bu {
		t.Errorf("alpha ran as uid %q, beta as %q: want two different uids, neither root", a, bu)
	}
}

// An isolated job is found again by a restarted broker and stopped by
// Cancel across the uid change (the broker, root, signals the group),
// SIGKILL included for a job that ignores SIGTERM.
func TestIsolatedCancelAfterRestart(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sp := spec(3, `trap '' TERM; echo ready; while :; do sleep 0.1; done`)
	sp.Team = "alpha"
	if err := isolatedBackend(t, dir).Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	b := isolatedBackend(t, dir)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logsOf(t, b, sp.Name), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %q", logsOf(t, b, sp.Name))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := status(t, b, sp.Name); st.Phase != backend.PhaseRunning {
		t.Fatalf("after restart: %+v, want Running", st)
	}
	if err := b.Cancel(context.Background(), sp.Name); err != nil {
		t.Fatal(err)
	}
	st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
	if st.Phase != backend.PhaseFailed || st.Message != "cancelled" {
		t.Fatalf("%+v, want Failed (cancelled)", st)
	}
	if err := b.Forget(context.Background(), sp.Name); err != nil {
		t.Fatalf("Forget (removes the team-owned work directory): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sp.Name)); !os.IsNotExist(err) {
		t.Errorf("attempt directory after Forget: %v", err)
	}
}

// BenchmarkJob is one one-node job from Submit to Succeeded, as the
// broker's user and (root only) under the team's uid: the cost of
// isolation per job is the difference.
func BenchmarkJob(b *testing.B) {
	for _, isolated := range []bool{false, true} {
		b.Run(fmt.Sprintf("isolated=%v", isolated), func(b *testing.B) {
			if isolated && os.Geteuid() != 0 {
				b.Skip("needs root")
			}
			dir := b.TempDir()
			opts := Options{Hostname: "testhost", GPUs: 2, LogPoll: 5 * time.Millisecond}
			if isolated {
				opts.Isolation = &Isolation{UIDBase: 3_000_000, UIDCount: 1000}
			}
			be, err := New(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				sp := spec(int64(i+1), "true")
				sp.Team = "alpha"
				if err := be.Submit(ctx, sp); err != nil {
					b.Fatal(err)
				}
				for {
					all, err := be.Observe(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if st := all[len(all)-1]; st.Phase == backend.PhaseSucceeded {
						break
					} else if st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning {
						b.Fatalf("%+v", st)
					}
					time.Sleep(time.Millisecond)
				}
				if err := be.Forget(ctx, sp.Name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An isolated job changes to the spec's Workdir as the team's uid: it
// starts there when it may, and fails, saying why, when it may not.
func TestIsolatedWorkdir(t *testing.T) {
	needRoot(t)
	base := reachableDir(t)
	b := isolatedBackend(t, filepath.Join(base, "local"))
	open, closed := filepath.Join(base, "open"), filepath.Join(base, "closed")
	for d, mode := range map[string]os.FileMode{open: 0o755, closed: 0o700} {
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		workdir string
		phase   backend.Phase
		want    string
	}{
		{open, backend.PhaseSucceeded, "PWD=" + open},
		{closed, backend.PhaseFailed, "Permission denied"},
	} {
		sp := spec(int64(10+i), `echo "PWD=$(pwd -P)"`)
		sp.Team, sp.Workdir = "alpha", tc.workdir
		if err := b.Submit(context.Background(), sp); err != nil {
			t.Fatal(err)
		}
		st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
		if out := logsOf(t, b, sp.Name); st.Phase != tc.phase || !strings.Contains(out, tc.want) {
			t.Errorf("workdir %s: %s, %q; want %s and %q", tc.workdir, st.Phase, out, tc.phase, tc.want)
		}
	}
}
