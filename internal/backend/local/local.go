package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gpubroker/internal/backend"
)

// Options configures a local Backend. The zero value is usable.
type Options struct {
	// Hostname is recorded with every attempt; default os.Hostname().
	Hostname string
	// GPUs is how many GPUs this machine has when nvidia-smi is absent.
	GPUs int
	// Clock gives the submit time and measures the grace period; default
	// time.Now.
	Clock func() time.Time
	// Grace is how long a process group has between SIGTERM and SIGKILL;
	// default 5s.
	Grace time.Duration
	// NvidiaSMI is the nvidia-smi command GPUs runs; default "nvidia-smi"
	// looked up in PATH.
	NvidiaSMI string
	// LogPoll is how often a following Logs looks for new output; default
	// 100ms.
	LogPoll time.Duration
	// Isolation, when set, runs each job under a uid of its team's own
	// (the broker must run as root); nil: as the broker's user. Either
	// way a job's environment is built from scratch (see the package
	// documentation).
	Isolation *Isolation
}

// Backend runs attempts as local process groups. It is safe for concurrent
// use. All of its state is in files under its directory (see the package
// documentation); the fields below are caches and in-flight bookkeeping.
type Backend struct {
	dir  string
	opts Options
	bash string
	mv   string
	// setpriv runs the job under its team's uid; empty without Isolation.
	setpriv string

	mu sync.Mutex
	// starting counts Submits in progress per name: their attempts are
	// Pending, not Lost, while nodes are still being started.
	starting map[string]int
	// recs caches the immutable part of each attempt's record.
	recs map[string]record
	// final caches ended attempts' statuses: an ended attempt never changes.
	final map[string]backend.Status
	// stopping is when this Backend first sent SIGTERM to an attempt's gang.
	stopping map[string]time.Time
	// gen counts Forgets, so an Observe racing a Forget does not cache what
	// was just forgotten.
	gen uint64
	// adopted holds the Backends over other brokers' directories on this
	// machine (Adopt), by directory.
	adopted map[string]*Backend
}

var (
	_ backend.Backend       = (*Backend)(nil)
	_ backend.Health        = (*Backend)(nil)
	_ backend.GPUDiscoverer = (*Backend)(nil)
	_ backend.LogTailer     = (*Backend)(nil)
)

// Directory entries below the state directory that are not attempts. Attempt
// names never start with a dot.
const (
	logsDir  = ".logs"
	trashDir = ".trash"
)

// workDir is the job's own directory in its attempt directory: its HOME,
// and where it starts when the spec gives no Workdir.
const workDir = "work"

// New opens (creating it if needed) the state directory dir. Attempts that a
// previous Backend started there are picked up: see the package
// documentation for what happens to them.
func New(dir string, opts Options) (*Backend, error) {
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("local: hostname: %w", err)
		}
		opts.Hostname = h
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.NvidiaSMI == "" {
		opts.NvidiaSMI = "nvidia-smi"
	}
	if opts.LogPoll <= 0 {
		opts.LogPoll = 100 * time.Millisecond
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	mv, err := exec.LookPath("mv")
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, logsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("local: state directory: %w", err)
		}
	}
	// Leftovers of a Forget interrupted by a crash.
	if err := os.RemoveAll(filepath.Join(dir, trashDir)); err != nil {
		return nil, fmt.Errorf("local: state directory: %w", err)
	}
	setpriv, err := setupIsolation(dir, opts.Isolation)
	if err != nil {
		return nil, err
	}
	return &Backend{
		dir:      dir,
		opts:     opts,
		bash:     bash,
		mv:       mv,
		setpriv:  setpriv,
		starting: map[string]int{},
		recs:     map[string]record{},
		final:    map[string]backend.Status{},
		stopping: map[string]time.Time{},
	}, nil
}

// record is what spec.json holds.
type record struct {
	Spec      backend.Spec `json:"spec"`
	Host      string       `json:"host"`
	Submitted time.Time    `json:"submitted"`
}

// brief keeps what Observe needs of a record, not the scripts.
func (r record) brief() record {
	return record{
		Spec:      backend.Spec{Name: r.Spec.Name, Nodes: r.Spec.Nodes},
		Host:      r.Host,
		Submitted: r.Submitted,
	}
}

