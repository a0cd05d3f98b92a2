package backendtest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// Options says what the driver under test can do, and where.
type Options struct {
	// Timeout bounds each wait for an attempt to reach a phase; default 30s.
	Timeout time.Duration
	// Poll is how often Observe is called while waiting; default 50ms.
	Poll time.Duration
	// MaxNodes is the largest gang the backend can start here; the gang
	// test needs 2. Default 1.
	MaxNodes int
	// GPUs are the slots each node is given (Node.GPUs). Empty: jobs get
	// none and the CUDA_VISIBLE_DEVICES test is skipped.
	GPUs []int
	// SkipGPUEnv skips the check that CUDA_VISIBLE_DEVICES lists exactly
	// GPUs, for drivers whose device plugin renumbers the devices.
	SkipGPUEnv bool
	// SharedDir is a directory that the test and the jobs see at the same
	// path. Empty skips the checks that need one (a job appending to a
	// file, a marker a surviving child would write).
	SharedDir string
	// Workdir, when set, is every spec's Workdir, and the suite checks the
	// jobs run there.
	Workdir string
	// JobIDBase offsets the job IDs the suite uses, so that runs against a
	// long-lived cluster do not collide; default derived from the clock.
	JobIDBase int64
	// ScalePool is an elastic pool that the Scaler tests (RunScaler) may
	// grow to 2 nodes and shrink back to 1. Empty skips them; so does a
	// backend that is not a backend.Scaler.
	ScalePool string
	// LogCap says the driver stores its attempts' output and honours
	// Spec.MaxLogBytes (the LogCap test); false skips that test.
	LogCap bool
}

type suite struct {
	b    backend.Backend
	opt  Options
	next atomic.Int64
}

// Run runs the suite against b. Subtests run in parallel, so b must be safe
// for concurrent use, as the contract requires. Each subtest waits for its
// attempts to end and forgets them.
func Run(t *testing.T, b backend.Backend, opt Options) {
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Poll <= 0 {
		opt.Poll = 50 * time.Millisecond
	}
	if opt.MaxNodes <= 0 {
		opt.MaxNodes = 1
	}
	if opt.JobIDBase == 0 {
		opt.JobIDBase = time.Now().UnixNano() / 1e3 % 1e12 * 1000
	}
	s := &suite{b: b, opt: opt}
	for _, tc := range []struct {
		name string
		f    func(t *testing.T)
	}{
		{"Succeeds", s.testSucceeds},
		{"Fails", s.testFails},
		{"SetupFails", s.testSetupFails},
		{"SubmitTwice", s.testSubmitTwice},
		{"Cancel", s.testCancel},
		{"CancelUnknown", s.testCancelUnknown},
		{"LogsFollow", s.testLogsFollow},
		{"LogsFollowStopsWithContext", s.testLogsFollowContext},
		{"LogsUnknown", s.testLogsUnknown},
		{"LogCap", s.testLogCap},
		{"LogTail", s.testLogTail},
		{"Gang", s.testGang},
		{"CUDAVisibleDevices", s.testCUDA},
		{"Workdir", s.testWorkdir},
		{"ObserveAll", s.testObserveAll},
		{"Forget", s.testForget},
		{"Scaler", func(t *testing.T) { RunScaler(t, b, opt) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t)
		})
	}
}

// spec is a one-node spec with a fresh name.
func (s *suite) spec(run string) backend.Spec {
	id := s.opt.JobIDBase + s.next.Add(1)
	return backend.Spec{
		Name:    backend.Name(id, 1),
		JobID:   id,
		Attempt: 1,
		Team:    "conformance",
		Nodes:   s.nodes(1),
		Run:     run,
		Workdir: s.opt.Workdir,
	}
}

func (s *suite) nodes(n int) []backend.Node {
	nodes := make([]backend.Node, n)
	for i := range nodes {
		nodes[i] = backend.Node{Index: i, GPUs: slices.Clone(s.opt.GPUs)}
	}
	return nodes
}

func (s *suite) submit(t *testing.T, spec backend.Spec) {
	t.Helper()
	if err := s.b.Submit(context.Background(), spec); err != nil {
		t.Fatalf("Submit(%s): %v", spec.Name, err)
	}
	t.Cleanup(func() {
		// Stop and drop whatever a failed test left behind.
		ctx := context.Background()
		_ = s.b.Cancel(ctx, spec.Name)
		deadline := time.Now().Add(s.opt.Timeout)
		for time.Now().Before(deadline) {
			st, ok := s.observe(t, spec.Name)
			if !ok || ended(st.Phase) {
				break
			}
			time.Sleep(s.opt.Poll)
		}
		_ = s.b.Forget(ctx, spec.Name)
	})
}

