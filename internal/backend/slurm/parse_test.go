package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func at(s string) time.Time { return parseTime(s) }

func ptr(i int) *int { return &i }

// The fixtures are real output of Slurm 22.05 (scripts/engines/slurm-up.sh):
// a success, exit 3, a cancel, a job whose shell was killed by SIGKILL, a
// long name, a running 4-node job and a pending one.
func TestParseSqueue(t *testing.T) {
	t.Parallel()
	jobs, err := parseSqueue(readFixture(t, "squeue.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]backend.Status{}
	for _, st := range newest(jobs) {
		got[st.Name] = status(st, true)
	}
	want := map[string]backend.Status{
		"gpub-x-1": {Name: "gpub-x-1", Phase: backend.PhaseSucceeded, ExitCode: ptr(0),
			Started: at("2026-11-27T15:49:45"), Ended: at("2026-11-27T15:49:46")},
		"gpub-x-2": {Name: "gpub-x-2", Phase: backend.PhaseFailed, ExitCode: ptr(3), Message: "job 2 ended FAILED (exit code 3)",
			Started: at("2026-11-27T15:50:40"), Ended: at("2026-11-27T15:50:40")},
		"gpub-x-3": {Name: "gpub-x-3", Phase: backend.PhaseFailed, Message: "job 3 cancelled",
			Started: at("2026-11-27T15:50:40"), Ended: at("2026-11-27T15:50:42")},
		"gpub-x-4": {Name: "gpub-x-4", Phase: backend.PhaseFailed, ExitCode: ptr(137), Message: "job 4 ended FAILED (signal 9)",
			Started: at("2026-11-27T15:50:41"), Ended: at("2026-11-27T15:50:41")},
		"gpub-1234567890123456789012345-1": {Name: "gpub-1234567890123456789012345-1", Phase: backend.PhaseSucceeded, ExitCode: ptr(0),
			Started: at("2026-11-27T15:53:07"), Ended: at("2026-11-27T15:53:07")},
		"gpub-x-6": {Name: "gpub-x-6", Phase: backend.PhaseRunning, Started: at("2026-11-27T15:54:32")},
		"gpub-x-7": {Name: "gpub-x-7", Phase: backend.PhasePending, Message: "job 7 pending: Resources"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

// A CANCELLED job the broker did not cancel (Slurm after a failed launch,
// an administrator's scancel) is Lost: retried, not the job's failure.
func TestCancelledOutsideTheBrokerIsLost(t *testing.T) {
	t.Parallel()
	jobs, err := parseSqueue(readFixture(t, "squeue.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range newest(jobs) {
		st := status(j, false)
		if j.State == "CANCELLED" {
			if st.Phase != backend.PhaseLost || !strings.Contains(st.Message, "cancelled outside the broker") {
				t.Errorf("%s cancelled outside the broker: %+v, want Lost", j.Name, st)
			}
		} else if by := status(j, true); !cmp.Equal(st, by) {
			t.Errorf("%s (%s): the broker's cancel changed its status: %+v vs %+v", j.Name, j.State, st, by)
		}
	}
}

func TestParseSacct(t *testing.T) {
	t.Parallel()
	jobs, err := parseSacct(readFixture(t, "sacct.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]backend.Status{}
	for _, st := range newest(jobs) {
		got[st.Name] = status(st, true)
	}
	want := map[string]backend.Status{
		"gpub-x-1": {Name: "gpub-x-1", Phase: backend.PhaseSucceeded, ExitCode: ptr(0),
			Started: at("2026-11-27T15:49:45"), Ended: at("2026-11-27T15:49:46")},
		"gpub-x-2": {Name: "gpub-x-2", Phase: backend.PhaseFailed, ExitCode: ptr(3), Message: "job 2 ended FAILED (exit code 3)",
			Started: at("2026-11-27T15:50:40"), Ended: at("2026-11-27T15:50:40")},
		"gpub-x-3": {Name: "gpub-x-3", Phase: backend.PhaseFailed, Message: "job 3 cancelled",
			Started: at("2026-11-27T15:50:40"), Ended: at("2026-11-27T15:50:42")},
		"gpub-x-4": {Name: "gpub-x-4", Phase: backend.PhaseFailed, ExitCode: ptr(137), Message: "job 4 ended FAILED (signal 9)",
			Started: at("2026-11-27T15:50:41"), Ended: at("2026-11-27T15:50:41")},
		"gpub-1234567890123456789012345-1": {Name: "gpub-1234567890123456789012345-1", Phase: backend.PhaseSucceeded, ExitCode: ptr(0),
			Started: at("2026-11-27T15:53:07"), Ended: at("2026-11-27T15:53:07")},
		"gpub-x-6": {Name: "gpub-x-6", Phase: backend.PhaseFailed, Message: "job 6 cancelled",
			Started: at("2026-11-27T15:54:32"), Ended: at("2026-11-27T15:54:33")},
		"gpub-x-7": {Name: "gpub-x-7", Phase: backend.PhaseFailed, Message: "job 7 cancelled",
			Started: at("2026-11-27T15:54:33"), Ended: at("2026-11-27T15:54:33")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestPhaseOf(t *testing.T) {
	t.Parallel()
	for state, want := range map[string]backend.Phase{
		"PENDING": backend.PhasePending, "REQUEUED": backend.PhasePending, "CONFIGURING": backend.PhasePending,
		"RUNNING": backend.PhaseRunning, "COMPLETING": backend.PhaseRunning, "SUSPENDED": backend.PhaseRunning,
		"COMPLETED": backend.PhaseSucceeded,
		"FAILED":    backend.PhaseFailed, "TIMEOUT": backend.PhaseFailed, "OUT_OF_MEMORY": backend.PhaseFailed,
		"CANCELLED": backend.PhaseFailed, "DEADLINE": backend.PhaseFailed,
		"NODE_FAIL": backend.PhaseLost, "PREEMPTED": backend.PhaseLost, "BOOT_FAIL": backend.PhaseLost,
	} {
		if got := phaseOf(stateWord(state + "+")); got != want {
			t.Errorf("phaseOf(%s) = %s, want %s", state, got, want)
		}
	}
}

// A resubmission racing its predecessor: the running job is the one to
// report, whatever the ids.
func TestNewestPrefersActive(t *testing.T) {
	t.Parallel()
	got := newest([]job{
		{ID: 9, Name: "gpub-1-1", State: "FAILED"},
		{ID: 5, Name: "gpub-1-1", State: "RUNNING"},
		{ID: 3, Name: "other", State: "RUNNING"},
	})
	if len(got) != 1 || got["gpub-1-1"].ID != 5 {
		t.Errorf("newest = %+v, want only gpub-1-1 job 5", got)
	}
}

func TestParseSinfoAndPools(t *testing.T) {
	t.Parallel()
	nodes, err := parseSinfo(readFixture(t, "sinfo.txt"))
	if err != nil {
		t.Fatal(err)
	}
	nodes = uniqueNodes(nodes)
	if len(nodes) != 4 || nodes[0].Partition != "gpu" || nodes[0].GPUCount() != 8 {
		t.Fatalf("nodes = %+v, want 4 in partition gpu with 8 GPUs", nodes)
	}
	pools, err := poolsFromNodes(nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Pool{{Name: "gpu-h100", GPU: "H100", GPUsPerNode: 8, Nodes: 4, CPUsPerNode: 64, MemoryGiBPerNode: 500}}
	if diff := cmp.Diff(want, pools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
}

func TestPoolsMixed(t *testing.T) {
	t.Parallel()
	nodes := uniqueNodes([]Node{
		{Name: "a10", Partition: "p", GPUs: map[string]int{"a100": 4}, CPUs: 32},
		{Name: "a2", Partition: "p", GPUs: map[string]int{"a100": 8}, CPUs: 32},
		{Name: "a3", Partition: "p", GPUs: map[string]int{"a100": 8}, CPUs: 32, State: "drained"},
		{Name: "cpu1", Partition: "p", GPUs: map[string]int{}},
	})
	pools, err := poolsFromNodes(nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Pool{
		{Name: "p-a100-x4", GPU: "A100", GPUsPerNode: 4, Nodes: 1, CPUsPerNode: 32},
		{Name: "p-a100-x8", GPU: "A100", GPUsPerNode: 8, Nodes: 2, CPUsPerNode: 32},
	}
	if diff := cmp.Diff(want, pools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	if _, err := poolsFromNodes([]Node{{Name: "x", Partition: "p", GPUs: map[string]int{"": 8}}}); err == nil {
		t.Error("an untyped GRES gave a pool, want an error asking for the type")
	}
}

func TestParseGRES(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]map[string]int{
		"gpu:h100:8":                      {"h100": 8},
		"gpu:8":                           {"": 8},
		"gpu:h100:8(S:0-1)":               {"h100": 8},
		"gpu:a100:4,gpu:v100:2,nvme:1":    {"a100": 4, "v100": 2},
		"gpu:a100:4(S:0),gpu:a100:4(S:1)": {"a100": 8},
		"gpu:h100":                        {"h100": 1},
		"(null)":                          {},
		"":                                {},
	} {
		if diff := cmp.Diff(want, parseGRES(in)); diff != "" {
			t.Errorf("parseGRES(%q) (-want +got):\n%s", in, diff)
		}
	}
}

func TestNodeUnavailable(t *testing.T) {
	t.Parallel()
	for state, want := range map[string]bool{
		"idle": false, "mixed": false, "allocated": false, "idle*": true, "down": true,
		"down*": true, "drained": true, "draining": true, "inval": true,
	} {
		if got := (Node{State: state}).Unavailable(); got != want {
			t.Errorf("Unavailable(%q) = %v, want %v", state, got, want)
		}
	}
}

func FuzzParseSqueue(f *testing.F) {
	f.Add(readFixture(f, "squeue.txt"))
	f.Fuzz(func(t *testing.T, s string) {
		jobs, err := parseSqueue(s)
		if err != nil {
			return
		}
		for _, j := range newest(jobs) {
			st := status(j, false)
			if st.Phase == "" {
				t.Fatalf("no phase for %+v", j)
			}
		}
	})
}

func FuzzParseSacct(f *testing.F) {
	f.Add(readFixture(f, "sacct.txt"))
	f.Fuzz(func(t *testing.T, s string) {
		if jobs, err := parseSacct(s); err == nil {
			for _, j := range jobs {
				_ = status(j, true)
			}
		}
	})
}

func FuzzParseSinfo(f *testing.F) {
	f.Add(readFixture(f, "sinfo.txt"))
	f.Add("n1|p*|idle|8|1000|gpu:a100:4(S:0),gpu:a100:4(S:1)\n")
	f.Fuzz(func(t *testing.T, s string) {
		nodes, err := parseSinfo(s)
		if err != nil {
			return
		}
		for _, n := range nodes {
			for _, c := range n.GPUs {
				if c <= 0 {
					t.Fatalf("node %q: GPU count %d", n.Name, c)
				}
			}
		}
		_, _ = poolsFromNodes(uniqueNodes(nodes))
	})
}

// Health: a controller that answers with every node drained or down takes
// no new work but is not unreachable (the jobs on drained nodes run on);
// one that does not answer is unavailable.
func TestHealthDrainedIsNoNewWork(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, ping, sinfo string
		want              error
	}{
		{"one node up", "Slurmctld(primary) at h is UP", "n1|gpu*|drained|8|1000|gpu:h100:8\nn2|gpu*|mixed|8|1000|gpu:h100:8\n", nil},
		{"all drained or down", "Slurmctld(primary) at h is UP", "n1|gpu*|drained|8|1000|gpu:h100:8\nn2|gpu*|down*|8|1000|gpu:h100:8\n", backend.ErrNoNewWork},
		{"controller down", "Slurmctld(primary) at h is DOWN", "", backend.ErrUnavailable},
	} {
		run := func(_ context.Context, name string, _ ...string) ([]byte, error) {
			if name == "scontrol" {
				return []byte(c.ping + "\n"), nil
			}
			return []byte(c.sinfo), nil
		}
		b, err := New(Options{Dir: t.TempDir(), GPUType: "h100", Runner: run})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Health(context.Background())
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Health = %v, want %v", c.name, err, c.want)
		}
		if errors.Is(err, backend.ErrNoNewWork) && errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("%s: %v is both", c.name, err)
		}
	}
}

// settle waits for the call in flight, if any.
func (f *fresh[T]) settle() {
	f.mu.Lock()
	done := f.running
	f.mu.Unlock()
	if done != nil {
		<-done
	}
}

// A healthy answer stands for HealthEvery: within it Health asks slurmctld
// nothing; up to twice HealthEvery it returns that answer while checking
// again in the background; an unhealthy answer is never kept.
func TestHealthAnswerStands(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls, up := 0, true
	run := func(_ context.Context, name string, _ ...string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if name == "scontrol" {
			if !up {
				return []byte("Slurmctld(primary) at h is DOWN\n"), nil
			}
			return []byte("Slurmctld(primary) at h is UP\n"), nil
		}
		return []byte("n1|gpu*|idle|8|1000|gpu:h100:8\n"), nil
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	b, err := New(Options{Dir: t.TempDir(), GPUType: "h100", Runner: run, HealthEvery: 2 * time.Second,
		Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	check := func(wantErr bool, wantCalls int) {
		t.Helper()
		err := b.Health(context.Background())
		b.health.settle()
		mu.Lock()
		defer mu.Unlock()
		if (err != nil) != wantErr || calls != wantCalls {
			t.Fatalf("Health at %s: %v after %d commands in all, want error %v after %d", now.Format(time.TimeOnly), err, calls, wantErr, wantCalls)
		}
	}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	set := func(v bool) { mu.Lock(); up = v; mu.Unlock() }
	check(false, 2) // scontrol ping, sinfo
	advance(time.Second)
	check(false, 2)
	advance(time.Second)
	check(false, 4) // the old answer, and a check in the background
	set(false)
	advance(2 * time.Second)
	check(false, 5) // the old answer; the background check finds slurmctld down
	check(true, 6)  // not kept: asked again, and waited for
	check(true, 7)
	set(true)
	check(false, 9)
	// However old, a healthy answer stands while its next check runs
	// (for less than hangAfter periods).
	set(false)
	advance(4 * time.Second)
	check(false, 10)
	check(true, 11)
}

// Past ListEvery a listing runs in the background while Observe reports
// the last one; once that listing has run for hangAfter periods, or after
// a failed listing, Observe waits for it.
func TestObserveListsInTheBackground(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	squeues, state, fail := 0, "RUNNING", false
	gate := make(chan struct{}, 10)
	run := func(_ context.Context, name string, _ ...string) ([]byte, error) {
		if name != "squeue" {
			return nil, fmt.Errorf("unexpected %s", name)
		}
		<-gate
		mu.Lock()
		defer mu.Unlock()
		squeues++
		if fail {
			return nil, errors.New("slurm_load_jobs error: Unable to contact slurm controller")
		}
		return []byte("11|" + state + "|None|2026-12-04T11:59:00|2026-12-04T11:59:01|N/A|0|gpub-1-1|\n"), nil
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	b, err := New(Options{Dir: t.TempDir(), Runner: run, ListEvery: time.Second,
		Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	b.hold(record{Name: "gpub-1-1", Nodes: 1, Submitted: now.Add(-time.Minute), JobID: 11})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	observe := func(want backend.Phase, wantSqueues int) {
		t.Helper()
		sts, err := b.Observe(context.Background())
		b.listing.settle()
		mu.Lock()
		defer mu.Unlock()
		if err != nil || len(sts) != 1 || sts[0].Phase != want || squeues != wantSqueues {
			t.Fatalf("Observe: %+v, %v after %d squeue, want %s after %d", sts, err, squeues, want, wantSqueues)
		}
	}
	gate <- struct{}{}
	observe(backend.PhaseRunning, 1) // the first listing is waited for
	mu.Lock()
	state = "COMPLETED"
	mu.Unlock()
	advance(time.Second)
	// Due: Observe reports the last listing at once, while the next one
	// waits for the gate.
	sts, err := b.Observe(context.Background())
	if err != nil || sts[0].Phase != backend.PhaseRunning {
		t.Fatalf("Observe with a listing in flight: %+v, %v; want the last listing's Running", sts, err)
	}
	// A call in flight for hangAfter periods is waited for: within the
	// caller's context.
	advance(hangAfter * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Observe(ctx); err == nil {
		t.Fatal("Observe with a listing hung for hangAfter periods: no error")
	}
	gate <- struct{}{}
	b.listing.settle()
	gate <- struct{}{}
	observe(backend.PhaseSucceeded, 3) // the last listing; a new one done
	// A listing that fails is waited for by every Observe until one does
	// not.
	mu.Lock()
	fail = true
	mu.Unlock()
	advance(time.Second)
	gate <- struct{}{}
	observe(backend.PhaseSucceeded, 4)
	gate <- struct{}{}
	if _, err := b.Observe(context.Background()); err == nil {
		t.Fatal("Observe after a failed listing: no error")
	}
	// A caller that gives up waiting gets an error; the listing goes on.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Observe(ctx); err == nil || !strings.Contains(err.Error(), "slurm: observe") {
		t.Fatalf("Observe that gave up: %v, want a slurm: observe error", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	gate <- struct{}{}
	b.listing.settle()
	observe(backend.PhaseSucceeded, 6)
}

// Between listings Observe reports from the last squeue, except what the
// jobs' scripts wrote as they ended (for their own job id, and not for an
// attempt the broker cancelled) and what was submitted since (Pending).
func TestObserveBetweenListings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	squeues := 0
	run := func(_ context.Context, name string, _ ...string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		switch name {
		case "sacct":
			return nil, nil // knows nothing more
		case "squeue":
		default:
			return nil, fmt.Errorf("unexpected %s", name)
		}
		squeues++
		return []byte("11|RUNNING|None|2026-12-04T11:59:00|2026-12-04T11:59:01|N/A|0|gpub-1-1|\n" +
			"12|RUNNING|None|2026-12-04T11:59:00|2026-12-04T11:59:01|N/A|0|gpub-2-1|\n" +
			"13|RUNNING|None|2026-12-04T11:59:00|2026-12-04T11:59:01|N/A|0|gpub-3-1|\n" +
			"14|RUNNING|None|2026-12-04T11:59:00|2026-12-04T11:59:01|N/A|0|gpub-4-1|\n"), nil
	}
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	b, err := New(Options{Dir: dir, Runner: run, Clock: clock, ListEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 4; i++ {
		name := fmt.Sprintf("gpub-%d-1", i)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		b.hold(record{Name: name, Nodes: 1, Submitted: now.Add(-time.Minute), JobID: 10 + i})
	}
	observe := func() map[string]backend.Status {
		t.Helper()
		sts, err := b.Observe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]backend.Status{}
		for _, st := range sts {
			m[st.Name] = st
		}
		return m
	}
	if got := observe(); got["gpub-1-1"].Phase != backend.PhaseRunning || squeues != 1 {
		t.Fatalf("first Observe: %+v after %d squeue, want Running after one", got, squeues)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name, exitFile), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gpub-1-1", "11 0 1764849541.25 1764849600,5\n") // a comma locale's end time
	write("gpub-2-1", "12 3 1764849541.25 1764849600.5\n")
	write("gpub-3-1", "99 0 1764849541.25 1764849600.5\n") // another job's
	write("gpub-4-1", "14 0 1764849541.25 1764849600.5\n")
	if err := b.Cancel(context.Background(), "gpub-4-1"); err == nil {
		t.Fatal("Cancel ran scancel through a runner that refuses it")
	}
	b.hold(record{Name: "gpub-5-1", Nodes: 1, Submitted: now, JobID: 15})
	// Started since the listing: its own start counts, another job's not.
	b.hold(record{Name: "gpub-6-1", Nodes: 1, Submitted: now, JobID: 16})
	b.hold(record{Name: "gpub-7-1", Nodes: 1, Submitted: now, JobID: 17})
	// Being written: not a whole line yet.
	b.hold(record{Name: "gpub-8-1", Nodes: 1, Submitted: now, JobID: 18})
	for name, text := range map[string]string{"gpub-6-1": "16 1764849541.5\n", "gpub-7-1": "99 1764849541.5\n", "gpub-8-1": "18 17648"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, startFile), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := observe()
	if squeues != 1 {
		t.Errorf("Observe within ListEvery ran squeue %d times in all, want 1", squeues)
	}
	zero := 0
	want := map[string]backend.Status{
		"gpub-1-1": {Name: "gpub-1-1", Phase: backend.PhaseSucceeded, ExitCode: &zero,
			Started: time.Unix(1764849541, 250000000), Ended: time.Unix(1764849600, 500000000)},
		"gpub-2-1": got["gpub-2-1"],
		"gpub-3-1": got["gpub-3-1"],
		"gpub-4-1": got["gpub-4-1"],
		"gpub-5-1": {Name: "gpub-5-1", Phase: backend.PhasePending, Message: "submitted; not listed by Slurm yet"},
		"gpub-6-1": {Name: "gpub-6-1", Phase: backend.PhaseRunning, Started: time.Unix(1764849541, 500000000), Message: "job 16 running"},
		"gpub-7-1": {Name: "gpub-7-1", Phase: backend.PhasePending, Message: "submitted; not listed by Slurm yet"},
		"gpub-8-1": {Name: "gpub-8-1", Phase: backend.PhasePending, Message: "submitted; not listed by Slurm yet"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("between listings (-want +got):\n%s", diff)
	}
	if got["gpub-3-1"].Phase != backend.PhaseRunning || got["gpub-4-1"].Phase != backend.PhaseRunning {
		t.Errorf("another job's exit status, or a cancelled attempt's, was taken: %+v %+v", got["gpub-3-1"], got["gpub-4-1"])
	}
	if got["gpub-2-1"].Phase != backend.PhaseRunning {
		t.Errorf("a failure written by the script was taken before Slurm said so: %+v", got["gpub-2-1"])
	}
	clockMu.Lock()
	now = now.Add(time.Second)
	clockMu.Unlock()
	observe()
	b.listing.settle()
	mu.Lock()
	defer mu.Unlock()
	if squeues != 2 {
		t.Errorf("Observe after ListEvery ran squeue %d times in all, want 2", squeues)
	}
}
