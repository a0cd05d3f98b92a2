package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gpubroker/internal/backend"
)

// Options configures a Slurm Backend.
type Options struct {
	// Conf is the slurm.conf the commands use (SLURM_CONF); default the
	// environment's SLURM_CONF, and Slurm's own default when that is empty.
	Conf string
	// Partition to submit to and discover; empty: the cluster's default for
	// jobs, every partition for discovery.
	Partition string
	// Dir is the shared directory for attempts' scripts and logs; it must
	// have the same path on the broker and on the compute nodes. Required.
	Dir string
	// Account and QOS are what every job is charged to and scheduled
	// under (--account, --qos); empty: the submitting user's defaults.
	Account string
	QOS     string
	// TeamAccounts and TeamQOS override Account and QOS for the jobs of
	// one gpubroker team (Spec.Team), so that Slurm's own fair share and
	// limits see the teams gpubroker sees. An account that Slurm does not
	// know is refused at submit when the cluster enforces associations
	// (and silently replaced by the user's default account when it does
	// not), so create them with sacctmgr first.
	TeamAccounts map[string]string
	TeamQOS      map[string]string
	// GPUType, when set, is the GRES type requested (--gres=gpu:TYPE:N),
	// e.g. "h100"; empty requests any GPU (--gres=gpu:N).
	GPUType string
	// Poll is how often a following Logs asks Slurm whether the attempt
	// has ended; default 1s. Output is read every 100ms regardless.
	Poll time.Duration
	// ListEvery is how often Observe lists the jobs with squeue (and sacct
	// for those slurmctld forgot); default 5s. In between it reports from
	// the last listing and from what each job's script writes as it starts
	// and as it ends, so that a start and a success are seen at once:
	// squeue makes slurmctld pack every job it remembers (MinJobAge),
	// which on a busy controller takes seconds and holds up every sbatch.
	// A due listing runs in the background; Observe waits for one only
	// when the last failed or the one in flight has run for four
	// ListEvery.
	ListEvery time.Duration
	// HealthEvery is how long a healthy answer of Health stands; default
	// 2s. Within it Health asks slurmctld nothing (each check is a
	// `scontrol ping` and an `sinfo`, which a broker's every round
	// otherwise adds to a busy controller); after it, Health returns that
	// answer while it checks again in the background (unless that check
	// has run for four HealthEvery); an unhealthy answer is never kept.
	HealthEvery time.Duration
	// HealthTimeout bounds one health check (`scontrol ping` and `sinfo`
	// together); default 5s. A controller that does not answer within it
	// is unavailable ("scontrol ping: timed out after 5s"), and the
	// commands are killed.
	HealthTimeout time.Duration
	// Lookback bounds how far back sacct searches for a name when nothing
	// else says when it was submitted; default 7 days.
	Lookback time.Duration
	// CommandTimeout bounds each Slurm command; default 60s.
	CommandTimeout time.Duration
	// Runner runs the commands; default CommandRunner(Conf).
	Runner Runner
	// Clock gives submit times; default time.Now.
	Clock func() time.Time
}

// Backend runs attempts as Slurm batch jobs. It is safe for concurrent use.
type Backend struct {
	opts Options
	dir  string

	mu sync.Mutex
	// held are the attempts Observe reports, by name.
	held map[string]record
	// listing is what the last listing reported of each held attempt
	// (see Observe).
	listing fresh[map[string]backend.Status]
	// health is the last health check's answer (see Health).
	health fresh[struct{}]

	// knownMu guards known: the attempt-named jobs Slurm knew of (name ->
	// newest id) when this Backend first submitted, from one squeue and
	// one sacct; nil until then (see Submit).
	knownMu sync.Mutex
	known   map[string]int64
}

var (
	_ backend.Backend       = (*Backend)(nil)
	_ backend.Health        = (*Backend)(nil)
	_ backend.GPUDiscoverer = (*Backend)(nil)
	_ backend.LogTailer     = (*Backend)(nil)
)

