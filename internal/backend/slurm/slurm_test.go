package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/backendtest"
)

// slurmConf finds the cluster scripts/engines/slurm-up.sh started: env
// SLURM_CONF, else the SLURM_CONF that $SLURM_CI_DIR/env.sh exports. It
// skips the test when no controller answers, and fails it instead when
// GPUBROKER_REQUIRE_ENGINES=1.
func slurmConf(t *testing.T) string {
	t.Helper()
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		dir := os.Getenv("SLURM_CI_DIR")
		if dir == "" {
			dir = "/tmp/slurm-ci"
		}
		if data, err := os.ReadFile(filepath.Join(dir, "env.sh")); err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "export SLURM_CONF="); ok {
					conf = strings.Trim(v, `'"`)
				}
			}
		}
	}
	why := ""
	if conf == "" {
		why = "no SLURM_CONF"
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := CommandRunner(conf)(ctx, "scontrol", "ping")
		if err != nil || !pingUp(string(out)) {
			why = "scontrol ping: " + strings.TrimSpace(string(out))
			if err != nil {
				why += " " + err.Error()
			}
		}
	}
	if why != "" {
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatalf("Slurm not running (%s) and GPUBROKER_REQUIRE_ENGINES=1", why)
		}
		t.Skip("Slurm not running; start it with scripts/engines/slurm-up.sh and source $SLURM_CI_DIR/env.sh")
	}
	return conf
}

// counter wraps a Runner and counts the commands run, by name.
type counter struct {
	next Runner
	mu   sync.Mutex
	n    map[string]int
}

func (c *counter) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
	return c.next(ctx, name, args...)
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.n
	c.n = map[string]int{}
	return old
}

func newBackend(t *testing.T, conf, dir string, runner Runner) *Backend {
	t.Helper()
	b, err := New(Options{Conf: conf, Dir: dir, GPUType: "h100", Poll: 200 * time.Millisecond, Runner: runner})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ids atomic.Int64

// testSpec is a one-node, one-GPU spec with a name unique to this run.
func testSpec(run string) backend.Spec {
	id := time.Now().UnixNano()/1e3%1e12*1000 + 900 + ids.Add(1)
	return backend.Spec{
		Name: backend.Name(id, 1), JobID: id, Attempt: 1,
		Nodes: []backend.Node{{GPUs: []int{0}}},
		Run:   run,
	}
}

func statusOf(t *testing.T, b *Backend, name string) (backend.Status, bool) {
	t.Helper()
	all, err := b.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range all {
		if st.Name == name {
			return st, true
		}
	}
	return backend.Status{}, false
}

func waitPhase(t *testing.T, b *Backend, name string, want backend.Phase) backend.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, ok := statusOf(t, b, name)
		if !ok {
			t.Fatalf("%s not observed", name)
		}
		if st.Phase == want {
			return st
		}
		if !active(st.Phase) || time.Now().After(deadline) {
			t.Fatalf("%s: %s (%s), want %s", name, st.Phase, st.Message, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	conf := slurmConf(t)
	b := newBackend(t, conf, t.TempDir(), nil)
	backendtest.Run(t, b, backendtest.Options{
		Timeout:  60 * time.Second,
		Poll:     200 * time.Millisecond,
		MaxNodes: 2,
		// Slurm's GRES picks the devices: the count per node is the
		// broker's, CUDA_VISIBLE_DEVICES is Slurm's.
		GPUs:       []int{0, 1},
		SkipGPUEnv: true,
		LogCap:     true,
		SharedDir:  t.TempDir(),
		Workdir:    t.TempDir(),
	})
}

// A broker restarted on the same directory finds its attempts again, by
// name: it reports them, and a Submit of the same spec starts nothing.
func TestRestartFindsJobsByName(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	dir, shared := t.TempDir(), t.TempDir()
	count := filepath.Join(shared, "count")
	spec := testSpec("echo ran >> " + shellQuote(count) + "; sleep 2")
	ctx := context.Background()

	b1 := newBackend(t, conf, dir, nil)
	if err := b1.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b1.Cancel(ctx, spec.Name) })

	b2 := newBackend(t, conf, dir, nil)
	if st, ok := statusOf(t, b2, spec.Name); !ok || !active(st.Phase) {
		t.Fatalf("restarted backend: %s observed=%v %+v, want it Pending or Running", spec.Name, ok, st)
	}
	for range 3 {
		if err := b2.Submit(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	// A third broker that lost the record too (crash before the record
	// was written) still finds the job by its name.
	if err := os.Remove(filepath.Join(dir, spec.Name, recordFile)); err != nil {
		t.Fatal(err)
	}
	b3 := newBackend(t, conf, dir, nil)
	if err := b3.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, b3, spec.Name, backend.PhaseSucceeded)
	waitPhase(t, b2, spec.Name, backend.PhaseSucceeded)
	data, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "ran\n"); n != 1 {
		t.Errorf("the job ran %d times, want once", n)
	}
	out, err := CommandRunner(conf)(ctx, "sacct", "--noheader", "--parsable2", "--allocations",
		"--starttime=now-1hours", "--name="+spec.Name, "--format=JobIDRaw")
	if err == nil && len(strings.Fields(string(out))) > 1 {
		t.Errorf("sacct lists %d jobs named %s, want 1", len(strings.Fields(string(out))), spec.Name)
	}
}