func readRecord(adir string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(adir, "spec.json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("spec.json: %w", err)
	}
	return r, nil
}

// validName rejects names that would escape the state directory or collide
// with its own entries.
func validName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("local: invalid attempt name %q", name)
	}
	return nil
}

// Submit starts one process group per node of spec. It is idempotent by
// spec.Name: the attempt directory is created with mkdir, and when it exists
// already Submit returns nil and starts nothing.
//
// A node that cannot be started gets the reason in its log. When its spec
// is the cause (an environment the kernel refuses, a missing program)
// Submit stops the nodes started and returns a *backend.StartError;
// otherwise (fork fails) the node has no exit status, so the attempt is
// reported Lost and retried rather than Failed.
func (b *Backend) Submit(ctx context.Context, spec backend.Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName(spec.Name); err != nil {
		return err
	}
	if len(spec.Nodes) == 0 {
		return fmt.Errorf("local: %s: no nodes", spec.Name)
	}
	b.mu.Lock()
	b.starting[spec.Name]++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.starting[spec.Name]--; b.starting[spec.Name] == 0 {
			delete(b.starting, spec.Name)
		}
		b.mu.Unlock()
	}()

	adir := filepath.Join(b.dir, spec.Name)
	if err := os.Mkdir(adir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("local: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
	}
	rec := record{Spec: spec, Host: b.opts.Hostname, Submitted: b.opts.Clock()}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("local: submit %s: %w", spec.Name, err)
	}
	// The scripts first, the record last: a record means the attempt is
	// complete enough to start.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"setup.sh", []byte(spec.Setup)},
		{"run.sh", []byte(spec.Run)},
		{"spec.json", js},
	} {
		if err := writeAtomic(filepath.Join(adir, f.name), f.data); err != nil {
			return fmt.Errorf("local: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
		}
	}
	b.mu.Lock()
	b.recs[spec.Name] = rec.brief()
	b.mu.Unlock()

	home, uid, err := b.prepare(adir, spec)
	for rank := range spec.Nodes {
		if err == nil {
			err = b.startNode(adir, home, uid, spec, rank)
		}
		if err != nil {
			// Leave the remaining nodes unstarted. When the spec is the
			// cause the started ones stop now and the caller learns why;
			// otherwise (out of processes, say) the attempt is Lost and
			// the started ones are stopped by Observe.
			appendLog(filepath.Join(adir, nodeFile(rank, "log")), "gpubroker: cannot start node: "+err.Error())
			var se *backend.StartError
			if errors.As(err, &se) {
				if rank > 0 {
					_ = b.Cancel(ctx, spec.Name)
				}
				return err
			}
			break
		}
	}
	return nil
}

// envNUL names the first variable of env holding a NUL byte, which no
// process environment can carry.
func envNUL(env []string) error {
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			name, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("environment variable %q holds a NUL byte", name)
		}
	}
	return nil
}

// startError wraps an exec failure that the attempt's spec causes, which
// would recur on every try, as a backend.StartError: an argument list or
// environment too long (E2BIG) or holding a NUL byte (EINVAL), a program
// missing or not executable. Others (out of processes or memory) are
// returned as they are.
func startError(err error) error {
	for _, e := range []error{syscall.E2BIG, syscall.EINVAL, syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.ENAMETOOLONG, syscall.ENOTDIR} {
		if errors.Is(err, e) {
			return &backend.StartError{Err: err}
		}
	}
	return err
}

func nodeFile(rank int, ext string) string {
	return "node-" + strconv.Itoa(rank) + "." + ext
}