// record is attempt.json.
type record struct {
	Name      string    `json:"name"`
	Nodes     int       `json:"nodes"`
	Submitted time.Time `json:"submitted"`
	// JobID is Slurm's id once sbatch returned it; 0 before.
	JobID int64 `json:"job_id,omitempty"`
	// cancelled: Cancel was asked for it (the cancelled marker), so a
	// CANCELLED job is the broker's doing, not Slurm's or an admin's.
	cancelled bool
}

const (
	recordFile    = "attempt.json"
	forgottenFile = "forgotten"
	cancelledFile = "cancelled"
	// exitFile is what the batch script writes as it ends: "JOBID CODE
	// START END" (times in Unix seconds).
	exitFile = "exit-status"
	// startFile is what the batch script writes as it starts: "JOBID
	// START".
	startFile = "started"
	lockFile  = ".submit.lock"
	// namePrefix starts every name backend.Name builds; squeue output is
	// filtered by it before the held set is consulted.
	namePrefix = "gpub-"
)

// New returns a Backend on opts.Dir (created if needed), holding the
// attempts a previous Backend left there (see the package documentation).
// It runs no Slurm command: a cluster that is down does not stop a broker
// from starting.
func New(opts Options) (*Backend, error) {
	if opts.Dir == "" {
		return nil, errors.New("slurm: Options.Dir is required (a directory shared with the compute nodes)")
	}
	if opts.Conf == "" {
		opts.Conf = os.Getenv("SLURM_CONF")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.ListEvery <= 0 {
		opts.ListEvery = 5 * time.Second
	}
	if opts.HealthEvery <= 0 {
		opts.HealthEvery = 2 * time.Second
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = 5 * time.Second
	}
	if opts.Lookback <= 0 {
		opts.Lookback = 7 * 24 * time.Hour
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 60 * time.Second
	}
	if opts.Runner == nil {
		opts.Runner = CommandRunner(opts.Conf)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("slurm: directory: %w", err)
	}
	b := &Backend{opts: opts, dir: dir, held: map[string]record{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("slurm: directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || validName(e.Name()) != nil {
			continue
		}
		adir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(adir, forgottenFile)); err == nil {
			continue
		}
		if rec, err := readRecord(adir); err == nil {
			b.held[rec.Name] = rec
		}
	}
	return b, nil
}

// run runs one command under the command timeout.
func (b *Backend) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CommandTimeout)
	defer cancel()
	return b.opts.Runner(ctx, name, args...)
}

// validName rejects names that would escape the directory or that Slurm
// would mangle (commas separate names in squeue --name).
func validName(name string) error {
	if name == "" || len(name) > 200 || strings.HasPrefix(name, ".") ||
		strings.ContainsAny(name, "/,\x00 \t\n'\"\\$`") {
		return fmt.Errorf("slurm: invalid attempt name %q", name)
	}
	return nil
}