// observe calls Observe once and returns name's status; it fails the test
// when Observe reports a name twice.
func (s *suite) observe(t *testing.T, name string) (backend.Status, bool) {
	t.Helper()
	all, err := s.b.Observe(context.Background())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	var found backend.Status
	n := 0
	for _, st := range all {
		if st.Name == name {
			found = st
			n++
		}
	}
	if n > 1 {
		t.Fatalf("Observe reported %s %d times", name, n)
	}
	return found, n == 1
}

func ended(p backend.Phase) bool {
	return p != backend.PhasePending && p != backend.PhaseRunning
}

// wait polls until name reaches one of want, failing on timeout or on
// reaching another ended phase.
func (s *suite) wait(t *testing.T, name string, want ...backend.Phase) backend.Status {
	t.Helper()
	deadline := time.Now().Add(s.opt.Timeout)
	var last backend.Status
	for time.Now().Before(deadline) {
		st, ok := s.observe(t, name)
		if !ok {
			t.Fatalf("%s: not reported by Observe", name)
		}
		last = st
		if slices.Contains(want, st.Phase) {
			return st
		}
		if ended(st.Phase) {
			t.Fatalf("%s: phase %s (%s), want %v; logs:\n%s", name, st.Phase, st.Message, want, s.logs(t, name))
		}
		time.Sleep(s.opt.Poll)
	}
	t.Fatalf("%s: still %s (%s) after %v, want %v", name, last.Phase, last.Message, s.opt.Timeout, want)
	return last
}

// waitEnded polls until name has ended, whichever way.
func (s *suite) waitEnded(t *testing.T, name string) backend.Status {
	t.Helper()
	return s.wait(t, name, backend.PhaseSucceeded, backend.PhaseFailed, backend.PhaseLost)
}

// logs reads name's logs without following.
func (s *suite) logs(t *testing.T, name string) string {
	t.Helper()
	r, err := s.b.Logs(context.Background(), name, false)
	if err != nil {
		t.Fatalf("Logs(%s): %v", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Logs(%s): read: %v", name, err)
	}
	return string(data)
}

func (s *suite) testSucceeds(t *testing.T) {
	spec := s.spec("echo hello-from-run; sleep 2; echo bye")
	spec.Setup = "echo hello-from-setup"
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseRunning)
	st := s.wait(t, spec.Name, backend.PhaseSucceeded)
	if st.ExitCode == nil || *st.ExitCode != 0 {
		t.Errorf("ExitCode = %v, want 0", fmtCode(st.ExitCode))
	}
	if !st.Started.IsZero() && !st.Ended.IsZero() && st.Ended.Before(st.Started) {
		t.Errorf("Ended %v before Started %v", st.Ended, st.Started)
	}
	logs := s.logs(t, spec.Name)
	for _, want := range []string{"hello-from-setup\n", "hello-from-run\n", "bye\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if i, j := strings.Index(logs, "hello-from-setup"), strings.Index(logs, "hello-from-run"); i > j {
		t.Errorf("run before setup:\n%s", logs)
	}
}

func (s *suite) testFails(t *testing.T) {
	spec := s.spec("echo before-exit; exit 3")
	s.submit(t, spec)
	st := s.wait(t, spec.Name, backend.PhaseFailed)
	if st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("ExitCode = %v, want 3", fmtCode(st.ExitCode))
	}
	if logs := s.logs(t, spec.Name); !strings.Contains(logs, "before-exit") {
		t.Errorf("logs lack the output before the failure:\n%s", logs)
	}
}

func (s *suite) testSetupFails(t *testing.T) {
	spec := s.spec("echo run-must-not-run")
	spec.Setup = "echo in-setup; exit 4"
	s.submit(t, spec)
	st := s.wait(t, spec.Name, backend.PhaseFailed)
	if st.ExitCode == nil || *st.ExitCode != 4 {
		t.Errorf("ExitCode = %v, want 4", fmtCode(st.ExitCode))
	}
	logs := s.logs(t, spec.Name)
	if !strings.Contains(logs, "in-setup") || strings.Contains(logs, "run-must-not-run") {
		t.Errorf("want setup's output and not run's:\n%s", logs)
	}
}

func (s *suite) testSubmitTwice(t *testing.T) {
	spec := s.spec("")
	count := ""
	if s.opt.SharedDir != "" {
		count = filepath.Join(s.opt.SharedDir, spec.Name+".count")
		spec.Run = "echo started >> " + shellQuote(count) + "; "
	}
	spec.Run += "echo started-once; sleep 1"
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() { errs <- s.b.Submit(context.Background(), spec) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	s.submit(t, spec) // registers cleanup; must be a no-op as well
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	s.submit(t, spec) // after the end, before Forget: still a no-op
	time.Sleep(500 * time.Millisecond)
	if st, _ := s.observe(t, spec.Name); st.Phase != backend.PhaseSucceeded {
		t.Errorf("after a Submit of an ended attempt: phase %s, want it left Succeeded", st.Phase)
	}
	if n := strings.Count(s.logs(t, spec.Name), "started-once"); n != 1 {
		t.Errorf("the job ran %d times, want 1", n)
	}
	if count != "" {
		data, err := os.ReadFile(count)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), "started\n"); n != 1 {
			t.Errorf("%s has %d lines, want 1", count, n)
		}
	}
}

