package sim

import (
	"errors"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
	"gpubroker/internal/sim/report"
)

// Errors a Run returns, wrapped with details.
var (
	// ErrConfig is a Config that cannot run (no seed, no fleet, bad outage).
	ErrConfig = errors.New("bad simulation config")
	// ErrInvariant is a broken accounting invariant: the engine's decisions
	// and the simulator's state disagree (a node would go below zero free
	// GPUs, an admission names a pool that is down, ...). It is a bug.
	ErrInvariant = errors.New("simulation invariant broken")
)

// Defaults for zero Config fields.
const (
	DefaultRoundInterval = time.Minute
	DefaultScaleDelay    = 10 * time.Minute
)

// Config is one simulation run.
type Config struct {
	// Seed seeds every random draw; required (non-zero). Same seed, same
	// run.
	Seed int64
	// Fleet is the fleet as configured; Policy names the policy applied to
	// it (see ApplyPolicy; "" means "gpubroker").
	Fleet  *model.Fleet
	Policy string
	// RoundInterval is the least simulated time between scheduling rounds
	// (default DefaultRoundInterval).
	RoundInterval time.Duration
	// ScaleDelay is how long nodes an elastic pool adds take to become
	// usable (default DefaultScaleDelay; negative means none).
	ScaleDelay time.Duration
	// Outages take a provider or a cluster down for a while.
	Outages []Outage
	// Start, when set, shifts the trace so its first arrival is at Start
	// (so that contract terms cover the replay).
	Start time.Time
	// Scale multiplies the arrival rate: inter-arrival times are divided
	// by it (default 1).
	Scale float64
	// AllowSpot lets every trace job run on spot capacity (trace jobs do
	// not say; without it they never use spot pools).
	AllowSpot bool
	// CheckpointInterval, when set, is given to jobs that state none.
	CheckpointInterval time.Duration
	// Progress, when set, is called with jobs finished (completed or
	// given up) and the total, every ~0.5% and at the end.
	Progress func(done, total int)
	// Failures make attempts of named jobs exit with an error; what
	// follows (a restart, giving up) is the lifecycle's decision, as in
	// the server.
	Failures []Failure
	// RecordAttempts keeps every attempt of every job in
	// Result.AttemptLogs (off by default: it costs memory on long traces).
	RecordAttempts bool
	// CheckInvariants re-checks after every round what tests want to know:
	// the provider share cap held for every admission not marked OverCap.
	CheckInvariants bool

	// reference makes every round a fresh engine.Schedule over a snapshot
	// the simulator keeps, instead of one long-lived engine.Scheduler; the
	// two must agree (tests compare them).
	reference bool
}

// Failure makes attempts of one job end early, as a job whose code
// crashes (an exit code) or whose node dies (Lost) would. A job may have
// several, for different attempts.
type Failure struct {
	// Job is the workload ID.
	Job string
	// Attempts are the attempt numbers (1 for the first) that fail; empty
	// means every attempt.
	Attempts []int
	// After is how long a failing attempt runs before it ends.
	After time.Duration
	// ExitCode is the code it exits with (not 0), unless Lost.
	ExitCode int
	// Lost: the attempt is lost instead (its node went away; the cluster
	// stays up), as a backend reports a vanished attempt.
	Lost bool
}