// A job Slurm or an administrator cancelled is Lost (the broker retries
// it); one the broker cancelled is Failed, also as a restarted broker
// sees it.
func TestCancelOutsideTheBrokerIsLost(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	dir := t.TempDir()
	ctx := context.Background()
	b := newBackend(t, conf, dir, nil)
	outside, ours := testSpec("sleep 60"), testSpec("sleep 60")
	for _, sp := range []backend.Spec{outside, ours} {
		if err := b.Submit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Cancel(ctx, sp.Name) })
	}
	waitPhase(t, b, outside.Name, backend.PhaseRunning)
	if out, err := CommandRunner(conf)(ctx, "scancel", "--name="+outside.Name); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	st := waitPhase(t, b, outside.Name, backend.PhaseLost)
	if !strings.Contains(st.Message, "cancelled outside the broker") {
		t.Errorf("outside scancel: %q, want it said", st.Message)
	}
	if err := b.Cancel(ctx, ours.Name); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, b, ours.Name, backend.PhaseFailed)
	again := newBackend(t, conf, dir, nil)
	if st, _ := statusOf(t, again, ours.Name); st.Phase != backend.PhaseFailed {
		t.Errorf("the broker's cancel, seen after a restart: %+v, want Failed", st)
	}
	if st, _ := statusOf(t, again, outside.Name); st.Phase != backend.PhaseLost {
		t.Errorf("the outside cancel, seen after a restart: %+v, want Lost", st)
	}
}

// Observe costs one squeue call per round however many attempts are held,
// plus one sacct call only for attempts squeue does not know.
func TestObserveIsBatched(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	c := &counter{next: CommandRunner(conf), n: map[string]int{}}
	b := newBackend(t, conf, t.TempDir(), c.run)
	ctx := context.Background()
	var names []string
	for range 6 {
		spec := testSpec("sleep 1")
		if err := b.Submit(ctx, spec); err != nil {
			t.Fatal(err)
		}
		names = append(names, spec.Name)
		t.Cleanup(func() { _ = b.Cancel(ctx, spec.Name) })
	}
	c.reset()
	all, err := b.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(names) {
		t.Fatalf("Observe reported %d attempts, want %d", len(all), len(names))
	}
	if n := c.reset(); n["squeue"] != 1 || len(n) != 1 {
		t.Errorf("one Observe of %d attempts ran %v, want squeue once", len(names), n)
	}
	for _, n := range names {
		waitPhase(t, b, n, backend.PhaseSucceeded)
	}
}

// A Submit without a record asks Slurm whether the name is there only
// through the Backend's first look (one squeue and one sacct for every
// name); later ones run sbatch alone.
func TestSubmitLooksUpNamesOnce(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	c := &counter{next: CommandRunner(conf), n: map[string]int{}}
	b := newBackend(t, conf, t.TempDir(), c.run)
	ctx := context.Background()
	var names []string
	for i := range 4 {
		spec := testSpec("true")
		if err := b.Submit(ctx, spec); err != nil {
			t.Fatal(err)
		}
		names = append(names, spec.Name)
		n := c.reset()
		want := map[string]int{"sbatch": 1}
		if i == 0 {
			want = map[string]int{"squeue": 1, "sacct": 1, "sbatch": 1}
		}
		if fmt.Sprint(n) != fmt.Sprint(want) {
			t.Errorf("submit %d ran %v, want %v", i+1, n, want)
		}
	}
	// The jobs end by themselves; waiting for them keeps their scripts
	// from writing into the attempt directories while TempDir removes
	// them (a Cancel in a cleanup did not: scancel does not wait).
	for _, name := range names {
		waitPhase(t, b, name, backend.PhaseSucceeded)
	}
}