func readRecord(adir string) (record, error) {
	var r record
	data, err := os.ReadFile(filepath.Join(adir, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", recordFile, err)
	}
	if r.Name == "" {
		r.Name = filepath.Base(adir)
	}
	r.cancelled = exists(filepath.Join(adir, cancelledFile))
	return r, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeRecord(adir string, r record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(adir, recordFile), data, 0o644)
}

// writeAtomic writes path through a temporary file and a rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Submit submits spec as one batch job named spec.Name. It is idempotent by
// name: when Slurm knows a job of that name (queued, running or in sacct's
// history), Submit starts nothing and returns nil. Errors from sbatch that
// come from an unreachable controller wrap backend.ErrUnavailable; a
// rejected job (e.g. more GPUs per node than any node has) is a
// *backend.StartError.
func (b *Backend) Submit(ctx context.Context, spec backend.Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName(spec.Name); err != nil {
		return err
	}
	if len(spec.Nodes) == 0 {
		return fmt.Errorf("slurm: %s: no nodes", spec.Name)
	}
	adir := filepath.Join(b.dir, spec.Name)
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return fmt.Errorf("slurm: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
	}
	unlock, err := lock(filepath.Join(adir, lockFile))
	if err != nil {
		return fmt.Errorf("slurm: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
	}
	defer unlock()

	b.mu.Lock()
	rec, held := b.held[spec.Name]
	b.mu.Unlock()
	if held && rec.JobID != 0 {
		return nil
	}
	// Is it in Slurm already? With a record, this directory started to
	// submit it (the record comes before sbatch): ask Slurm for that name.
	// Without one, it can only be there if the directory lost it (a
	// broker restarted on other storage): that is answered from what
	// Slurm held when this Backend first submitted, one squeue and one
	// sacct for all names instead of two commands before every sbatch,
	// which slurmctld serves one at a time.
	old, haveOld := readRecord(adir)
	var (
		id    int64
		found bool
	)
	if haveOld == nil {
		id, found, err = b.lookup(ctx, spec.Name, old.Submitted.Add(-time.Minute))
	} else {
		id, found, err = b.lookupKnown(ctx, spec.Name)
	}
	if err != nil {
		return fmt.Errorf("slurm: submit %s: %w", spec.Name, err)
	}
	if found {
		r := old
		if haveOld != nil {
			r = record{Name: spec.Name, Nodes: len(spec.Nodes), Submitted: b.opts.Clock()}
		}
		r.JobID = id
		if err := writeRecord(adir, r); err != nil {
			return fmt.Errorf("slurm: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
		}
		_ = os.Remove(filepath.Join(adir, forgottenFile))
		b.hold(r)
		return nil
	}

	rec = record{Name: spec.Name, Nodes: len(spec.Nodes), Submitted: b.opts.Clock()}
	if err := b.writeScripts(adir, spec); err != nil {
		return fmt.Errorf("slurm: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
	}
	// The record before sbatch: a broker that dies in sbatch finds the job
	// by name, or reports the attempt Lost when sbatch never got through.
	_ = os.Remove(filepath.Join(adir, cancelledFile))
	if err := writeRecord(adir, rec); err != nil {
		return fmt.Errorf("slurm: submit %s: %v: %w", spec.Name, err, backend.ErrUnavailable)
	}
	out, err := b.run(ctx, "sbatch", b.sbatchArgs(adir, spec)...)
	if err != nil {
		// Not held. The record stays: an sbatch whose reply was lost (a
		// slurmctld restarting) may have gone through, so a retry looks
		// the name up in Slurm before it submits again. A job Slurm
		// rejects would be rejected again: not started.
		err = fmt.Errorf("slurm: submit %s: %w", spec.Name, err)
		if !errors.Is(err, backend.ErrUnavailable) && ctx.Err() == nil {
			return &backend.StartError{Err: err}
		}
		return err
	}
	// --parsable prints "ID" or "ID;CLUSTER".
	idText, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if n, err := strconv.ParseInt(idText, 10, 64); err == nil {
		rec.JobID = n
	}
	if err := writeRecord(adir, rec); err != nil {
		return fmt.Errorf("slurm: submit %s: job %d submitted, record not written: %v: %w",
			spec.Name, rec.JobID, err, backend.ErrUnavailable)
	}
	b.hold(rec)
	return nil
}

func (b *Backend) hold(r record) {
	// A Cancel that came while Submit ran left its marker.
	r.cancelled = r.cancelled || exists(filepath.Join(b.dir, r.Name, cancelledFile))
	b.mu.Lock()
	b.held[r.Name] = r
	b.mu.Unlock()
}

// lock takes an exclusive flock on path, creating it.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// sbatchArgs are the options of one attempt's batch job.
func (b *Backend) sbatchArgs(adir string, spec backend.Spec) []string {
	args := []string{
		"--parsable",
		"--job-name=" + spec.Name,
		"--nodes=" + strconv.Itoa(len(spec.Nodes)),
		"--ntasks-per-node=1",
		"--output=" + filepath.Join(adir, "slurm-%j.out"),
		"--chdir=" + workdir(adir, spec),
		"--export=ALL",
		"--no-requeue",
	}
	if b.opts.Partition != "" {
		args = append(args, "--partition="+b.opts.Partition)
	}
	if n := len(spec.Nodes[0].GPUs); n > 0 {
		g := "gpu:" + strconv.Itoa(n)
		if b.opts.GPUType != "" {
			g = "gpu:" + b.opts.GPUType + ":" + strconv.Itoa(n)
		}
		args = append(args, "--gres="+g)
	}
	if a := pick(b.opts.TeamAccounts, spec.Team, b.opts.Account); a != "" {
		args = append(args, "--account="+a)
	}
	if q := pick(b.opts.TeamQOS, spec.Team, b.opts.QOS); q != "" {
		args = append(args, "--qos="+q)
	}
	if spec.Team != "" {
		args = append(args, "--comment=gpubroker team="+spec.Team)
	}
	if spec.Ordered {
		args = append(args, "--nice="+strconv.Itoa(niceOf(spec.Priority)))
	}
	return append(args, filepath.Join(adir, "job.sh"))
}

// niceBase is the nice of a job of priority 0 on a cluster that queues
// work ahead (Spec.Ordered): a higher priority is a lower nice, so that
// Slurm (priority/basic and priority/multifactor alike subtract the nice)
// starts queued jobs in the broker's order. Only an operator may set a
// negative nice, so priorities from niceBase up share nice 0, and those
// below -niceBase share 2*niceBase.
const niceBase = 1000

func niceOf(priority int) int { return min(max(niceBase-priority, 0), 2*niceBase) }

// pick is byTeam[team] when set, else def.
func pick(byTeam map[string]string, team, def string) string {
	if v := byTeam[team]; v != "" {
		return v
	}
	return def
}

func workdir(adir string, spec backend.Spec) string {
	if spec.Workdir != "" {
		return spec.Workdir
	}
	return adir
}

// Cancel cancels the jobs named name (scancel --name). Cancelling what is
// unknown or already ended returns nil. The attempt is marked first, so
// that Observe tells this cancel (Failed) from one the broker did not ask
// for (Lost).
func (b *Backend) Cancel(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	// No directory: not this Backend's attempt, nothing to mark.
	if err := os.WriteFile(filepath.Join(b.dir, name, cancelledFile), nil, 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("slurm: cancel %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	b.mu.Lock()
	if r, ok := b.held[name]; ok {
		r.cancelled = true
		b.held[name] = r
	}
	b.mu.Unlock()
	if _, err := b.run(ctx, "scancel", "--me", "--name="+name); err != nil {
		return fmt.Errorf("slurm: cancel %s: %w", name, err)
	}
	return nil
}

// Forget drops an attempt from what Observe reports, here and for any later
// Backend on the same directory (a forgotten marker); Slurm keeps its
// history and the logs stay. An attempt not known to have ended (by the
// last listing or its exit status) is cancelled first. Forgetting an
// unknown attempt returns nil.
func (b *Backend) Forget(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	adir := filepath.Join(b.dir, name)
	if _, err := os.Stat(adir); errors.Is(err, fs.ErrNotExist) {
		b.mu.Lock()
		delete(b.held, name)
		b.mu.Unlock()
		return nil
	}
	b.mu.Lock()
	r, held := b.held[name]
	b.mu.Unlock()
	lastListing, _ := b.listing.last()
	last, listed := lastListing[name]
	if held && (!listed || active(last.Phase)) {
		// Not known to have ended: stop it. (One that ended needs no
		// scancel; one whose script wrote its exit status may still be
		// completing, and a scancel then would make Slurm record the job
		// CANCELLED.)
		if _, exited := b.exitStatus(r); !exited {
			if err := b.Cancel(ctx, name); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(adir, forgottenFile), nil, 0o644); err != nil {
		return fmt.Errorf("slurm: forget %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	b.mu.Lock()
	delete(b.held, name)
	b.mu.Unlock()
	return nil
}

// heldRecords returns the held attempts sorted by name.
func (b *Backend) heldRecords() []record {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]record, 0, len(b.held))
	for _, r := range b.held {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
