package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/backend/slurm"
)

// slurmFleet is the CI Slurm cluster as slurm-up.sh starts it: 4 nodes of
// 8 fake H100s (queue_ahead: see queueAhead).
const slurmFleet = `
clusters:
  - name: slurm-ci
    provider: onprem
    region: dc
    backend: slurm
    queue_ahead: %d
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 4, price_class: committed}
`

// slurmTask is one job of one GPU that does nothing, like sbatch --wrap true.
const slurmTask = "name: tput\nresources:\n  accelerators: H100:1\nrun: \"true\"\n"

// directJobScript mirrors the batch script the Slurm backend writes (see
// internal/backend/slurm/scripts.go: the nodes' addresses from scontrol,
// then one srun task per node), so that both paths run the same work and
// the ratio measures the broker, not a lighter script.
const directJobScript = `#!/bin/bash
declare -A addr
while read -r line; do
  n=${line#NodeName=}; n=${n%% *}
  a=${line#* NodeAddr=}; [ "$a" = "$line" ] && a=$n; a=${a%% *}
  addr[$n]=$a
done < <(scontrol show node -o "$SLURM_JOB_NODELIST" 2>/dev/null)
ips=
while read -r h; do ips+=${addr[$h]:-$h}$'\n'; done < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
export GPUBROKER_NODE_IPS=${ips%$'\n'}
srun --quiet --kill-on-bad-exit=1 --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" \
  --ntasks-per-node=1 --output=/dev/null /bin/bash -c true
exit $?
`

// BenchmarkThroughputSlurm: 500 one-GPU jobs (32 with the smoke size)
// through a gpubroker server (HTTP API, SQLite, the Slurm backend; the
// fleet is the CI cluster's 4 nodes x 8 H100) against the same number of
// sbatch calls of the same script, into the CI Slurm cluster. Admitted is
// when the last job left PENDING in squeue, complete when the last one is
// COMPLETED; both are sampled every 100 ms on both paths alike.
// slurmEngines are the CI cluster's daemons, whose quiet each path waits
// for (settle).
var slurmEngines = []string{"slurmctld", "slurmd", "slurmdbd", "mariadbd"}

func BenchmarkThroughputSlurm(b *testing.B) {
	conf := slurmCIConf(b)
	n := 32
	if fullScale() {
		n = 500
	}
	p := &pair{n: n}
	dir := b.TempDir()
	script := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(script, []byte(directJobScript), 0o755); err != nil {
		b.Fatal(err)
	}
	sq := &squeue{conf: conf}
	timeout := 2 * time.Minute
	if fullScale() {
		timeout = 10 * time.Minute
	}
	i := 0
	for b.Loop() {
		for _, broker := range order(i) {
			waited := settle(slurmEngines...)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			run := time.Now().UnixMilli()
			var t pathTimes
			var err error
			if broker {
				t, err = slurmBroker(b, ctx, conf, sq, n, run)
			} else {
				t, err = slurmDirect(ctx, conf, sq, script, dir, n, run)
			}
			cancel()
			if err != nil {
				b.Fatalf("%s: %v", pathName(broker), err)
			}
			b.Logf("slurm %s (after %s for the engine to settle): %d jobs: submitted %.2fs admitted %.2fs complete %.2fs succeeded %.2fs; %d rounds of %.3fs; until all started, %.1f running on average and nothing queued in %.0f%% of samples (load %s)",
				pathName(broker), waited, n, t.submitted, t.admitted, t.complete, t.api, t.rounds, t.roundMean, t.running, 100*t.dry, load())
			p.add(broker, t)
		}
		i++
	}
	p.report(b)
}

// slurmCIConf finds the CI cluster's slurm.conf ($SLURM_CONF, else
// $SLURM_CI_DIR/env.sh) and checks that slurmctld answers.
func slurmCIConf(b testing.TB) string {
	b.Helper()
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		dir := os.Getenv("SLURM_CI_DIR")
		if dir == "" {
			dir = "/tmp/slurm-ci"
		}
		data, _ := os.ReadFile(filepath.Join(dir, "env.sh"))
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "export SLURM_CONF="); ok {
				conf = strings.Trim(v, `'"`)
			}
		}
	}
	const how = "Slurm not running; start it with scripts/engines/slurm-up.sh and source $SLURM_CI_DIR/env.sh"
	if conf == "" {
		requireEngine(b, how+" (no SLURM_CONF)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := slurm.CommandRunner(conf)(ctx, "scontrol", "ping")
	if err != nil || !strings.Contains(string(out), "UP") {
		requireEngine(b, fmt.Sprintf("%s (scontrol ping: %s %v)", how, strings.TrimSpace(string(out)), err))
	}
	return conf
}

// slurmDirect submits n sbatch calls of script from submitWorkers
// processes at once and waits until all are COMPLETED.
func slurmDirect(ctx context.Context, conf string, sq *squeue, script, dir string, n int, run int64) (pathTimes, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tput-%d-%d", run, i)
	}
	run1 := slurm.CommandRunner(conf)
	t0 := time.Now()
	watch := sq.watch(ctx, names, t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan string)
	for range submitWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				_, err := run1(ctx, "sbatch", "--parsable", "--job-name="+name, "--nodes=1", "--ntasks-per-node=1",
					"--output="+filepath.Join(dir, "slurm-%j.out"), "--chdir="+dir, "--export=ALL", "--no-requeue",
					"--gres=gpu:h100:1", script)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range names {
		next <- name
	}
	close(next)
	wg.Wait()
	submitted := time.Since(t0).Seconds()
	if firstErr != nil {
		return pathTimes{}, firstErr
	}
	t, err := watch()
	t.submitted = submitted
	return t, err
}