// An sbatch that went through but whose reply was lost (an error, as from
// a restarting slurmctld) is not submitted again by the retry: the record
// stays, and a Submit with a record looks its name up in Slurm.
func TestSubmitRetryAfterLostReplyRunsOnce(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	real := CommandRunner(conf)
	var lost atomic.Bool
	lost.Store(true)
	b := newBackend(t, conf, t.TempDir(), func(ctx context.Context, name string, args ...string) ([]byte, error) {
		out, err := real(ctx, name, args...)
		if name == "sbatch" && err == nil && lost.CompareAndSwap(true, false) {
			return nil, &CommandError{Command: "sbatch", Stderr: "Socket timed out on send/recv operation", Err: errors.New("exit status 1")}
		}
		return out, err
	})
	shared := t.TempDir()
	count := filepath.Join(shared, "count")
	spec := testSpec("echo ran >> " + shellQuote(count))
	ctx := context.Background()
	if err := b.Submit(ctx, spec); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("first Submit: %v, want ErrUnavailable", err)
	}
	t.Cleanup(func() { _ = b.Cancel(ctx, spec.Name) })
	if err := b.Submit(ctx, spec); err != nil {
		t.Fatalf("retry: %v", err)
	}
	waitPhase(t, b, spec.Name, backend.PhaseSucceeded)
	if data, _ := os.ReadFile(count); strings.Count(string(data), "ran\n") != 1 {
		t.Errorf("the job ran %d times, want once", strings.Count(string(data), "ran\n"))
	}
}

// forgetful hides every job from squeue, as slurmctld does once MinJobAge
// has passed; Observe must then find ended jobs through sacct.
func forgetful(next Runner) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name == "squeue" {
			return nil, nil
		}
		return next(ctx, name, args...)
	}
}

