package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Error kinds; drivers wrap them with %w.
var (
	// ErrNotFound: the backend has no object of that name.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the backend cannot be reached right now; retry.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrNoNewWork, from Health: the cluster answers and what runs there
	// keeps running, but it takes no new work (every node drained for
	// maintenance, say). Its attempts are not lost; nothing new goes there.
	ErrNoNewWork = errors.New("cluster takes no new work")
)

// StartError is what Submit returns when the attempt cannot start
// because of what its spec asks for, so that starting it again the same
// way fails again: an environment or argument list the kernel refuses
// (E2BIG, a NUL byte), a program that is missing, a job the workload
// manager rejects, an object the API server finds invalid. It is not a
// loss (the cluster did nothing wrong) nor a backend that cannot be
// reached (ErrUnavailable): the control plane ends the attempt as not
// started, and the lifecycle decides (it fails the job with Err's words).
// Submit leaves nothing of such an attempt running.
type StartError struct {
	Err error
}

func (e *StartError) Error() string { return "cannot start: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// Name is the name of what a backend creates for one attempt of one job.
// It is built from the job ID and attempt only, so a broker that dies
// between "submit" and "record" finds the object again instead of
// launching twice.
func Name(jobID int64, attempt int) string {
	return fmt.Sprintf("gpub-%d-%d", jobID, attempt)
}

// Node is one node of an attempt's gang as the backend must start it.
type Node struct {
	// Index is the node's index within the placement's pool.
	Index int
	// GPUs are the GPU slots on that node given to the job (e.g. [0 1 2 3]).
	GPUs []int
}

// Spec is one attempt to start.
type Spec struct {
	Name    string // Name(JobID, Attempt)
	JobID   int64
	Attempt int
	Team    string
	Cluster string
	Pool    string
	Nodes   []Node
	// Setup runs once per node before Run; Run is the job itself. Both
	// are bash scripts.
	Setup   string
	Run     string
	Workdir string
	Envs    map[string]string
	// CheckpointDir is where the job saves and resumes from; exported as
	// GPUBROKER_CHECKPOINT_DIR.
	CheckpointDir string
	// Priority is the job's priority in the broker (higher runs first).
	Priority int
	// Ordered says the engine's queue holds this cluster's work beyond its
	// capacity (the cluster's queue_ahead), so the engine, not the broker,
	// picks what starts next: a backend whose engine can order its queue
	// passes Priority down so that it starts work in the broker's order
	// (by priority, then by submission).
	Ordered bool
	// MaxLogBytes caps what the attempt's output may take on the disk the
	// driver writes it to: a driver that stores output (local, Slurm)
	// keeps each node's first MaxLogBytes/len(Nodes) bytes, then one line
	// (TruncatedNote) and nothing more, while the job runs on. 0: no cap.
	MaxLogBytes int64
}

// Phase is what a backend observes of one attempt.
type Phase string

const (
	PhasePending   Phase = "Pending" // accepted, not started
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	// PhaseLost: the backend lost it (node gone, process vanished across
	// a restart, spot reclaimed): the attempt must be retried elsewhere.
	PhaseLost Phase = "Lost"
)

// Status is the observed state of one attempt.
type Status struct {
	Name     string
	Phase    Phase
	ExitCode *int
	Message  string
	Started  time.Time
	Ended    time.Time
}

// Backend runs attempts on one cluster.
type Backend interface {
	// Submit starts an attempt. It is idempotent by spec.Name: when an
	// object of that name exists already, Submit returns nil and starts
	// nothing. An attempt its spec keeps from starting is a *StartError;
	// a backend that cannot be reached, an error wrapping ErrUnavailable.
	Submit(ctx context.Context, spec Spec) error
	// Observe returns the status of every attempt this backend holds
	// (running or ended and not yet forgotten), in one call: callers
	// observe a whole cluster per round, never one job at a time.
	Observe(ctx context.Context) ([]Status, error)
	// Cancel stops an attempt (all its processes/nodes). Cancelling what
	// is already gone returns nil.
	Cancel(ctx context.Context, name string) error
	// Logs streams an attempt's output (all nodes, prefixed by node rank
	// when more than one). With follow, it keeps streaming until the
	// attempt ends or ctx is done. ErrNotFound for unknown names.
	Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error)
	// Forget drops an ended attempt's record (its logs may stay).
	Forget(ctx context.Context, name string) error
}

