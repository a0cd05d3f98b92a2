package engine

import (
	"time"

	"gpubroker/internal/model"
)

// PoolRef names one pool of one cluster.
type PoolRef struct {
	Cluster string
	Pool    string
}

func (r PoolRef) String() string { return r.Cluster + "/" + r.Pool }

// Snapshot is the state one scheduling round reads. The engine never
// modifies it; everything it decides comes back in Decisions.
type Snapshot struct {
	Fleet *model.Fleet
	// Pools holds the observed state of pools. A pool of the fleet with no
	// entry here is taken as healthy with every node free.
	Pools []PoolState
	// Running lists the allocations currently holding capacity.
	Running []Allocation
	// ProviderGPUHours is GPU-hours used per provider over the policy's
	// share window up to now (what running work has used so far included).
	// The provider share cap also counts what running work is still
	// expected to use (Allocation.ExpectedEnd) and what each admission
	// will use, so it judges where the window is heading, not only where
	// it has been.
	ProviderGPUHours map[model.Provider]float64
	// ContractSpentUSD is spend booked to each contract since it started.
	ContractSpentUSD map[string]float64
	// TeamSpendUSD is each team's spend in the current calendar month.
	TeamSpendUSD map[string]float64
}

// PoolState is the observed state of one pool.
type PoolState struct {
	Ref PoolRef
	// NodeFree holds the free GPUs of each node, indexed by node number; its
	// length is the number of nodes up now. Nil means every node of the
	// fleet's pool is up and free.
	NodeFree []int
	// Down marks a pool (or its whole cluster) that must not get new work.
	Down bool
}

// Allocation is capacity held by one running attempt of a workload.
type Allocation struct {
	Workload    string
	Team        string
	Priority    int
	Pool        PoolRef
	Nodes       []int
	GPUsPerNode int
	GPU         model.GPUModel
	// Borrowed is true when the allocation runs on quota lent by the team's
	// cohort; such work is the first preempted when the lender needs it.
	Borrowed bool
	// Ahead marks work queued in the engine beyond the pool's capacity (on
	// queue slots, node indexes past the pool's nodes): it holds quota and
	// counts toward the share cap, but no node, so it is never a victim.
	Ahead   bool
	Started time.Time
	// LastCheckpoint is when the attempt last saved its state. When zero,
	// CheckpointInterval (if set) says it saves every interval since
	// Started; with neither, preempting it loses everything since Started.
	LastCheckpoint     time.Time
	CheckpointInterval time.Duration
	// ExpectedEnd is when the attempt should finish (start + expected run
	// time); zero means unknown, taken as Started + DefaultDuration.
	ExpectedEnd time.Time
}

// GPUs returns the allocation's GPU count.
func (a Allocation) GPUs() int { return len(a.Nodes) * a.GPUsPerNode }

// Reason names why a candidate placement was rejected or why a workload
// waits. Stable strings: the CLI prints them and tests compare them.
type Reason string

const (
	ReasonNoCapacity     Reason = "InsufficientCapacity"
	ReasonNeverFits      Reason = "GangTooLarge"
	ReasonGPUModel       Reason = "GPUModelMismatch"
	ReasonShape          Reason = "NodeShapeMismatch"
	ReasonProvider       Reason = "ProviderMismatch"
	ReasonRegion         Reason = "RegionMismatch"
	ReasonInstanceType   Reason = "InstanceTypeMismatch"
	ReasonResidency      Reason = "DataResidency"
	ReasonSpot           Reason = "SpotMismatch"
	ReasonSpotForbidden  Reason = "SpotNotAllowed"
	ReasonPriceCeiling   Reason = "PriceCeiling"
	ReasonMaxHourlyCost  Reason = "MaxHourlyCost"
	ReasonUnhealthy      Reason = "ClusterUnhealthy"
	ReasonAvoidRegion    Reason = "RecoveryAvoidsRegion"
	ReasonQuota          Reason = "QuotaExceeded"
	ReasonBudget         Reason = "TeamBudgetExceeded"
	ReasonProviderCap    Reason = "ProviderShareCap"
	ReasonUnknownTeam    Reason = "UnknownTeam"
	ReasonPreferredFirst Reason = "EarlierOptionPreferred"
	ReasonCostlier       Reason = "Costlier"
	ReasonInvalid        Reason = "InvalidWorkload"
)

// Rejection is one reason one candidate lost.
type Rejection struct {
	Reason Reason
	Detail string
}

// Cost breaks down what one GPU-hour of a placement costs. Effective is what
// the ranking minimises; List is what the provider's price list says.
type Cost struct {
	ListPerGPUHour float64
	// Discount is what the contract takes off list (USD per GPU-hour;
	// negative when a capacity contract charges more than list).
	Discount float64
	// CommittedCredit is the list price waived because the capacity is
	// committed take-or-pay and already paid for.
	CommittedCredit float64
	// ShadowDiscount lowers the cost of usage that helps burn a spend
	// commitment projected to fall short.
	ShadowDiscount float64
	// SpotRisk is the expected cost of work lost to preemption.
	SpotRisk float64
	// Egress is the data transfer cost spread over the job's GPU-hours.
	Egress float64
	// BilledPerGPUHour is what will actually be paid per GPU-hour (list less
	// discount; zero for already-paid committed capacity).
	BilledPerGPUHour    float64
	EffectivePerGPUHour float64
}

// Admission places one workload.
type Admission struct {
	Workload    string
	Option      int
	Pool        PoolRef
	Provider    model.Provider
	Region      string
	GPU         model.GPUModel
	GPUsPerNode int
	Nodes       []int
	PriceClass  model.PriceClass
	Contract    string
	Borrowed    bool
	// OverCap is set when the admission exceeds the provider share cap
	// because the policy allows it when nothing else can run the workload.
	OverCap bool
	Cost    Cost
}

// GPUs returns the admission's GPU count.
func (a Admission) GPUs() int { return len(a.Nodes) * a.GPUsPerNode }

// Preemption evicts a running allocation to make room.
type Preemption struct {
	Workload string
	Pool     PoolRef
	// For is the workload the room is made for.
	For    string
	Reason string
	// LostGPUHours is the work lost since the victim's last checkpoint.
	LostGPUHours float64
}

// ScaleRequest asks an elastic pool for more nodes.
type ScaleRequest struct {
	Pool  PoolRef
	Nodes int
}

// Wait says why a workload stays pending this round.
type Wait struct {
	Workload string
	Reason   Reason
	Detail   string
}

// Decisions is everything one round decided, in a deterministic order:
// admissions and preemptions in the order they were made, waits in pending
// order.
type Decisions struct {
	Admit   []Admission
	Preempt []Preemption
	Scale   []ScaleRequest
	Wait    []Wait
}

// Candidate is one place a workload could run, as Plan reports it.
type Candidate struct {
	Rank         int
	Pool         PoolRef
	Provider     model.Provider
	Region       string
	InstanceType string
	Option       int
	GPU          model.GPUModel
	GPUsPerNode  int
	NumNodes     int
	PriceClass   model.PriceClass
	// ListPerHour and EffectivePerHour are for the whole workload.
	ListPerHour      float64
	EffectivePerHour float64
	Cost             Cost
	Feasible         bool
	// OverCap marks a candidate admitted over the provider share cap
	// because the policy allows that when nothing fits within it.
	OverCap    bool
	Rejections []Rejection
}
