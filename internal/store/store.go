package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gpubroker/internal/model"
)

// Error kinds. Drivers wrap them with %w; callers use errors.Is.
var (
	// ErrNotFound: no such job, token or fleet.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-set saw a different state or attempt
	// than the caller expected (someone else moved the job first), or a
	// unique key (token hash, idempotency key) already exists.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request itself is malformed (empty team, unknown
	// state, a transition the state machine forbids).
	ErrInvalid = errors.New("invalid")
	// ErrFull: the database cannot grow, as the disk (or quota) it is on
	// is full. The write failed whole and nothing of it was kept; the
	// same write succeeds once there is space again.
	ErrFull = errors.New("the store's disk is full")
)

// State is where a job is in its life.
type State string

const (
	Pending    State = "PENDING"
	Admitted   State = "ADMITTED"   // the engine chose a place; not yet sent
	Dispatched State = "DISPATCHED" // the backend accepted it
	Running    State = "RUNNING"
	Succeeded  State = "SUCCEEDED"
	Failed     State = "FAILED"
	Cancelled  State = "CANCELLED"
)

// Terminal reports whether nothing more happens to a job in state s.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	switch s {
	case Pending, Admitted, Dispatched, Running, Succeeded, Failed, Cancelled:
		return true
	}
	return false
}

// Allowed is the state machine: which state may follow which. A lost or
// preempted attempt goes back to Pending with Attempt+1 (the transition
// says so); any non-terminal state may go to Cancelled or Failed.
var Allowed = map[State][]State{
	Pending:    {Admitted, Cancelled, Failed},
	Admitted:   {Dispatched, Pending, Cancelled, Failed},
	Dispatched: {Running, Succeeded, Failed, Pending, Cancelled},
	Running:    {Succeeded, Failed, Pending, Cancelled},
}

