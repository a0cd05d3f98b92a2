package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/backendtest"
)

func newBackend(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := New(dir, Options{Hostname: "testhost", GPUs: 2, Grace: time.Second, LogPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	b := newBackend(t, t.TempDir())
	backendtest.Run(t, b, backendtest.Options{
		MaxNodes:  2,
		GPUs:      []int{1, 3},
		SharedDir: t.TempDir(),
		Workdir:   t.TempDir(),
		LogCap:    true,
	})
}

func spec(id int64, run string) backend.Spec {
	return backend.Spec{
		Name: backend.Name(id, 1), JobID: id, Attempt: 1,
		Nodes: []backend.Node{{GPUs: []int{0}}},
		Run:   run,
	}
}

func status(t *testing.T, b *Backend, name string) (backend.Status, bool) {
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

// waitEnded polls until name has ended and returns every phase seen.
func waitEnded(t *testing.T, b *Backend, name string, timeout time.Duration) (backend.Status, []backend.Phase) {
	t.Helper()
	var seen []backend.Phase
	deadline := time.Now().Add(timeout)
	for {
		st, ok := status(t, b, name)
		if !ok {
			t.Fatalf("%s not observed", name)
		}
		if len(seen) == 0 || seen[len(seen)-1] != st.Phase {
			seen = append(seen, st.Phase)
		}
		if st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning {
			return st, seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v", name, st.Phase, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrokerRestart: the broker dies (its Backend is dropped and a new one
// opens the same directory) while a job runs; the new Backend finds the job
// Running, does not start it again, and sees it succeed exactly once.
func TestBrokerRestart(t *testing.T) {
	dir, shared := t.TempDir(), t.TempDir()
	out := filepath.Join(shared, "out")
	sp := spec(1, "sleep 2; echo ran >> "+out)
	b1 := newBackend(t, dir)
	if err := b1.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	b1 = nil // the broker is gone; its processes are not

	b2 := newBackend(t, dir)
	st, ok := status(t, b2, sp.Name)
	if !ok || st.Phase != backend.PhaseRunning {
		t.Fatalf("after restart: %+v (found %v), want Running", st, ok)
	}
	if err := b2.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	st, seen := waitEnded(t, b2, sp.Name, 20*time.Second)
	if st.Phase != backend.PhaseSucceeded || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("ended %+v, want Succeeded exit 0", st)
	}
	if want := []backend.Phase{backend.PhaseRunning, backend.PhaseSucceeded}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("phases %v, want %v", seen, want)
	}
	data, _ := os.ReadFile(out)
	if string(data) != "ran\n" {
		t.Errorf("job output %q, want one line", data)
	}
	// A third broker sees the same ended attempt.
	b3 := newBackend(t, dir)
	if st, _ := status(t, b3, sp.Name); st.Phase != backend.PhaseSucceeded {
		t.Errorf("third broker: %s, want Succeeded", st.Phase)
	}
}

func readPid(t *testing.T, dir, name string, rank int) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name, nodeFile(rank, "pid")))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(data))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestKilledExternallyIsLost: kill -9 of a node's whole process group leaves
// no exit status: the attempt is Lost (retried by the control plane), and a
// new broker says the same.
func TestKilledExternallyIsLost(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(2, "sleep 60")
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	if st, _ := status(t, b, sp.Name); st.Phase != backend.PhaseRunning {
		t.Fatalf("phase %s, want Running", st.Phase)
	}
	if err := syscall.Kill(-readPid(t, dir, sp.Name, 0), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
	if st.Phase != backend.PhaseLost || st.ExitCode != nil {
		t.Fatalf("%+v, want Lost without exit code", st)
	}
	if st, _ := status(t, newBackend(t, dir), sp.Name); st.Phase != backend.PhaseLost {
		t.Errorf("new broker: %s, want Lost", st.Phase)
	}
}

// TestJobKilledBySignalIsFailed: when only the job dies of a signal, its
// shell records 128+signal: Failed, not Lost.
func TestJobKilledBySignalIsFailed(t *testing.T) {
	b := newBackend(t, t.TempDir())
	sp := spec(3, "kill -9 $$")
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
	if st.Phase != backend.PhaseFailed || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Fatalf("%+v, want Failed exit 137", st)
	}
}

// TestGangFailureStopsTheRest: one node failing stops the others; the
// attempt is Failed with the failed node's code once all are gone.
func TestGangFailureStopsTheRest(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(4, `if [ "$GPUBROKER_NODE_RANK" = 1 ]; then sleep 0.5; exit 7; fi; sleep 60`)
	sp.Nodes = []backend.Node{{GPUs: []int{0}}, {GPUs: []int{1}}, {GPUs: []int{2}}}
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, seen := waitEnded(t, b, sp.Name, 15*time.Second)
	if st.Phase != backend.PhaseFailed || st.ExitCode == nil || *st.ExitCode != 7 {
		t.Fatalf("%+v, want Failed exit 7", st)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to stop the gang", d)
	}
	t.Logf("phases %v, message %q", seen, st.Message)
	// A stopped member writes its exit status from its trap and is gone
	// a moment later: give it a few seconds, not the 60 of its sleep.
	for _, rank := range []int{0, 2} {
		lock := filepath.Join(dir, sp.Name, nodeFile(rank, "lock"))
		deadline := time.Now().Add(5 * time.Second)
		for lockHeld(lock) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if lockHeld(lock) {
			t.Errorf("node %d still alive 5s after the gang was reported Failed", rank)
		}
	}
}

// TestGangFailureOrderFinerThanMtime: which node of a gang failed first is
// read from the end times the nodes' shells record, not from their exit
// files' mtimes, which have the kernel's tick: a node stopped because
// another failed can end within the same tick (it did in CI, and the gang
// was reported failed with the stopped node's 143).
func TestGangFailureOrderFinerThanMtime(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(9, "true")
	sp.Nodes = []backend.Node{{GPUs: []int{0}}, {GPUs: []int{1}}}
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	if st, _ := waitEnded(t, b, sp.Name, 10*time.Second); st.Phase != backend.PhaseSucceeded {
		t.Fatalf("%+v, want Succeeded", st)
	}
	// What the shells write: each node's code and end time. Node 1 failed;
	// node 0, stopped for it, ended 2 ms later, in the same tick.
	tick := time.Now().Truncate(time.Second)
	for rank, text := range []string{fmt.Sprintf("143 %d.002000\n", tick.Unix()), fmt.Sprintf("7 %d.000000\n", tick.Unix())} {
		p := filepath.Join(dir, sp.Name, nodeFile(rank, "exit"))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, tick, tick); err != nil {
			t.Fatal(err)
		}
	}
	// A new Backend reads the attempt from its files alone.
	st, ok := status(t, newBackend(t, dir), sp.Name)
	if !ok || st.Phase != backend.PhaseFailed || st.ExitCode == nil || *st.ExitCode != 7 ||
		st.Message != "node 1 exited with code 7" || !st.Ended.Equal(tick.Add(2*time.Millisecond)) {
		t.Fatalf("%+v, want Failed by node 1 with exit 7, ended at %v", st, tick.Add(2*time.Millisecond))
	}
}