func (s *suite) testCancel(t *testing.T) {
	spec := s.spec("")
	marker, gate := "", ""
	if s.opt.SharedDir != "" {
		marker = filepath.Join(s.opt.SharedDir, spec.Name+".survived")
		gate = filepath.Join(s.opt.SharedDir, spec.Name+".gate")
	}
	// A child in the background that would announce itself, and a
	// foreground sleep far longer than the test. With a shared directory
	// the child announces itself once the test opens a gate, after the
	// attempt has ended, so that however long the backend takes to report
	// Running and to stop it, only a child that survived the end speaks;
	// without one it speaks after 2s.
	child := "sleep 2; echo child-survived"
	if marker != "" {
		child = "while [ ! -e " + shellQuote(gate) + " ]; do sleep 0.1; done; echo child-survived; touch " + shellQuote(marker)
	}
	spec.Run = "(" + child + ") & echo started; sleep 120; echo not-cancelled"
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseRunning)
	waitLog(t, s, spec.Name, "started")
	if err := s.b.Cancel(context.Background(), spec.Name); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st := s.waitEnded(t, spec.Name)
	if st.Phase == backend.PhaseSucceeded {
		t.Errorf("cancelled attempt Succeeded")
	}
	if err := s.b.Cancel(context.Background(), spec.Name); err != nil {
		t.Errorf("Cancel of an ended attempt: %v, want nil", err)
	}
	if gate != "" {
		time.Sleep(time.Second) // a moment for the backend to finish the kill it reported
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the child polls every 0.1s
	} else {
		time.Sleep(3 * time.Second) // past the child's 2s
	}
	logs := s.logs(t, spec.Name)
	if strings.Contains(logs, "child-survived") || strings.Contains(logs, "not-cancelled") {
		t.Errorf("a process survived Cancel:\n%s", logs)
	}
	if marker != "" {
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("a child survived Cancel: %s exists", marker)
		}
	}
}

func (s *suite) testCancelUnknown(t *testing.T) {
	if err := s.b.Cancel(context.Background(), s.spec("").Name); err != nil {
		t.Errorf("Cancel of an unknown attempt: %v, want nil", err)
	}
}

// envScript prints what a multi-node job reads from its environment, one
// KEY=VALUE a line, node IPs joined with commas.
const envScript = `echo "RANK=$GPUBROKER_NODE_RANK"
echo "NUM=$GPUBROKER_NUM_NODES"
echo "IPS=${GPUBROKER_NODE_IPS//$'\n'/,}"
echo "GPN=$GPUBROKER_GPUS_PER_NODE"
echo "JOB=$GPUBROKER_JOB_ID"
echo "ATTEMPT=$GPUBROKER_ATTEMPT"
echo "CKPT=$GPUBROKER_CHECKPOINT_DIR"
echo "SKY_RANK=$SKYPILOT_NODE_RANK"
echo "SKY_NUM=$SKYPILOT_NUM_NODES"
echo "SKY_IPS=${SKYPILOT_NODE_IPS//$'\n'/,}"
echo "SKY_GPN=$SKYPILOT_NUM_GPUS_PER_NODE"
echo "SKY_TASK=${SKYPILOT_TASK_ID:+set}"
echo "CVD=$CUDA_VISIBLE_DEVICES"
echo "CUSTOM=$CONFORMANCE_VAR"
`