func TestObserveFallsBackToSacct(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	dir := t.TempDir()
	b := newBackend(t, conf, dir, nil)
	ctx := context.Background()
	ok, bad := testSpec("true"), testSpec("exit 5")
	for _, s := range []backend.Spec{ok, bad} {
		if err := b.Submit(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitPhase(t, b, ok.Name, backend.PhaseSucceeded)
	waitPhase(t, b, bad.Name, backend.PhaseFailed)

	c := &counter{next: forgetful(CommandRunner(conf)), n: map[string]int{}}
	// Every Observe lists (ListEvery 1ns): the test counts a listing.
	old, err := New(Options{Conf: conf, Dir: dir, GPUType: "h100", ListEvery: time.Nanosecond, Runner: c.run})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.reset()
		sts, err := old.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := c.reset(); n["squeue"] != 1 || n["sacct"] != 1 {
			t.Fatalf("Observe ran %v, want squeue and sacct once each", n)
		}
		got := map[string]backend.Status{}
		for _, st := range sts {
			got[st.Name] = st
		}
		g, f := got[ok.Name], got[bad.Name]
		if g.Phase == backend.PhaseSucceeded && f.Phase == backend.PhaseFailed {
			if f.ExitCode == nil || *f.ExitCode != 5 {
				t.Errorf("failed job's exit code %v, want 5", f.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sacct never reported both ended: %+v %+v", g, f)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// A record whose job never reached Slurm (the broker died in sbatch) is
// Lost, so that the control plane starts a new attempt.
func TestNeverSubmittedIsLost(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	dir := t.TempDir()
	spec := testSpec("true")
	adir := filepath.Join(dir, spec.Name)
	if err := os.MkdirAll(adir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(adir, record{Name: spec.Name, Nodes: 1, Submitted: time.Now()}); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, conf, dir, nil)
	st, ok := statusOf(t, b, spec.Name)
	if !ok || st.Phase != backend.PhaseLost {
		t.Fatalf("observed=%v %+v, want Lost", ok, st)
	}
	if err := b.Forget(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	if _, ok := statusOf(t, newBackend(t, conf, dir, nil), spec.Name); ok {
		t.Error("a forgotten attempt came back after a restart")
	}
}

func TestDiscoverPools(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	b := newBackend(t, conf, t.TempDir(), nil)
	ctx := context.Background()
	if err := b.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	pools, err := b.DiscoverPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The CI cluster: 4 nodes x 8 fake H100 (scripts/engines/slurm-up.sh).
	if len(pools) != 1 {
		t.Fatalf("pools = %+v, want one", pools)
	}
	p := pools[0]
	if p.GPU != "H100" || p.GPUsPerNode != 8 || p.Nodes != 4 || p.Name != "gpu-h100" {
		t.Errorf("pool = %+v, want gpu-h100: 4 nodes x 8 H100", p)
	}
	gpus, err := b.GPUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 4 || gpus[0] != 8 || gpus[3] != 8 {
		t.Errorf("GPUs = %v, want [8 8 8 8]", gpus)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "slurm.conf")
	// A controller nobody listens on.
	if err := os.WriteFile(conf, []byte("ClusterName=none\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=1\n"+
		"AuthType=auth/none\nCredType=cred/none\nMessageTimeout=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CommandRunner(conf)(context.Background(), "scontrol", "--version"); err != nil {
		t.Skip("no Slurm client installed")
	}
	b := newBackend(t, conf, t.TempDir(), nil)
	b.opts.CommandTimeout = 20 * time.Second
	if err := b.Health(context.Background()); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Health: %v, want ErrUnavailable", err)
	}
}

// A team's jobs are charged to the team's Slurm account and run under its
// QOS; other teams' jobs keep the user's defaults. Needs accounting
// (slurmdbd), where the account and QOS are created first.
func TestTeamAccountAndQOS(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	ctx := context.Background()
	run := CommandRunner(conf)
	for _, args := range [][]string{
		{"-i", "add", "account", "gpub-research"},
		{"-i", "add", "user", "root", "account=gpub-research"},
		{"-i", "add", "qos", "gpub-urgent"},
		{"-i", "modify", "user", "root", "set", "qos+=gpub-urgent"},
	} {
		out, err := run(ctx, "sacctmgr", args...)
		if err != nil && strings.Contains(string(out), "Nothing new added") {
			continue // an earlier run on this cluster added it
		}
		if err != nil {
			if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
				t.Fatalf("sacctmgr %v: %v %s", args, err, out)
			}
			t.Skipf("Slurm accounting (slurmdbd) is not running: sacctmgr %v: %v", args, err)
		}
	}
	b, err := New(Options{Conf: conf, Dir: t.TempDir(), GPUType: "h100",
		TeamAccounts: map[string]string{"research": "gpub-research"},
		TeamQOS:      map[string]string{"research": "gpub-urgent"}})
	if err != nil {
		t.Fatal(err)
	}
	research, other := testSpec("sleep 30"), testSpec("sleep 30")
	research.Team, other.Team = "research", "ads"
	for _, sp := range []backend.Spec{research, other} {
		if err := b.Submit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Cancel(ctx, sp.Name); b.Forget(ctx, sp.Name) })
	}
	got := func(name string) string {
		out, err := run(ctx, "squeue", "--noheader", "--states=all", "--name="+name, "--format=%a %q")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if g := got(research.Name); g != "gpub-research gpub-urgent" {
		t.Errorf("team research: account and QOS %q, want %q", g, "gpub-research gpub-urgent")
	}
	if g := got(other.Name); strings.Contains(g, "gpub-") {
		t.Errorf("team ads: account and QOS %q, want the user's defaults", g)
	}
}

// TestOrderedJobsCarryPriority: on a cluster that queues work ahead
// (Spec.Ordered) the broker's priority reaches Slurm as a nice value, so
// that Slurm's queue starts the broker's higher priorities first; other
// jobs keep nice 0.
func TestOrderedJobsCarryPriority(t *testing.T) {
	t.Parallel()
	conf := slurmConf(t)
	ctx := context.Background()
	b := newBackend(t, conf, t.TempDir(), nil)
	low, mid, high, plain := testSpec("sleep 30"), testSpec("sleep 30"), testSpec("sleep 30"), testSpec("sleep 30")
	low.Priority, mid.Priority, high.Priority, plain.Priority = -5, 50, 2000, 50
	low.Ordered, mid.Ordered, high.Ordered = true, true, true
	for _, sp := range []backend.Spec{low, mid, high, plain} {
		if err := b.Submit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Cancel(ctx, sp.Name); b.Forget(ctx, sp.Name) })
	}
	run := CommandRunner(conf)
	got := func(name string) (nice int, prio int64) {
		out, err := run(ctx, "squeue", "--noheader", "--states=all", "--name="+name, "--format=%y %Q")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(string(out), &nice, &prio); err != nil {
			t.Fatalf("squeue for %s: %q: %v", name, out, err)
		}
		return nice, prio
	}
	nLow, pLow := got(low.Name)
	nMid, pMid := got(mid.Name)
	nHigh, pHigh := got(high.Name)
	nPlain, _ := got(plain.Name)
	if nLow != 1005 || nMid != 950 || nHigh != 0 || nPlain != 0 {
		t.Errorf("nice: priority -5 -> %d, 50 -> %d, 2000 -> %d, unordered -> %d; want 1005, 950, 0, 0", nLow, nMid, nHigh, nPlain)
	}
	if !(pHigh > pMid && pMid > pLow) {
		t.Errorf("Slurm priorities %d (broker 2000), %d (50), %d (-5): want them in the broker's order", pHigh, pMid, pLow)
	}
}