// TestParseExit: the exit file's code and end time, and what a file without
// a time or with garbage reads as.
func TestParseExit(t *testing.T) {
	for _, tc := range []struct {
		data  string
		code  int
		ended time.Time
	}{
		{"0 1796657912.748204\n", 0, time.Unix(1796657912, 748204000)},
		{"7\n", 7, time.Time{}},                                   // written before end times were recorded
		{"143 \n", 143, time.Time{}},                              // a shell without EPOCHREALTIME
		{"1 1796657912,5\n", 1, time.Unix(1796657912, 500000000)}, // a locale's comma
		{"1 later\n", 1, time.Time{}},                             // no time: the mtime is used
		{"", 255, time.Time{}},
		{"garbage 1796657912.748204\n", 255, time.Time{}},
	} {
		code, ended := parseExit(tc.data)
		if code != tc.code || !ended.Equal(tc.ended) {
			t.Errorf("parseExit(%q) = %d, %v; want %d, %v", tc.data, code, ended, tc.code, tc.ended)
		}
	}
}

// TestCancelEscalates: a job that ignores SIGTERM is killed after the grace
// period.
func TestCancelEscalates(t *testing.T) {
	b := newBackend(t, t.TempDir())
	sp := spec(5, `trap '' TERM; echo ready; while :; do sleep 0.1; done`)
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	// The trap must be set before the TERM comes: on a loaded machine bash
	// takes more than a fixed sleep to get there.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logsOf(t, b, sp.Name), "ready") {
		if time.Now().After(deadline) {
			t.Fatal("the job never said ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := b.Cancel(context.Background(), sp.Name); err != nil {
		t.Fatal(err)
	}
	st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
	if st.Phase != backend.PhaseFailed || st.Message != "cancelled" {
		t.Fatalf("%+v, want Failed (cancelled)", st)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("stopped after %v, want about the 1s grace", d)
	}
}

// zombies lists this process's children that have exited but not been
// reaped.
func zombies(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	me := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil || len(f) < 2 {
			continue
		}
		if f[0] == "Z" && f[1] == me {
			out = append(out, pid)
		}
	}
	return out
}