// parseEnv reads envScript's output per rank ("" for a one-node attempt).
func parseEnv(logs string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, l := range strings.Split(logs, "\n") {
		rank := ""
		if rest, ok := strings.CutPrefix(l, "[rank "); ok {
			r, after, ok := strings.Cut(rest, "] ")
			if !ok {
				continue
			}
			rank, l = r, after
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		if out[rank] == nil {
			out[rank] = map[string]string{}
		}
		out[rank][k] = v
	}
	return out
}

func (s *suite) testGang(t *testing.T) {
	if s.opt.MaxNodes < 2 {
		t.Skip("the backend cannot start a 2-node gang here (Options.MaxNodes)")
	}
	spec := s.spec(envScript)
	spec.Nodes = s.nodes(2)
	spec.CheckpointDir = "/ckpt/conformance"
	spec.Envs = map[string]string{"CONFORMANCE_VAR": "a value with spaces"}
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	logs := s.logs(t, spec.Name)
	env := parseEnv(logs)
	if len(env) != 2 || env["0"] == nil || env["1"] == nil {
		t.Fatalf("want output prefixed [rank 0] and [rank 1]:\n%s", logs)
	}
	gpn := strconv.Itoa(len(s.opt.GPUs))
	for _, rank := range []string{"0", "1"} {
		e := env[rank]
		want := map[string]string{
			"RANK": rank, "NUM": "2", "GPN": gpn,
			"JOB": strconv.FormatInt(spec.JobID, 10), "ATTEMPT": "1",
			"CKPT": spec.CheckpointDir, "CUSTOM": "a value with spaces",
			"SKY_RANK": rank, "SKY_NUM": "2", "SKY_GPN": gpn, "SKY_TASK": "set",
		}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("rank %s: %s=%q, want %q", rank, k, e[k], v)
			}
		}
		ips := strings.Split(e["IPS"], ",")
		if len(ips) != 2 || slices.Contains(ips, "") {
			t.Errorf("rank %s: GPUBROKER_NODE_IPS %q, want 2 addresses, one a line", rank, e["IPS"])
		}
		if e["SKY_IPS"] != e["IPS"] {
			t.Errorf("rank %s: SKYPILOT_NODE_IPS %q != GPUBROKER_NODE_IPS %q", rank, e["SKY_IPS"], e["IPS"])
		}
		if e["IPS"] != env["0"]["IPS"] {
			t.Errorf("ranks disagree on the node addresses: %q vs %q", e["IPS"], env["0"]["IPS"])
		}
	}
}

func (s *suite) testCUDA(t *testing.T) {
	if len(s.opt.GPUs) == 0 || s.opt.SkipGPUEnv {
		t.Skip("no GPU slots to check (Options.GPUs, Options.SkipGPUEnv)")
	}
	spec := s.spec(envScript)
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	want := make([]string, len(s.opt.GPUs))
	for i, g := range s.opt.GPUs {
		want[i] = strconv.Itoa(g)
	}
	if got := parseEnv(s.logs(t, spec.Name))[""]["CVD"]; got != strings.Join(want, ",") {
		t.Errorf("CUDA_VISIBLE_DEVICES=%q, want %q", got, strings.Join(want, ","))
	}
}

func (s *suite) testWorkdir(t *testing.T) {
	if s.opt.Workdir == "" {
		t.Skip("no Options.Workdir")
	}
	spec := s.spec("echo \"PWD=$(pwd -P)\"")
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	want, err := filepath.EvalSymlinks(s.opt.Workdir)
	if err != nil {
		want = s.opt.Workdir
	}
	if got := parseEnv(s.logs(t, spec.Name))[""]["PWD"]; got != want {
		t.Errorf("ran in %q, want %q", got, want)
	}
}

func (s *suite) testObserveAll(t *testing.T) {
	var names []string
	for i := range 3 {
		spec := s.spec("sleep 1; exit " + strconv.Itoa(i))
		s.submit(t, spec)
		names = append(names, spec.Name)
	}
	// One call sees every attempt, running and then ended.
	deadline := time.Now().Add(s.opt.Timeout)
	for {
		all, err := s.b.Observe(context.Background())
		if err != nil {
			t.Fatalf("Observe: %v", err)
		}
		byName := map[string]backend.Status{}
		for _, st := range all {
			if _, dup := byName[st.Name]; dup {
				t.Fatalf("Observe reported %s twice", st.Name)
			}
			byName[st.Name] = st
		}
		done := true
		for _, n := range names {
			st, ok := byName[n]
			if !ok {
				t.Fatalf("Observe did not report %s", n)
			}
			done = done && ended(st.Phase)
		}
		if done {
			for i, n := range names {
				st := byName[n]
				want := backend.PhaseFailed
				if i == 0 {
					want = backend.PhaseSucceeded
				}
				if st.Phase != want || st.ExitCode == nil || *st.ExitCode != i {
					t.Errorf("%s: %s exit %s, want %s exit %d", n, st.Phase, fmtCode(st.ExitCode), want, i)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all ended after %v", s.opt.Timeout)
		}
		time.Sleep(s.opt.Poll)
	}
}

func (s *suite) testForget(t *testing.T) {
	spec := s.spec("echo bye")
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	ctx := context.Background()
	if err := s.b.Forget(ctx, spec.Name); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if st, ok := s.observe(t, spec.Name); ok {
		t.Errorf("Observe still reports a forgotten attempt: %+v", st)
	}
	if err := s.b.Forget(ctx, spec.Name); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Forget twice: %v, want nil or ErrNotFound", err)
	}
}

func fmtCode(c *int) string {
	if c == nil {
		return "nil"
	}
	return strconv.Itoa(*c)
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
