package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The leader-failover test (issue 21): two `gpubroker server` processes on
// one PostgreSQL database, each with its own state directory, a fleet of
// local clusters, 60 jobs running, and the leader killed with SIGKILL. The
// local processes outlive their server (they run in sessions of their own);
// the new leader, on the same host, must adopt them from the dead leader's
// local records rather than declare them lost: no job runs twice, none is
// lost, every one succeeds.

const (
	hfJobs = 60
	// hfShort jobs end right after the leader is killed (release-short),
	// while no server leads (the dead leader's lease runs out first): the
	// new leader must see them finished. The others wait for the release
	// file, written once the new leader leads.
	hfShort = 20
)

// hfScript appends one start line per run to the job's own file in the
// shared directory, then waits for its release file.
const hfScript = `echo "start $GPUBROKER_ATTEMPT $$" >> %[1]s/job-$GPUBROKER_JOB_ID
r=release; [ "$GPUBROKER_JOB_ID" -le %[2]d ] && r=release-short
while [ ! -e %[1]s/$r ]; do sleep 0.2; done
`

// freshDatabase creates an empty PostgreSQL database for one test, dropped
// when the test ends (after the servers registered later have stopped),
// and returns its URL. It skips the test when DATABASE_URL is unset, and
// fails instead under GPUBROKER_REQUIRE_ENGINES=1.
func freshDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		const msg = "PostgreSQL not running; start it with scripts/engines/pg-up.sh and source $PG_CI_DIR/env.sh"
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
		}
		t.Skip(msg)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		t.Fatalf("DATABASE_URL %q: want a postgres:// URL (%v)", base, err)
	}
	admin, err := pgxpool.New(context.Background(), base)
	if err != nil {
		t.Fatalf("connect to DATABASE_URL: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "gpub_hf_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func TestHostileLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("the leader-failover test runs two servers and 60 jobs; skipped with -short")
	}
	db := freshDatabase(t)
	bin := binary(t)
	root := t.TempDir()
	// Under root the jobs run as their team's uid (docs/local.md): the
	// files they share with the test live in a directory they can reach.
	shared := jobsDir(t)
	started := time.Now()
	// Stop every job still waiting whatever happens to the test.
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(shared, "release-short"), nil, 0o644)
		os.WriteFile(filepath.Join(shared, "release"), nil, 0o644)
	})

	urlA := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	urlB := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{dirA, dirB} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	args := func(u string) []string {
		return []string{"--store", db, "--listen", strings.TrimPrefix(u, "http://"), "--round", "200ms", "--cluster-timeout", "3s"}
	}
	srvA := newServerProc(t, bin, dirA, args(urlA)...)
	srvB := newServerProc(t, bin, dirB, args(urlB)...)
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []string{dirA, dirB} {
				logs, _ := filepath.Glob(filepath.Join(d, "server-*.log"))
				for _, l := range logs {
					t.Logf("%s:\n%s", l, tail(readFile(l), 60))
				}
			}
		}
	})
	srvA.start(urlA)
	token, err := os.ReadFile(filepath.Join(dirA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{url: urlA, token: strings.TrimSpace(string(token)), hc: &http.Client{Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()

	fleet := `clusters:
  - name: box-1
    provider: onprem
    region: dc1
    backend: local
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 4, price_class: committed}]
  - name: box-2
    provider: onprem
    region: dc1
    backend: local
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 4, price_class: committed}]
`
	if err := a.do(ctx, http.MethodPut, "/v1/fleet", map[string]string{"fleet": fleet}, nil); err != nil {
		t.Fatalf("apply fleet: %v", err)
	}
	for i := range hfJobs {
		spec := fmt.Sprintf("name: hf-%02d\nresources:\n  accelerators: H100:1\nrun: |\n%s", i,
			indent(fmt.Sprintf(hfScript, shared, hfShort), "  "))
		if err := a.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec, "key": fmt.Sprintf("hf-%02d", i)}, nil); err != nil {
			t.Fatalf("submit hf-%02d: %v", i, err)
		}
	}
	// A is the leader: B is not up yet.
	waitFor(t, ctx, "every job running under server A", func() (bool, string) {
		return countState(t, ctx, a, "RUNNING") == hfJobs, summary(t, ctx, a)
	})
	srvB.start(urlB)
	b := &api{url: urlB, token: a.token, hc: a.hc}
	time.Sleep(time.Second) // a few of B's rounds as a follower
	srvA.kill()
	killed := time.Now()
	t.Logf("%.1fs: killed the leader (server A) with %d jobs running", killed.Sub(started).Seconds(), hfJobs)
	if err := os.WriteFile(filepath.Join(shared, "release-short"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// The short jobs end without a leader; the new one must record them
	// as they ended, not lost.
	waitFor(t, ctx, "the short jobs to succeed under server B", func() (bool, string) {
		return countState(t, ctx, b, "SUCCEEDED") >= hfShort, summary(t, ctx, b)
	})
	t.Logf("%.1fs: server B leads (%.1fs after the kill)", time.Since(started).Seconds(), time.Since(killed).Seconds())
	if err := os.WriteFile(filepath.Join(shared, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "every job to succeed", func() (bool, string) {
		return countState(t, ctx, b, "SUCCEEDED") == hfJobs, summary(t, ctx, b)
	})
	t.Logf("%.1fs: every job succeeded (%.1fs after the kill)", time.Since(started).Seconds(), time.Since(killed).Seconds())

	jobs, err := b.allJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost, twice := 0, 0
	for _, j := range jobs {
		if j.Attempt != 1 {
			lost++
			t.Errorf("job %d (%s) is at attempt %d, want 1 (reason %q)", j.ID, j.Workload.Name, j.Attempt, j.Reason)
		}
		data := readFile(filepath.Join(shared, fmt.Sprintf("job-%d", j.ID)))
		if n := strings.Count(data, "start "); n != 1 {
			twice++
			t.Errorf("job %d (%s) started %d times, want 1:\n%s", j.ID, j.Workload.Name, n, data)
		}
	}
	t.Logf("%d jobs: %d retried as a new attempt, %d started more than once", len(jobs), lost, twice)
}

// countState counts the jobs in state st (0 while the server does not
// answer).
func countState(t *testing.T, ctx context.Context, a *api, st string) int {
	jobs, err := a.allJobs(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, j := range jobs {
		if j.State == st {
			n++
		}
	}
	return n
}

// summary is how many jobs are in each state and attempt.
func summary(t *testing.T, ctx context.Context, a *api) string {
	jobs, err := a.allJobs(ctx)
	if err != nil {
		return err.Error()
	}
	by := map[string]int{}
	for _, j := range jobs {
		by[fmt.Sprintf("%s@%d", j.State, j.Attempt)]++
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%d", k, by[k]))
	}
	return strings.Join(out, " ")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