// CanMove reports whether the state machine allows from -> to.
func CanMove(from, to State) bool {
	for _, s := range Allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Placement is where the current attempt runs.
type Placement struct {
	Cluster     string           `json:"cluster"`
	Pool        string           `json:"pool"`
	Provider    model.Provider   `json:"provider"`
	Region      string           `json:"region"`
	GPU         model.GPUModel   `json:"gpu"`
	GPUsPerNode int              `json:"gpus_per_node"`
	Nodes       []int            `json:"nodes"`
	PriceClass  model.PriceClass `json:"price_class"`
	// BilledPerGPUHour is what the attempt is expected to cost.
	BilledPerGPUHour float64 `json:"billed_per_gpu_hour"`
	Contract         string  `json:"contract,omitempty"`
	Borrowed         bool    `json:"borrowed,omitempty"`
	// Host and Dir, for an attempt of a host-bound backend (local), are
	// the machine it runs on and the directory of its records there
	// (backend.Where), set at admission by the leader that placed it:
	// another broker adopts the attempt from there, or knows it cannot.
	Host string `json:"host,omitempty"`
	Dir  string `json:"dir,omitempty"`
}

// Job is one submitted workload and where it stands.
type Job struct {
	// ID is assigned by the store on create: 1, 2, 3, ... in commit order.
	ID int64 `json:"id"`
	// Key, when set, makes CreateJob idempotent: a second create with the
	// same Key returns the first job and ErrConflict.
	Key string `json:"key,omitempty"`
	// After is the job this one waits for (0: none): the previous stage
	// of a pipeline. It is set on create and never changes; the store
	// keeps it, the reconciler enforces it (a job runs only once its After
	// job SUCCEEDED, and is cancelled when that job ends otherwise).
	After    int64           `json:"after,omitempty"`
	Team     string          `json:"team"`
	User     string          `json:"user"`
	Workload *model.Workload `json:"workload"`
	// Spec is the task file as submitted, kept for show and resubmit.
	Spec    string `json:"spec,omitempty"`
	State   State  `json:"state"`
	Attempt int    `json:"attempt"`
	// Reason says why the job waits (the engine's reason) or why it ended.
	Reason    string     `json:"reason,omitempty"`
	Placement *Placement `json:"placement,omitempty"`
	// Restarts counts error restarts used against the recovery policy.
	Restarts  int       `json:"restarts"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Event is one entry of a job's history.
type Event struct {
	JobID   int64     `json:"job_id"`
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"` // "api:TOKEN-ID", "reconciler", ...
	From    State     `json:"from,omitempty"`
	To      State     `json:"to"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message,omitempty"`
}

// Move is a compare-and-set state change of one job. The store applies it
// only if the job is in From at attempt Attempt; it then sets To and every
// non-zero field below, and appends an Event, in one transaction.
type Move struct {
	From    State
	Attempt int
	To      State
	// NextAttempt, for a move back to Pending, starts a new attempt
	// (Attempt+1) and clears the placement.
	NextAttempt bool
	Reason      string
	Placement   *Placement
	// CountRestart adds one to Restarts (an error restart).
	CountRestart bool
	ExitCode     *int
	Actor        string
	Message      string
	At           time.Time
	// Usage, when set, is appended to the accounting records in the same
	// transaction as the move, so that an attempt's end and its bill are
	// written together or not at all.
	Usage *Usage
	// Slots, on a move to Admitted, are the GPU indexes the attempt holds
	// on each node of Placement; they are kept on the attempt (Attempts)
	// so that a restarted server hands out the same ones.
	Slots []NodeSlots
}

// NodeSlots are the GPU indexes an attempt holds on one node of its pool.
type NodeSlots struct {
	Node int   `json:"node"`
	GPUs []int `json:"gpus"`
}

// Attempt is one run of a job: where the engine placed it, which GPUs it
// held, when it was admitted, started and ended, and how it ended. The
// store keeps one per job and attempt number, written by CreateJob (the
// first) and by each MoveJob(s) in the move's own transaction:
//   - a move to Admitted sets the placement (Cluster, Pool, Provider,
//     Region from Move.Placement), Slots (Move.Slots) and Admitted;
//   - a move to Running sets Started; a move to a terminal state sets
//     Ended, ExitCode (Move.ExitCode), Outcome (the state) and Reason
//     (Move.Message);
//   - a move with NextAttempt ends the attempt it leaves (Ended, Outcome
//     RETRIED, Reason the move's Message) and starts the next one;
//   - every move sets State to its To, except a move back to Pending,
//     which leaves the attempt in the state it ended in.
type Attempt struct {
	JobID    int64          `json:"job_id"`
	Attempt  int            `json:"attempt"`
	Cluster  string         `json:"cluster,omitempty"`
	Pool     string         `json:"pool,omitempty"`
	Provider model.Provider `json:"provider,omitempty"`
	Region   string         `json:"region,omitempty"`
	Slots    []NodeSlots    `json:"slots,omitempty"`
	State    State          `json:"state"`
	Admitted time.Time      `json:"admitted,omitzero"`
	Started  time.Time      `json:"started,omitzero"`
	Ended    time.Time      `json:"ended,omitzero"`
	ExitCode *int           `json:"exit_code,omitempty"`
	// Outcome is SUCCEEDED, FAILED, CANCELLED, OutcomeRetried, or empty
	// while the attempt lasts.
	Outcome string `json:"outcome,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// OutcomeRetried is the Outcome of an attempt that another one followed
// (lost, preempted, restarted after an error, not dispatchable).
const OutcomeRetried = "RETRIED"

// JobMove is one Move of a MoveJobs batch: job ID's.
type JobMove struct {
	ID   int64
	Move Move
}

// Filter selects jobs to list. Zero fields select everything.
type Filter struct {
	Team   string
	States []State
	// AfterID pages: only jobs with ID > AfterID, in ID order.
	AfterID int64
	Limit   int
}

// Cursor is a place in a store's history of job writes (Store.Cursor),
// opaque to callers; the zero Cursor is before any.
type Cursor int64

// Token is an API credential. The store keeps only the hash.
type Token struct {
	ID      string    `json:"id"`
	Hash    string    `json:"-"`
	Team    string    `json:"team"`
	Role    string    `json:"role"` // admin | member | viewer | metrics
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	// Expires, when set, is when the token stops working (token create
	// --ttl); zero: never. Tokens from before expiry have none.
	Expires time.Time `json:"expires,omitzero"`
	// Revoked, when set, is when the token was revoked (RevokeToken);
	// a revoked token never works again.
	Revoked time.Time `json:"revoked,omitzero"`
	// LastUsed is when the token last authenticated a request, as
	// recorded by TouchToken (the API records it at most once a minute);
	// zero: never since it was made or the store kept last use.
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Usable reports why t cannot authenticate a request at now (revoked, or
// expired), or nil when it can.
func (t Token) Usable(now time.Time) error {
	switch {
	case !t.Revoked.IsZero():
		return fmt.Errorf("token %s was revoked at %s", t.ID, t.Revoked.UTC().Format(time.RFC3339))
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return fmt.Errorf("token %s expired at %s", t.ID, t.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// Usage is one accounting record: GPU-hours and money of one attempt over
// an interval (written when an attempt ends or at checkpoints of billing).
type Usage struct {
	JobID      int64            `json:"job_id"`
	Attempt    int              `json:"attempt"`
	Team       string           `json:"team"`
	Provider   model.Provider   `json:"provider"`
	Cluster    string           `json:"cluster"`
	Pool       string           `json:"pool"`
	PriceClass model.PriceClass `json:"price_class"`
	Contract   string           `json:"contract,omitempty"`
	GPUs       int              `json:"gpus"`
	Start      time.Time        `json:"start"`
	End        time.Time        `json:"end"`
	CostUSD    float64          `json:"cost_usd"`
}

// Store is the contract. Implementations are safe for concurrent use by
// many goroutines and, for drivers that allow it, many processes.
type Store interface {
	// CreateJob inserts j in state Pending at attempt 1 and returns it
	// with ID, timestamps and the creation event. With j.Key set and
	// already used, it returns the existing job and ErrConflict. j.After,
	// when not 0, must name an existing job (ErrInvalid otherwise), so it
	// is always an earlier one.
	CreateJob(ctx context.Context, j *Job, at time.Time) (*Job, error)
	// GetJob returns one job or ErrNotFound.
	GetJob(ctx context.Context, id int64) (*Job, error)
	// ListJobs returns matching jobs in ID order.
	ListJobs(ctx context.Context, f Filter) ([]*Job, error)
	// MoveJob applies a compare-and-set Move and returns the job after it.
	// ErrConflict when the job is not in m.From at m.Attempt; ErrInvalid
	// when the state machine forbids m.From -> m.To.
	MoveJob(ctx context.Context, id int64, m Move) (*Job, error)
	// MoveJobs applies moves in order in one transaction, each as MoveJob
	// would: jobs[i] is the job after moves[i], or errs[i] says why that
	// move did not apply (ErrConflict, ErrInvalid, ErrNotFound), the
	// others applying all the same; a later move of the same job sees the
	// earlier one. err is a failure of the store itself, and then no move
	// applied. A round of the reconciler records its moves so: one
	// transaction for hundreds of moves, where one each cost most of the
	// broker's store time.
	MoveJobs(ctx context.Context, moves []JobMove) (jobs []*Job, errs []error, err error)
	// Cursor is the store's place in its history of job writes, now:
	// Changes from it lists every job created or moved after this call.
	// Take it before a full ListJobs, then follow with Changes.
	Cursor(ctx context.Context) (Cursor, error)
	// Changes lists the jobs created or moved since c was taken, in any
	// state, in ID order, each as it is now, and the cursor for the next
	// call. It may list again a job written before c (as it is now, so no
	// harm). The reconciler keeps the active jobs between rounds and reads
	// only these: listing all of a deep queue each round was most of a
	// round's cost.
	Changes(ctx context.Context, c Cursor) ([]*Job, Cursor, error)
	// Events returns a job's history in order.
	Events(ctx context.Context, id int64) ([]Event, error)
	// Attempts returns a job's attempts in attempt order, as the moves
	// wrote them (see Attempt), or ErrNotFound when there is no such job.
	// A job created before the store kept attempts has those its events
	// told when the store was upgraded, without Provider and Region.
	Attempts(ctx context.Context, id int64) ([]Attempt, error)
	// CountByState returns how many jobs are in each state.
	CountByState(ctx context.Context) (map[State]int, error)

	// PutFleet stores a new fleet document (the YAML as applied) and
	// returns its version (1, 2, ...). GetFleet returns the newest, or
	// ErrNotFound when none was ever applied.
	PutFleet(ctx context.Context, doc string, actor string, at time.Time) (int64, error)
	GetFleet(ctx context.Context) (doc string, version int64, err error)

	// CreateToken stores a token (ErrConflict on a duplicate hash or ID);
	// TokenByHash finds one, revoked and expired ones included
	// (ErrNotFound); ListTokens lists them all, in ID order. Tokens are
	// never deleted: a revoked one stays listed.
	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks token id revoked at at and returns it; the next
	// TokenByHash of any process sharing the store sees it revoked.
	// Revoking a revoked token keeps its first revocation time.
	// ErrNotFound when there is no such token.
	RevokeToken(ctx context.Context, id string, at time.Time) (Token, error)
	// TouchToken records that token id was used at at; an earlier time
	// than the one recorded is ignored. ErrNotFound when there is no such
	// token.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// SharedKey returns the secret stored under name, first storing fresh
	// when there is none, so that every process sharing the store (and
	// the same process after a restart) gets the same bytes. fresh must
	// not be empty (ErrInvalid).
	SharedKey(ctx context.Context, name string, fresh []byte) ([]byte, error)

	// AddUsage appends accounting records; ListUsage returns those that
	// overlap [from, to), in (Start, JobID, Attempt) order.
	AddUsage(ctx context.Context, u []Usage) error
	ListUsage(ctx context.Context, from, to time.Time) ([]Usage, error)

	// Close releases the store.
	Close() error
}

// Leader is an optional capability: a store shared by several broker
// replicas elects one leader to run the reconciler. TryLead returns true
// while this holder (id) holds the lease until `until`; others get false.
type Leader interface {
	TryLead(ctx context.Context, id string, now, until time.Time) (bool, error)
}

// Members is an optional capability of a store shared by several broker
// replicas: each says, every round, that it is alive and on which host
// (Beat, valid until `until`), so that the leader can tell whether a host
// whose attempts it cannot see has a broker alive (LiveHosts: the hosts
// with a beat valid at now).
type Members interface {
	Beat(ctx context.Context, id, host string, until time.Time) error
	LiveHosts(ctx context.Context, now time.Time) (map[string]bool, error)
}

// Check reports a Move the state machine forbids before any driver touches
// its database: unknown states, a transition not in Allowed, or a new
// attempt that does not go back to Pending. Errors wrap ErrInvalid.
func (m Move) Check() error {
	switch {
	case !m.From.Valid() || !m.To.Valid():
		return fmt.Errorf("%w: unknown state in move %q -> %q", ErrInvalid, m.From, m.To)
	case !CanMove(m.From, m.To):
		return fmt.Errorf("%w: %s -> %s is not allowed", ErrInvalid, m.From, m.To)
	case m.NextAttempt && m.To != Pending:
		return fmt.Errorf("%w: a new attempt starts only on a move to %s, not %s", ErrInvalid, Pending, m.To)
	case m.Usage != nil:
		return m.Usage.Check()
	}
	return nil
}

// MoveColumns are the values a driver writes for a Move; a nil pointer
// leaves its column as it is.
type MoveColumns struct {
	At                     int64 // m.At (now when zero) in Unix nanoseconds
	AttemptInc, RestartInc int   // 1 to start a new attempt, count a restart
	Reason                 *string
	Placement              *string // JSON
	ExitCode               *int
	Started, Ended         *int64 // At, for a move to Running, to an end
}

// Columns checks m (Check) and returns what a driver writes for it.
func (m Move) Columns() (MoveColumns, error) {
	if err := m.Check(); err != nil {
		return MoveColumns{}, err
	}
	at := m.At
	if at.IsZero() {
		at = time.Now()
	}
	c := MoveColumns{At: at.UTC().UnixNano(), ExitCode: m.ExitCode}
	if m.NextAttempt {
		c.AttemptInc = 1
	}
	if m.CountRestart {
		c.RestartInc = 1
	}
	if m.Reason != "" {
		c.Reason = &m.Reason
	}
	if m.Placement != nil {
		b, err := json.Marshal(m.Placement)
		if err != nil {
			return MoveColumns{}, fmt.Errorf("%w: placement: %v", ErrInvalid, err)
		}
		p := string(b)
		c.Placement = &p
	}
	if m.To == Running {
		c.Started = &c.At
	}
	if m.To.Terminal() {
		c.Ended = &c.At
	}
	return c, nil
}

// PrepareMoves is the start of a driver's MoveJobs: for each move, the
// statement arguments args builds (args[i]) or, for a move that cannot
// apply (Check), why (errs[i], prefixed by the driver's name); ready counts
// the moves with arguments.
func PrepareMoves(driver string, moves []JobMove, args func(id int64, m Move) ([]any, error)) (out [][]any, errs []error, ready int) {
	out, errs = make([][]any, len(moves)), make([]error, len(moves))
	for i, jm := range moves {
		a, err := args(jm.ID, jm.Move)
		if err != nil {
			errs[i] = fmt.Errorf("%s: move job %d: %w", driver, jm.ID, err)
			continue
		}
		out[i] = a
		ready++
	}
	return out, errs, ready
}

// Check reports a usage record that ends before it starts or has no
// start; the error wraps ErrInvalid.
func (u Usage) Check() error {
	if u.End.Before(u.Start) || u.Start.IsZero() {
		return fmt.Errorf("%w: usage of job %d ends before it starts or has no start", ErrInvalid, u.JobID)
	}
	return nil
}