// LogTailer is an optional capability: the end of an attempt's output
// for one look (a dashboard, `gpubroker logs --tail`), read from the end
// of its logs in memory bounded by maxBytes per node, however long they
// are. Without it the control plane reads Logs to its end, keeping only
// the last bytes.
type LogTailer interface {
	// TailLogs returns the last lines lines of each node's output, in
	// rank order and prefixed as Logs prefixes them, looking at no more
	// than the last maxBytes of each node's log. ErrNotFound for unknown
	// names.
	TailLogs(ctx context.Context, name string, lines int, maxBytes int64) ([]byte, error)
}

// Health is an optional capability: whether the cluster can take work.
// An error wrapping ErrNoNewWork says the cluster answers but takes no new
// work; any other error, that it cannot be reached (after the cluster
// timeout its attempts are lost).
type Health interface {
	Health(ctx context.Context) error
}

// GPUDiscoverer is an optional capability: the GPUs a cluster really has,
// e.g. from nvidia-smi, sinfo or node labels.
type GPUDiscoverer interface {
	// GPUs returns how many GPUs each node has (index -> count).
	GPUs(ctx context.Context) ([]int, error)
}

// Watcher is an optional capability of a backend that learns of changes
// as they happen (a watch, an informer) instead of only when asked: the
// control plane reconciles as soon as Changes delivers, rather than at its
// next tick. Observe stays the source of truth; a signal only says "look
// again now".
type Watcher interface {
	// Changes returns the same channel on every call. It receives a value
	// (coalesced: at most one waits) whenever the status of some attempt
	// may have changed. The channel is never closed.
	Changes() <-chan struct{}
}

// Scaler is an optional capability of a backend whose pools can grow and
// shrink: it adds or removes nodes of an elastic pool (model.Pool.MaxNodes
// above Nodes). The control plane's provisioning controller calls it for
// the engine's scale requests.
//
// A pool's nodes are numbered from 0, as Node.Index numbers them; growing
// adds the next indexes, shrinking removes the highest first. Scale is
// level-triggered: the caller asks every round for the count it wants now,
// and the backend converges on it, so a call repeated, or lost with a
// crash, does no harm. The caller never asks for fewer nodes than an
// attempt of its own holds (it asks to shrink only past idle nodes) nor
// for fewer than the fleet's Nodes.
type Scaler interface {
	// Scale asks for pool to have nodes nodes and returns how many it has
	// now, ready to run work: fewer than asked while new nodes start (a
	// cloud's instances take minutes; the caller asks again next round),
	// more while removed ones drain. It returns without waiting for nodes
	// to start or stop. An attempt submitted on a node at or past the
	// ready count may be refused. Errors: ErrNotFound when the backend has
	// no pool of that name, ErrUnavailable when it cannot be reached.
	Scale(ctx context.Context, pool string, nodes int) (ready int, err error)
}

// Where names the machine a host-bound backend runs its attempts on and
// the directory of its records there.
type Where struct {
	Host string
	Dir  string
}

// HostBound is an optional capability of a backend whose attempts live on
// the machine of the broker that started them (the local backend): they
// can be seen and stopped from that machine only. The control plane
// records Where with each attempt it starts there, so that another broker
// (a new leader of a shared store) knows where the attempt lives.
type HostBound interface {
	Where() Where
	// Adopt returns a backend over the records at w, made by another
	// broker on this machine (a leader that died): it observes, cancels,
	// forgets and submits there as that broker's own backend did.
	// ErrOtherHost when w is on another machine.
	Adopt(w Where) (Backend, error)
}

// ErrOtherHost, from HostBound.Adopt: the records are on another machine.
var ErrOtherHost = errors.New("attempt records are on another host")