// wrapper is the node's shell. It records its pid (as the broker does: the
// same content, so whichever rename lands last is right), runs setup then
// run, and records the exit code atomically before it ends and releases
// the lock on fd 3, with the time its job ended (bash's EPOCHREALTIME,
// microseconds: a file's mtime has the kernel's tick, a few milliseconds,
// too coarse to tell which node of a gang failed first when the others are
// stopped at once). TERM is trapped so the shell outlives its job long
// enough to record the code of a job that was asked to stop. Its own files
// are private (umask 077); the job gets the broker's umask.
//
// It runs as the broker's user. Without setpriv the job runs as that user
// too, in the workdir (else its work directory). With setpriv the wrapper
// moves to the work directory first (its ancestors need not be reachable
// by the job: the job inherits it as its working directory), and the job
// runs as the team's uid and gid with no other groups and no way to gain
// privileges (no_new_privs), changes to the spec's Workdir as that user,
// and reads its script through fd 9, which the wrapper opened. An empty
// script is not run.
//
// With a log cap ($9 above 0) setup and run write into a pipe to the cap
// filter (backend.CapFilter, $10, run as the broker's user) instead of
// straight into the log; the subshell they run in traps TERM as the shell
// does, so their own exit code is the one recorded.
//
// Arguments: $1 attempt dir, $2 rank, $3 mv, $4 the spec's Workdir, $5
// bash, $6 work dir, $7 setpriv (empty: no isolation), $8 the team's id,
// $9 the node's log cap in bytes (0: none), $10 the cap filter.
const wrapper = `d=$1 r=$2 mv=$3 w=$4 sh=$5 home=$6 sp=$7 id=$8 cap=$9 filter=${10}
um=$(umask); umask 077
read -r -a st < /proc/$$/stat
printf '%s %s\n' "$$" "${st[21]}" > "$d/node-$r.pid.node" && "$mv" -f "$d/node-$r.pid.node" "$d/node-$r.pid"
trap : TERM INT HUP
job() {
	[ -s "$d/$1" ] || return 0
	if [ -z "$sp" ]; then "$sh" -- "$d/$1"; return; fi
	set -- "$1" --reuid="$id" --regid="$id" --clear-groups --no-new-privs --
	if [ -z "$w" ]; then "$sp" "${@:2}" "$sh" -- /dev/fd/9 9< "$d/$1"; return; fi
	"$sp" "${@:2}" "$sh" -c 'cd -- "$1" || exit 1; exec "$2" -- /dev/fd/9' gpubroker-job "$w" "$sh" 9< "$d/$1"
}
work() {
	trap : TERM INT HUP
	local code=0
	if [ -z "$sp" ]; then cd -- "${w:-$home}" || code=1; else cd -- "$home" || code=1; fi
	umask "$um"
	if [ "$code" = 0 ]; then job setup.sh; code=$?; fi
	if [ "$code" = 0 ]; then job run.sh; code=$?; fi
	umask 077
	return "$code"
}
if [ "$cap" -gt 0 ]; then
	work 2>&1 | eval "$filter"
	code=${PIPESTATUS[0]}
else
	work
	code=$?
fi
t=${EPOCHREALTIME:-}
printf '%d %s\n' "$code" "$t" > "$d/node-$r.exit.tmp" && "$mv" -f "$d/node-$r.exit.tmp" "$d/node-$r.exit"
exit "$code"
`

func (b *Backend) startNode(adir, home string, uid int, spec backend.Spec, rank int) error {
	// The lock is taken before the fork and handed to the child as fd 3, so
	// the node is never alive without holding it.
	lock, err := os.OpenFile(filepath.Join(adir, nodeFile(rank, "lock")), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(adir, nodeFile(rank, "log")), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()

	logCap := backend.NodeLogCap(spec)
	cmd := exec.Command(b.bash, "-c", wrapper, "gpubroker-node",
		adir, strconv.Itoa(rank), b.mv, spec.Workdir, b.bash, home, b.setpriv, strconv.Itoa(uid),
		strconv.FormatInt(logCap, 10), backend.CapFilter(logCap))
	cmd.Dir = adir
	cmd.Env = nodeEnv(baseEnv(home), spec, rank)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{lock}
	// A session of its own: its own process group (pgid = pid), and no
	// controlling terminal whose hangup would reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := envNUL(cmd.Env); err != nil {
		// os/exec would refuse it with an error of no kind to test.
		return &backend.StartError{Err: err}
	}
	if err := cmd.Start(); err != nil {
		return startError(err)
	}
	pid := cmd.Process.Pid
	// Until it is reaped below, /proc/PID is this process, even if it has
	// already exited.
	ticks, err := procStartTicks(pid)
	if err == nil {
		err = writeAtomicAs(filepath.Join(adir, nodeFile(rank, "pid")), ".broker",
			[]byte(fmt.Sprintf("%d %d\n", pid, ticks)))
	}
	// Reap it while this broker lives, so it never lingers as a zombie.
	go func() { _ = cmd.Wait() }()
	if err != nil {
		// The node writes its own pid file too; not fatal.
		appendLog(filepath.Join(adir, nodeFile(rank, "log")), "gpubroker: pid file: "+err.Error())
	}
	return nil
}