// Outage takes a provider's clusters, or one cluster, down over [From, To).
// Work running there when it starts is lost since its last checkpoint.
type Outage struct {
	Provider model.Provider `json:"provider,omitempty"`
	Cluster  string         `json:"cluster,omitempty"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
}

// Result is what one run did. Every slice is in a stated, stable order.
type Result struct {
	Policy string    `json:"policy"`
	Seed   int64     `json:"seed"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Jobs   int       `json:"jobs"`

	Completed int `json:"completed"`
	// Failed counts jobs that ended FAILED (their recovery policy gave up
	// after errors; see Config.Failures).
	Failed        int             `json:"failed,omitempty"`
	NeverRunnable []NeverRunnable `json:"never_runnable"` // by workload ID

	// Costs and GPU-hours over [Start, End] (see ledger.Summary).
	Summary     ledger.Summary `json:"summary"`
	Commitments []Commitment   `json:"commitments"` // by contract name
	// ProviderShare is sampled daily over the policy's share window (one
	// day when it has none); MaxShare is the largest share any provider
	// reached in it; HHI is over the whole run (0..1).
	ProviderShare []ledger.SharePoint `json:"provider_share"`
	ShareWindow   time.Duration       `json:"share_window"`
	ShareCap      float64             `json:"share_cap"`
	MaxShare      float64             `json:"max_share"`
	HHI           float64             `json:"hhi"`
	CostOverTime  []ledger.CostPoint  `json:"cost_over_time"`

	JCT            report.Dist            `json:"jct"`
	JCTBySize      map[string]report.Dist `json:"jct_by_size"`
	Queueing       report.Dist            `json:"queueing"`
	QueueingBySize map[string]report.Dist `json:"queueing_by_size"`

	Utilisation []ClusterUse `json:"utilisation"` // by cluster name

	EnginePreemptions int `json:"engine_preemptions"`
	SpotPreemptions   int `json:"spot_preemptions"`
	OutageKills       int `json:"outage_kills"`
	OverCapAdmissions int `json:"over_cap_admissions"`
	Admissions        int `json:"admissions"`
	DeadlinesMissed   int `json:"deadlines_missed"`
	WithDeadline      int `json:"with_deadline"`

	Rounds int64    `json:"rounds"`
	Events int64    `json:"events"`
	Notes  []string `json:"notes,omitempty"`

	// Wall is how long the run took on this machine; not part of the
	// deterministic output.
	Wall time.Duration `json:"-"`
	// Ledger holds every interval, for callers that query further.
	Ledger *ledger.Ledger `json:"-"`
	// Outcomes is one entry per job, in trace order.
	Outcomes []Outcome `json:"-"`
	// AttemptLogs is, per job in trace order, every attempt, oldest first
	// (only with Config.RecordAttempts).
	AttemptLogs [][]AttemptEnd `json:"-"`
}

// NeverRunnable is a job that could not run by the end of the replay.
type NeverRunnable struct {
	Workload string `json:"workload"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// Commitment is a contract's burn-down over the run.
type Commitment struct {
	Contract  string             `json:"contract"`
	Provider  model.Provider     `json:"provider"`
	Kind      model.ContractKind `json:"kind"`
	TakeOrPay bool               `json:"take_or_pay"`
	// PlanUSD, SpentUSD and ShortfallUSD are over the run (see
	// ledger.Burn).
	PlanUSD      float64 `json:"plan_usd"`
	SpentUSD     float64 `json:"spent_usd"`
	ShortfallUSD float64 `json:"shortfall_usd"`
	// On the contract's committed pools: GPU-hours installed and idle, and
	// what the idle ones cost.
	CommittedGPUHours float64       `json:"committed_gpu_hours"`
	IdleGPUHours      float64       `json:"idle_gpu_hours"`
	WastedUSD         float64       `json:"wasted_usd"`
	Series            []ledger.Burn `json:"series"` // daily
}

// ClusterUse is one cluster's GPU utilisation over the run.
type ClusterUse struct {
	Cluster          string         `json:"cluster"`
	Provider         model.Provider `json:"provider"`
	CapacityGPUHours float64        `json:"capacity_gpu_hours"`
	UsedGPUHours     float64        `json:"used_gpu_hours"`
	Fraction         float64        `json:"fraction"`
}

// Outcome is how one job ended.
type Outcome struct {
	Workload   string
	GPUs       int
	Submitted  time.Time
	FirstStart time.Time // zero if never started
	Finished   time.Time // zero if never completed
	Attempts   int
	Completed  bool
	Reason     string // for a job that never ran to completion
}

// AttemptEnd is one attempt of a job: where it ran and how it ended.
type AttemptEnd struct {
	Attempt int
	Cluster string
	Region  string
	// Outcome is SUCCEEDED, FAILED, or RETRIED for an attempt another one
	// followed (the server's words for the same thing); "" while it runs.
	Outcome string
	Reason  string
}