func TestNoZombies(t *testing.T) {
	b := newBackend(t, t.TempDir())
	for i := range 10 {
		if err := b.Submit(context.Background(), spec(int64(100+i), "exit "+strconv.Itoa(i%2))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		waitEnded(t, b, backend.Name(int64(100+i), 1), 10*time.Second)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		z := zombies(t)
		if len(z) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children: %v", z)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestManyJobs: 200 short jobs submitted at once all run and succeed.
func TestManyJobs(t *testing.T) {
	b := newBackend(t, t.TempDir())
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- b.Submit(context.Background(), spec(int64(1000+i), "echo job $GPUBROKER_JOB_ID"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		all, err := b.Observe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("observed %d attempts, want %d", len(all), n)
		}
		done, ok := 0, 0
		for _, st := range all {
			switch st.Phase {
			case backend.PhaseSucceeded:
				done++
				ok++
			case backend.PhaseFailed, backend.PhaseLost:
				done++
				t.Errorf("%s: %s %s", st.Name, st.Phase, st.Message)
			}
		}
		if done == n {
			if ok != n {
				t.Fatalf("%d of %d succeeded", ok, n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ended after 60s", done, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range n {
		name := backend.Name(int64(1000+i), 1)
		r, err := b.Logs(context.Background(), name, false)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		r.Close()
		if want := fmt.Sprintf("job %d\n", 1000+i); string(data) != want {
			t.Errorf("%s logs %q, want %q", name, data, want)
		}
	}
}

// TestInterruptedSubmit: a broker that died after creating the attempt
// directory but before recording it leaves an attempt that is Lost, and a
// repeated Submit does not start it.
func TestInterruptedSubmit(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(6, "echo ran")
	if err := os.Mkdir(filepath.Join(dir, sp.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	st, ok := status(t, b, sp.Name)
	if !ok || st.Phase != backend.PhaseLost {
		t.Fatalf("%+v, want Lost", st)
	}

	// Recorded, but no node was started (died before the fork).
	sp2 := spec(7, "echo ran")
	b2 := newBackend(t, filepath.Join(dir, "other"))
	adir := filepath.Join(b2.dir, sp2.Name)
	if err := os.Mkdir(adir, 0o755); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"spec":{"Name":%q,"Nodes":[{"GPUs":[0]}]},"host":"testhost"}`, sp2.Name)
	if err := os.WriteFile(filepath.Join(adir, "spec.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := status(t, b2, sp2.Name); st.Phase != backend.PhaseLost {
		t.Fatalf("%+v, want Lost", st)
	}
}

func TestWorkdirMissingFails(t *testing.T) {
	b := newBackend(t, t.TempDir())
	sp := spec(8, "echo ran")
	sp.Workdir = "/nonexistent/gpubroker"
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	st, _ := waitEnded(t, b, sp.Name, 10*time.Second)
	if st.Phase != backend.PhaseFailed {
		t.Fatalf("%+v, want Failed", st)
	}
	r, err := b.Logs(context.Background(), sp.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	if !strings.Contains(string(data), "/nonexistent/gpubroker") {
		t.Errorf("logs do not say why: %q", data)
	}
}

func TestForgetKeepsLogs(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(9, "echo kept")
	sp.Nodes = append(sp.Nodes, backend.Node{GPUs: []int{1}})
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, b, sp.Name, 10*time.Second)
	if err := b.Forget(context.Background(), sp.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sp.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("attempt directory still there: %v", err)
	}
	r, err := b.Logs(context.Background(), sp.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	if want := "[rank 0] kept\n[rank 1] kept\n"; string(data) != want {
		t.Errorf("kept logs %q, want %q", data, want)
	}
}

// TestForgetRunningKills: Forget of an attempt still running kills it.
func TestForgetRunningKills(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	sp := spec(10, "sleep 60")
	if err := b.Submit(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, dir, sp.Name, 0)
	if err := b.Forget(context.Background(), sp.Name); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("process group still alive after Forget")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealth(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	if err := b.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A state directory replaced by a file cannot take work (permissions
	// would not do: tests may run as root).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Health(context.Background()); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("Health = %v, want ErrUnavailable", err)
	}
}

func TestGPUs(t *testing.T) {
	bin := t.TempDir()
	smi := filepath.Join(bin, "fake-nvidia-smi")
	script := `#!/bin/sh
[ "$1" = -L ] || exit 2
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)"
echo "  MIG 1g.10gb     Device  0: (UUID: MIG-a)"
echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-b)"
`
	if err := os.WriteFile(smi, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		smi  string
		want int
	}{
		{"nvidia-smi", smi, 2},
		{"absent", filepath.Join(bin, "absent"), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(t.TempDir(), Options{GPUs: 4, NvidiaSMI: tc.smi})
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.GPUs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("GPUs = %v, want [%d]", got, tc.want)
			}
		})
	}
}

// TestBrokerSIGKILL: a real broker process is killed with SIGKILL right after
// submitting; the job survives it, and a new broker finds it and sees it
// succeed once.
func TestBrokerSIGKILL(t *testing.T) {
	if dir := os.Getenv("GPUBROKER_LOCAL_HELPER_DIR"); dir != "" {
		helperBroker(dir, os.Getenv("GPUBROKER_LOCAL_HELPER_OUT"))
		return
	}
	dir, shared := t.TempDir(), t.TempDir()
	out := filepath.Join(shared, "out")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerSIGKILL$")
	cmd.Env = append(os.Environ(), "GPUBROKER_LOCAL_HELPER_DIR="+dir, "GPUBROKER_LOCAL_HELPER_OUT="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "submitted\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	b := newBackend(t, dir)
	name := backend.Name(42, 1)
	if st, _ := status(t, b, name); st.Phase != backend.PhaseRunning {
		t.Fatalf("after SIGKILL of the broker: %s (%s), want Running", st.Phase, st.Message)
	}
	st, _ := waitEnded(t, b, name, 20*time.Second)
	if st.Phase != backend.PhaseSucceeded {
		t.Fatalf("%+v, want Succeeded", st)
	}
	if data, _ := os.ReadFile(out); string(data) != "ran\n" {
		t.Errorf("job output %q, want one line", data)
	}
}

// helperBroker is the broker TestBrokerSIGKILL kills.
func helperBroker(dir, out string) {
	b, err := New(dir, Options{Hostname: "testhost"})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := b.Submit(context.Background(), spec(42, "sleep 1.5; echo ran >> "+out)); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("submitted")
	time.Sleep(time.Minute)
	os.Exit(1)
}
