package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"gpubroker/internal/backend/kubernetes/kubetest/procnode"
)

// The failover test: a fleet of three clusters on three providers (a
// private Slurm cluster as aws, a local cluster as onprem, a Kubernetes
// cluster with a procnode as azure), 20 checkpointing jobs, and the Slurm
// controller killed mid-run.
// It checks what docs/tasks.md promises: every job succeeds, the jobs that
// were on Slurm resume elsewhere from their checkpoint, no step of any job
// is committed twice (old attempts keep running on the Slurm nodes while
// the controller is dead, and are fenced off), and once the controller is
// back what still runs there is cancelled.

const (
	foJobs = 20
	// foSteps is the length of the 8 jobs submitted first (the engine puts
	// them on Slurm, the cheapest); foShortSteps that of the 12 others,
	// which end soon enough to leave room for the failed-over ones while
	// the old attempts still run on the Slurm nodes.
	foSteps      = 40
	foShortSteps = 8
	// foStep is how long one step of work takes.
	foStep = 300 * time.Millisecond
	// foClusterTimeout is the server's --cluster-timeout.
	foClusterTimeout = 2 * time.Second
)

// foScript is the test job: the checkpoint pattern of docs/tasks.md. The
// progress file is the checkpoint (one line per committed step: "STEP
// ATTEMPT"); starts records where each run began ("ATTEMPT STEP RUN").
const foScript = `set -u
umask 000 # one checkpoint for attempts on Slurm and on the local backend, which run as different users
D="$GPUBROKER_CHECKPOINT_DIR"; A="$GPUBROKER_ATTEMPT"; ME="$A $(hostname)-$$-$RANDOM"
mkdir -p "$D"
exec 9>>"$D/lock"
flock 9
read -r OA _ < "$D/owner" 2>/dev/null || OA=0
if [ "$A" -lt "$OA" ]; then echo "stale: attempt $OA owns $D"; exit 0; fi
echo "$ME" > "$D/owner"
next=0; [ -f "$D/progress" ] && next=$(wc -l < "$D/progress")
echo "$A $next $ME" >> "$D/starts"
echo "attempt $A resumes at step $next"
flock -u 9
while [ "$next" -lt %d ]; do
  sleep %s
  flock 9
  if [ "$(cat "$D/owner")" != "$ME" ]; then echo "fenced: $(cat "$D/owner") owns $D"; exit 75; fi
  echo "$next $A" >> "$D/progress"
  flock -u 9
  next=$((next + 1))
done
echo done
`

// privateSlurm is a Slurm cluster of the test's own (scripts/engines/
// slurm-up.sh under a temporary SLURM_CI_DIR, on free ports), so that
// killing its controller disturbs no other test.
type privateSlurm struct {
	dir, conf string
}

func startPrivateSlurm(t *testing.T) *privateSlurm {
	t.Helper()
	if _, err := exec.LookPath("slurmctld"); err != nil || os.Geteuid() != 0 {
		why := "slurmctld is not installed"
		if err == nil {
			why = "slurm-up.sh needs root"
		}
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatalf("%s and GPUBROKER_REQUIRE_ENGINES=1", why)
		}
		t.Skipf("%s; install Slurm (scripts/engines/slurm-up.sh does) to run the failover test", why)
	}
	dir := t.TempDir()
	ctld := freePort(t)
	slurmd := freePorts(t, 2)
	env := append(cleanEnv(), "SLURM_CI_DIR="+dir, "SLURM_CI_NODES=2", "SLURM_CI_ACCOUNTING=0", "SLURM_CI_REST=0",
		"SLURM_CI_CTLD_PORT="+strconv.Itoa(ctld), "SLURM_CI_SLURMD_PORT="+strconv.Itoa(slurmd))
	s := &privateSlurm{dir: dir, conf: filepath.Join(dir, "etc", "slurm.conf")}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs(t)
		}
		down := exec.Command("scripts/engines/slurm-down.sh")
		down.Dir, down.Env = repoRoot, env
		if out, err := down.CombinedOutput(); err != nil {
			t.Logf("slurm-down.sh: %v\n%s", err, out)
		}
	})
	up := exec.Command("scripts/engines/slurm-up.sh")
	up.Dir, up.Env = repoRoot, env
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("slurm-up.sh: %v\n%s", err, out)
	}
	return s
}