// slurmBroker runs a fresh broker on the CI cluster, submits n jobs through
// its API and waits until Slurm completed them all and the broker recorded
// them SUCCEEDED.
func slurmBroker(b *testing.B, ctx context.Context, conf string, sq *squeue, n int, run int64) (pathTimes, error) {
	cmds := &timedRunner{next: slurm.CommandRunner(conf), n: map[string]int{}, took: map[string]time.Duration{}}
	be, err := slurm.New(slurm.Options{Conf: conf, Dir: filepath.Join(b.TempDir(), "slurm"), GPUType: "h100", Runner: cmds.run})
	if err != nil {
		return pathTimes{}, err
	}
	defer func() { b.Logf("slurm broker: commands run: %s", cmds) }()
	// IDs from run*1000: unique across runs, and never a name another test
	// of the same hour used.
	first := run * 1000
	env := startBroker(b, be, fmt.Sprintf(slurmFleet, queueAhead(b, 4)), first)
	defer env.close()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("gpub-%d-1", first+int64(i))
	}
	t0 := time.Now()
	watch := sq.watch(ctx, names, t0)
	ids, err := env.submit(ctx, n, slurmTask)
	submitted := time.Since(t0).Seconds()
	if err != nil {
		return pathTimes{}, err
	}
	if ids[0] != first || ids[n-1] != first+int64(n-1) {
		return pathTimes{}, fmt.Errorf("job IDs %d..%d, want %d..%d", ids[0], ids[n-1], first, first+int64(n-1))
	}
	t, err := watch()
	if err != nil {
		return t, err
	}
	t.submitted = submitted
	t.api, err = env.waitSucceeded(ctx, n, t0)
	t.rounds, t.roundMean = env.rounds(ctx)
	return t, err
}

// squeue samples the CI cluster's jobs for the benchmarks.
type squeue struct{ conf string }

// watch starts sampling the named jobs every 100 ms; the function it
// returns waits until all are COMPLETED and reports when every job had
// left PENDING and when all were COMPLETED, in seconds after t0.
func (q *squeue) watch(ctx context.Context, names []string, t0 time.Time) func() (pathTimes, error) {
	type result struct {
		t   pathTimes
		err error
	}
	done := make(chan result, 1)
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	go func() {
		var t pathTimes
		var samples, running, dry int
		for {
			states, err := q.states(ctx)
			if err != nil {
				done <- result{t, err}
				return
			}
			started, completed, run, queued := 0, 0, 0, 0
			for name := range want {
				switch st := states[name]; st {
				case "":
				case "PENDING", "CONFIGURING":
					queued++
				case "COMPLETED":
					started++
					completed++
				case "RUNNING", "COMPLETING":
					started++
					run++
				default:
					done <- result{t, fmt.Errorf("job %s is %s", name, st)}
					return
				}
			}
			at := time.Since(t0).Seconds()
			if started > 0 && t.admitted == 0 {
				samples++
				running += run
				if queued == 0 {
					dry++
				}
				t.running, t.dry = float64(running)/float64(samples), float64(dry)/float64(samples)
			}
			if started == len(want) && t.admitted == 0 {
				t.admitted = at
			}
			if completed == len(want) {
				t.complete = at
				done <- result{t, nil}
				return
			}
			select {
			case <-ctx.Done():
				done <- result{t, fmt.Errorf("%d of %d started, %d completed: %w", started, len(want), completed, ctx.Err())}
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() (pathTimes, error) {
		r := <-done
		return r.t, r.err
	}
}

// states maps the name of every job slurmctld remembers to its state (the
// newest job of a name wins).
func (q *squeue) states(ctx context.Context) (map[string]string, error) {
	out, err := slurm.CommandRunner(q.conf)(ctx, "squeue", "--me", "--noheader", "--states=all", "--Format=JobID:|,State:|,Name:")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	ids := map[string]int64{}
	for _, l := range bytes.Split(out, []byte("\n")) {
		f := strings.SplitN(string(l), "|", 3)
		if len(f) != 3 {
			continue
		}
		id, _ := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
		name := strings.TrimSpace(f[2])
		if id >= ids[name] {
			ids[name] = id
			m[name] = strings.TrimSpace(f[1])
		}
	}
	return m, nil
}

// timedRunner counts the Slurm commands the broker's backend runs, and the
// time they took, by command, for the log.
type timedRunner struct {
	next slurm.Runner
	mu   sync.Mutex
	n    map[string]int
	took map[string]time.Duration
}

func (r *timedRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := r.next(ctx, name, args...)
	r.mu.Lock()
	r.n[name]++
	r.took[name] += time.Since(start)
	r.mu.Unlock()
	return out, err
}

func (r *timedRunner) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.n))
	for n := range r.n {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d (%.1fs, %.0f ms each)", n, r.n[n], r.took[n].Seconds(),
			float64(r.took[n].Milliseconds())/float64(r.n[n])))
	}
	return strings.Join(parts, ", ")
}