// nodeEnv is base, then the spec's Envs, then the variables the backend
// sets; os/exec keeps the last value of a repeated key.
func nodeEnv(base []string, spec backend.Spec, rank int) []string {
	env := append([]string(nil), base...)
	for _, k := range sortedKeys(spec.Envs) {
		env = append(env, k+"="+spec.Envs[k])
	}
	gpus := spec.Nodes[rank].GPUs
	slots := make([]string, len(gpus))
	for i, g := range gpus {
		slots[i] = strconv.Itoa(g)
	}
	ips := strings.TrimSuffix(strings.Repeat("127.0.0.1\n", len(spec.Nodes)), "\n")
	n := strconv.Itoa(len(spec.Nodes))
	r := strconv.Itoa(rank)
	per := strconv.Itoa(len(gpus))
	return append(env,
		"CUDA_VISIBLE_DEVICES="+strings.Join(slots, ","),
		"GPUBROKER_JOB_ID="+strconv.FormatInt(spec.JobID, 10),
		"GPUBROKER_ATTEMPT="+strconv.Itoa(spec.Attempt),
		"GPUBROKER_NAME="+spec.Name,
		"GPUBROKER_NODE_RANK="+r,
		"GPUBROKER_NUM_NODES="+n,
		"GPUBROKER_NODE_IPS="+ips,
		"GPUBROKER_GPUS_PER_NODE="+per,
		"GPUBROKER_CHECKPOINT_DIR="+spec.CheckpointDir,
		"SKYPILOT_NODE_RANK="+r,
		"SKYPILOT_NUM_NODES="+n,
		"SKYPILOT_NODE_IPS="+ips,
		"SKYPILOT_NUM_GPUS_PER_NODE="+per,
		"SKYPILOT_TASK_ID="+spec.Name,
	)
}

func writeAtomic(path string, data []byte) error {
	return writeAtomicAs(path, ".tmp", data)
}

// writeAtomicAs writes path through path+suffix and a rename, so readers see
// the old content or the new, never a part.
func writeAtomicAs(path, suffix string, data []byte) error {
	tmp := path + suffix
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(line + "\n")
}

// Health reports whether the state directory is writable.
func (b *Backend) Health(ctx context.Context) error {
	f, err := os.CreateTemp(b.dir, ".health-*")
	if err != nil {
		return fmt.Errorf("local: state directory not writable: %v: %w", err, backend.ErrUnavailable)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("local: state directory: %v: %w", err, backend.ErrUnavailable)
	}
	return nil
}

// GPUs reports this machine as one node: the GPUs `nvidia-smi -L` lists when
// nvidia-smi is installed (an error when it fails: a broken driver should not
// pass for a machine without GPUs), else Options.GPUs.
func (b *Backend) GPUs(ctx context.Context) ([]int, error) {
	path, err := exec.LookPath(b.opts.NvidiaSMI)
	if err != nil {
		return []int{b.opts.GPUs}, nil
	}
	out, err := exec.CommandContext(ctx, path, "-L").Output()
	if err != nil {
		return nil, fmt.Errorf("local: nvidia-smi -L: %v: %w", err, backend.ErrUnavailable)
	}
	return []int{countGPUs(string(out))}, nil
}

// countGPUs counts the "GPU N: ..." lines of `nvidia-smi -L`; MIG devices
// are listed indented below their GPU and are not counted.
func countGPUs(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "GPU ") {
			n++
		}
	}
	return n
}