// dumpLogs logs what slurmctld and the slurmd wrote about jobs (the
// temporary directory goes with the test).
func (s *privateSlurm) dumpLogs(t *testing.T) {
	logs, _ := filepath.Glob(filepath.Join(s.dir, "log", "*"))
	for _, l := range logs {
		var keep []string
		for _, line := range strings.Split(readFile(l), "\n") {
			if strings.Contains(line, "JobId=") || strings.Contains(line, "job_id") || strings.Contains(line, "JobID") ||
				strings.Contains(line, "job ") || strings.Contains(line, "Recovered") || strings.Contains(line, "error") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 400 {
			keep = keep[len(keep)-400:]
		}
		t.Logf("%s (job lines):\n%s", filepath.Base(l), strings.Join(keep, "\n"))
	}
}

// freePorts returns the first of n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := freePort(t)
		ok := true
		for p := base + 1; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

func (s *privateSlurm) ctldPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "pids", "slurmctld.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("slurmctld pid: %q %v", b, err)
	}
	return pid
}

// killController SIGKILLs slurmctld; the slurmd keep running their jobs.
func (s *privateSlurm) killController(t *testing.T) {
	t.Helper()
	pid := s.ctldPID(t)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill slurmctld %d: %v", pid, err)
	}
	for syscall.Kill(pid, 0) == nil {
		// A zombie until slurm-up.sh's subshell reaps it; it no longer answers.
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restartController starts slurmctld again as slurm-up.sh does (no -c: it
// recovers its state from StateSaveLocation) and waits until it answers.
func (s *privateSlurm) restartController(t *testing.T) {
	t.Helper()
	log, err := os.Create(filepath.Join(s.dir, "log", "slurmctld-restart.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("slurmctld", "-D", "-f", s.conf)
	cmd.Env = append(cleanEnv(), "SLURM_CONF="+s.conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	// slurm-down.sh stops what the pid file names.
	if err := os.WriteFile(filepath.Join(s.dir, "pids", "slurmctld.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := s.command("scontrol", "ping")
		if strings.Contains(out, "is UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted slurmctld does not answer: %s\n%s", out, readFile(log.Name()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jobProcesses lists the processes (pid:command) of this cluster's jobs
// still alive: every process whose environment names this cluster's
// slurm.conf (sbatch passes the broker's environment on) other than the
// daemons themselves.
func (s *privateSlurm) jobProcesses() []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		name := strings.TrimSpace(string(comm))
		if err != nil || name == "slurmd" || name == "slurmctld" || name == "slurmscriptd" {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "SLURM_CONF="+s.conf {
				if stat, _ := os.ReadFile(filepath.Join(d, "stat")); !strings.Contains(string(stat), ") Z") {
					out = append(out, filepath.Base(d)+":"+name)
				}
				break
			}
		}
	}
	return out
}

func (s *privateSlurm) command(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(cleanEnv(), "SLURM_CONF="+s.conf)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// foJob is what the test reads of a job.
type foJob struct {
	ID        int64  `json:"id"`
	State     string `json:"state"`
	Attempt   int    `json:"attempt"`
	Reason    string `json:"reason"`
	Placement *struct {
		Cluster string `json:"cluster"`
	} `json:"placement"`
	Workload struct {
		Name          string `json:"name"`
		CheckpointDir string `json:"checkpoint_dir"`
	} `json:"workload"`
}

type foAttempt struct {
	Attempt int    `json:"attempt"`
	Cluster string `json:"cluster"`
	Region  string `json:"region"`
	State   string `json:"state"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("the failover test runs Slurm and 20 jobs; skipped with -short")
	}
	slurm := startPrivateSlurm(t)
	bin := binary(t)
	dir := t.TempDir()
	started := time.Now()

	third := newThirdCluster(t)
	t.Logf("clusters: aws-slurm (private Slurm), onprem (local), azure (%s)", third.kind)
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	srv := newServerProc(t, bin, dir, "--listen", strings.TrimPrefix(url, "http://"),
		"--round", "200ms", "--cluster-timeout", foClusterTimeout.String())
	srv.start(url)
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{url: url, token: strings.TrimSpace(string(token)), hc: &http.Client{Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Slurm's committed capacity costs nothing: the engine fills it first
	// (8 jobs of 2 GPUs), then on-prem's reserved node, then azure.
	fleet := fmt.Sprintf(`clusters:
  - name: aws-slurm
    provider: aws
    region: us-east-1
    backend: slurm
    slurm: {conf: %s, partition: gpu, gres_type: h100, dir: %s}
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed}]
  - name: onprem
    provider: onprem
    region: dc1
    backend: local
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: ondemand, price_per_gpu_hour: 1}]
%s`, slurm.conf, filepath.Join(dir, "slurm-work"), third.fleet)
	var applied struct {
		Warnings []string `json:"warnings"`
	}
	if err := a.do(ctx, http.MethodPut, "/v1/fleet", map[string]string{"fleet": fleet}, &applied); err != nil {
		t.Fatalf("apply fleet: %v\n%s", err, fleet)
	}

	ckpt := filepath.Join(jobsDir(t), "ckpt") // written by jobs on Slurm and by local jobs, under another uid when root
	eager, want := map[int64]bool{}, map[int64]int{}
	for i := range foJobs {
		n := foSteps
		if i >= 8 {
			n = foShortSteps
		}
		script := fmt.Sprintf(foScript, n, strconv.FormatFloat(foStep.Seconds(), 'f', -1, 64))
		recovery := "FAILOVER"
		if i%2 == 1 {
			recovery = "EAGER_NEXT_REGION"
		}
		spec := fmt.Sprintf("name: fo-%02d\nresources:\n  accelerators: H100:2\njob_recovery: %s\nx-gpubroker:\n  checkpoint_dir: %s\nrun: |\n%s",
			i, recovery, filepath.Join(ckpt, fmt.Sprintf("fo-%02d", i)), indent(script, "  "))
		var out struct {
			Jobs []job `json:"jobs"`
		}
		if err := a.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec, "key": fmt.Sprintf("fo-%02d", i)}, &out); err != nil {
			t.Fatalf("submit fo-%02d: %v", i, err)
		}
		eager[out.Jobs[0].ID] = recovery == "EAGER_NEXT_REGION"
		want[out.Jobs[0].ID] = n
	}

	jobs := func() []foJob {
		t.Helper()
		var out struct {
			Jobs []foJob `json:"jobs"`
		}
		if err := a.do(ctx, http.MethodGet, "/v1/jobs?limit=1000", nil, &out); err != nil {
			t.Fatalf("list jobs: %v", err)
		}
		return out.Jobs
	}
	steps := func(j foJob) int { return countLines(filepath.Join(j.Workload.CheckpointDir, "progress")) }

	// Kill the controller once every job on Slurm has committed 2 steps.
	var onSlurm []foJob
	waitFor(t, ctx, "8 jobs running on Slurm with 2 steps each", func() (bool, string) {
		onSlurm = onSlurm[:0]
		var where []string
		for _, j := range jobs() {
			if j.Placement != nil {
				where = append(where, fmt.Sprintf("%d:%s:%s:%d", j.ID, j.State, j.Placement.Cluster, steps(j)))
				if j.Placement.Cluster == "aws-slurm" {
					if j.State != "RUNNING" || steps(j) < 2 {
						return false, strings.Join(where, " ")
					}
					onSlurm = append(onSlurm, j)
				}
			}
		}
		return len(onSlurm) == 8, strings.Join(where, " ")
	})
	slurm.killController(t)
	killed := time.Now()
	t.Logf("%.1fs: killed slurmctld with %d jobs running on aws-slurm", killed.Sub(started).Seconds(), len(onSlurm))

	// Each lost job runs again elsewhere; then the controller comes back.
	waitFor(t, ctx, "every job lost on Slurm running again elsewhere", func() (bool, string) {
		byID := map[int64]foJob{}
		for _, j := range jobs() {
			byID[j.ID] = j
		}
		var wait []string
		for _, old := range onSlurm {
			j := byID[old.ID]
			if j.State == "SUCCEEDED" || (j.State == "RUNNING" && j.Attempt > old.Attempt) {
				continue
			}
			wait = append(wait, fmt.Sprintf("%d:%s@%d", j.ID, j.State, j.Attempt))
		}
		return len(wait) == 0, strings.Join(wait, " ")
	})
	t.Logf("%.1fs: every lost job runs again elsewhere (%.1fs after the kill)", time.Since(started).Seconds(), time.Since(killed).Seconds())
	slurm.restartController(t)
	t.Logf("%.1fs: slurmctld restarted", time.Since(started).Seconds())

	waitFor(t, ctx, "every job to end", func() (bool, string) {
		var left []string
		for _, j := range jobs() {
			if !terminal(j.State) {
				left = append(left, fmt.Sprintf("%d:%s", j.ID, j.State))
			}
		}
		return len(left) == 0, strings.Join(left, " ")
	})
	t.Logf("%.1fs: every job ended", time.Since(started).Seconds())

	// Nothing of the old attempts runs on Slurm any more: the broker
	// cancelled what the restarted controller still had.
	waitFor(t, ctx, "nothing left running on the Slurm cluster", func() (bool, string) {
		out, err := slurm.command("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%j %T")
		return err == nil && strings.TrimSpace(out) == "", fmt.Sprintf("%s %v", out, err)
	})
	out, _ := slurm.command("squeue", "-h", "-t", "all", "-o", "%j %T")
	t.Logf("Slurm's view after recovery:\n%s", out)
	// Nor on its nodes: no process of a job of this cluster is left.
	waitFor(t, ctx, "no job process left on the Slurm nodes", func() (bool, string) {
		procs := slurm.jobProcesses()
		return len(procs) == 0, strings.Join(procs, " ")
	})
	before := progressOf(t, jobs())
	time.Sleep(3 * foStep)

	final := jobs()
	if diff := progressOf(t, final); diff != before {
		t.Errorf("progress changed after every job ended and Slurm was cleaned up: something still runs")
	}
	failedOver, midway, resumeSteps, relaunched := 0, 0, []string{}, []string{}
	ranOn := map[string]int{}
	for _, j := range final {
		if j.State != "SUCCEEDED" {
			t.Errorf("job %d (%s) ended %s: %s", j.ID, j.Workload.Name, j.State, j.Reason)
		}
		// Every step committed exactly once, in order.
		data, _ := os.ReadFile(filepath.Join(j.Workload.CheckpointDir, "progress"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != want[j.ID] {
			t.Errorf("job %d committed %d steps, want %d:\n%s", j.ID, len(lines), want[j.ID], data)
		}
		for i, l := range lines {
			if f := strings.Fields(l); len(f) != 2 || f[0] != strconv.Itoa(i) {
				t.Errorf("job %d: progress line %d is %q, want step %d once:\n%s", j.ID, i+1, l, i, data)
				break
			}
		}
		var as struct {
			Attempts []foAttempt `json:"attempts"`
		}
		if err := a.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs/%d/attempts", j.ID), nil, &as); err != nil {
			t.Fatalf("attempts of %d: %v", j.ID, err)
		}
		starts := startsOf(t, j.Workload.CheckpointDir)
		for _, at := range as.Attempts {
			if at.Cluster != "" {
				ranOn[at.Cluster]++
			}
		}
		for k, at := range as.Attempts {
			if at.Cluster != "aws-slurm" || at.Outcome != "RETRIED" {
				continue
			}
			if strings.Contains(at.Reason, "cancelled outside the broker") {
				// slurmctld restarted from a state saved before the old
				// attempts' job ids: it handed them out again, and slurmd,
				// still holding the old jobs, refused to launch the new
				// ones ("Job N already running"), so Slurm cancelled them.
				// The broker retries such an attempt (checked above: every
				// step committed once, so it resumed where it stopped).
				if k+1 >= len(as.Attempts) {
					t.Errorf("job %d: no attempt after the one Slurm cancelled: %+v", j.ID, as.Attempts)
				}
				relaunched = append(relaunched, fmt.Sprintf("%d:%d", j.ID, at.Attempt))
				continue
			}
			if !strings.HasPrefix(at.Reason, "Lost: cluster aws-slurm unreachable for") {
				t.Errorf("job %d attempt %d on aws-slurm ended %q, want Lost: cluster aws-slurm unreachable", j.ID, at.Attempt, at.Reason)
			}
			if k+1 >= len(as.Attempts) {
				t.Errorf("job %d: no attempt after the lost one: %+v", j.ID, as.Attempts)
				continue
			}
			next := as.Attempts[k+1]
			if next.Cluster == "aws-slurm" || next.Cluster == "" {
				t.Errorf("job %d: attempt %d after the loss ran on %q, want another cluster", j.ID, next.Attempt, next.Cluster)
			}
			if eager[j.ID] && next.Region == "us-east-1" {
				t.Errorf("job %d (EAGER_NEXT_REGION): attempt %d went back to us-east-1", j.ID, next.Attempt)
			}
			first, ok := starts[next.Attempt]
			if !ok || first == 0 {
				t.Errorf("job %d: attempt %d on %s started at step %d of %d (recorded: %v), want it to resume from its checkpoint", j.ID, next.Attempt, next.Cluster, first, want[j.ID], ok)
			}
			failedOver++
			if first < want[j.ID] {
				midway++
			}
			resumeSteps = append(resumeSteps, fmt.Sprintf("%d:%d@%s", j.ID, first, next.Cluster))
		}
	}
	for _, c := range []string{"aws-slurm", "onprem", third.name} {
		if ranOn[c] == 0 {
			t.Errorf("no attempt ran on cluster %s: %v", c, ranOn)
		}
	}
	if midway == 0 {
		t.Errorf("no failed-over job resumed mid-way: every old attempt finished its work before a new one started")
	}
	if failedOver < len(onSlurm) {
		t.Errorf("%d jobs failed over from aws-slurm, want %d (every job that ran there)", failedOver, len(onSlurm))
	}
	t.Logf("%.1fs in all; attempts per cluster %v; %d jobs failed over from aws-slurm, resuming at steps (job:step@cluster, of %d) %s",
		time.Since(started).Seconds(), ranOn, failedOver, foSteps, strings.Join(resumeSteps, " "))
	if len(relaunched) > 0 {
		t.Logf("attempts Slurm cancelled after its restart (job ids handed out twice), retried: %s", strings.Join(relaunched, " "))
	}
	fenced := 0
	logs, _ := filepath.Glob(filepath.Join(dir, "slurm-work", "*", "node-*.log"))
	for _, l := range logs {
		fenced += strings.Count(readFile(l), "fenced: ")
	}
	t.Logf("%d old attempts on the Slurm nodes were fenced off by a newer one", fenced)
	if t.Failed() {
		for _, j := range final {
			if j.Attempt > 1 {
				t.Logf("gpubroker status %d:\n%s", j.ID, runStatus(t, bin, url, a.token, j.ID))
			}
		}
	} else if len(onSlurm) > 0 {
		t.Logf("gpubroker status %d:\n%s", onSlurm[0].ID, runStatus(t, bin, url, a.token, onSlurm[0].ID))
	}
}

// thirdCluster is the test's azure cluster: a Kubernetes cluster whose
// node is a procnode (pods run as processes on this host) registered in the
// API server scripts/engines/k8s-up.sh started, or, when that is not
// running, a local cluster (the test then says so).
type thirdCluster struct {
	name, kind, fleet string
}

func newThirdCluster(t *testing.T) *thirdCluster {
	t.Helper()
	local := &thirdCluster{name: "azure", kind: "local", fleet: `  - name: azure
    provider: azure
    region: eastus
    backend: local
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: ondemand, price_per_gpu_hour: 3}]
`}
	dir := os.Getenv("K8S_CI_DIR")
	if dir == "" {
		dir = "/tmp/k8s-ci"
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	var client *k8s.Clientset
	if err == nil {
		cfg.Timeout = 5 * time.Second
		if client, err = k8s.NewForConfig(cfg); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			cancel()
		}
	}
	if err != nil {
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatalf("Kubernetes not running (%v) and GPUBROKER_REQUIRE_ENGINES=1; start it with scripts/engines/k8s-up.sh", err)
		}
		t.Logf("Kubernetes not running (%v): the azure cluster is a local one", err)
		return local
	}
	id := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	product := "GBFAILOVER-" + strings.ToUpper(id)
	ns := "gb-failover-" + id
	// The taint keeps other tests' pods off the node; the backend's pods
	// tolerate nvidia.com/gpu:NoSchedule, as GPU nodes are commonly tainted.
	node, err := procnode.Start(context.Background(), procnode.Options{
		RESTConfig: cfg, Name: "gb-failover-" + id, GPUs: 8, Product: product, Dir: t.TempDir(),
		Taints: []corev1.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}},
	})
	if err != nil {
		t.Fatalf("procnode: %v", err)
	}
	t.Cleanup(func() {
		if err := node.Close(); err != nil {
			t.Errorf("procnode Close: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	return &thirdCluster{name: "azure-k8s", kind: "kubernetes", fleet: fmt.Sprintf(`  - name: azure-k8s
    provider: azure
    region: eastus
    backend: kubernetes
    kubernetes: {kubeconfig: %s, namespace: %s, products: {h100: %s}}
    pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: ondemand, price_per_gpu_hour: 3}]
`, kubeconfig, ns, product)}
}

func runStatus(t *testing.T, bin, url, token string, id int64) string {
	cmd := exec.Command(bin, "status", strconv.FormatInt(id, 10), "--server", url, "--token", token)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

// progressOf is every job's progress file, for comparing over time.
func progressOf(t *testing.T, jobs []foJob) string {
	sort.Slice(jobs, func(i, k int) bool { return jobs[i].ID < jobs[k].ID })
	var b strings.Builder
	for _, j := range jobs {
		data, _ := os.ReadFile(filepath.Join(j.Workload.CheckpointDir, "progress"))
		fmt.Fprintf(&b, "%d\n%s", j.ID, data)
	}
	return b.String()
}

// startsOf reads where each attempt's first run began: attempt -> step.
func startsOf(t *testing.T, dir string) map[int]int {
	data, _ := os.ReadFile(filepath.Join(dir, "starts"))
	out := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		a, _ := strconv.Atoi(f[0])
		s, _ := strconv.Atoi(f[1])
		if _, seen := out[a]; !seen {
			out[a] = s
		}
	}
	return out
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// waitFor polls cond every 100ms until it holds, failing the test with
// cond's last words when ctx ends first.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last seen: %s", what, ctx.Err(), state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
