package model

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// WorkloadKind is a job (runs to completion) or a service (replicas behind an
// endpoint).
type WorkloadKind string

const (
	Job     WorkloadKind = "job"
	Service WorkloadKind = "service"
)

// OptionOrder says how a workload's resource options are chosen among.
type OptionOrder string

const (
	// AnyOf: every option is acceptable; the cheapest feasible wins.
	AnyOf OptionOrder = "any_of"
	// Ordered: try options in the order given; a later option is used only
	// when no earlier one is feasible.
	Ordered OptionOrder = "ordered"
)

// Resources is one acceptable shape for a workload's nodes. Empty strings
// and zero numbers mean "any".
type Resources struct {
	GPU         GPUModel
	GPUsPerNode int
	Provider    Provider
	Region      string
	Zone        string
	// UseSpot asks for spot capacity only (SkyPilot's use_spot: true).
	UseSpot bool
	// AllowSpot lets the broker choose spot or not, whichever is cheaper
	// once the risk of lost work is priced in. With neither flag set the
	// workload never runs on spot (SkyPilot's default).
	AllowSpot bool
	// CPUs and MemoryGiB per node; with the AtLeast flag ("4+") any larger
	// machine also fits, without it the machine must match exactly.
	CPUs           float64
	CPUsAtLeast    bool
	MemoryGiB      float64
	MemoryAtLeast  bool
	InstanceType   string
	MaxHourlyCost  float64 // USD per hour for the whole workload; 0 = none
	DiskSizeGiB    int
	AcceleratorArg string // as written by the user, for messages
}

// Recovery strategies (SkyPilot's job_recovery, lower-cased).
const (
	// RecoveryFailover: a lost attempt's successor may run anywhere the
	// engine finds best, the same cluster included once it is healthy.
	RecoveryFailover = "failover"
	// RecoveryEagerNextRegion: a lost or preempted attempt's successor
	// must run in another region than the one it was lost in.
	RecoveryEagerNextRegion = "eager_next_region"
)

// Recovery is what happens when an attempt fails or is lost.
type Recovery struct {
	// Strategy is RecoveryFailover, RecoveryEagerNextRegion or "" (the
	// default: failover).
	Strategy string
	// MaxRestartsOnErrors is how many times a job that exits with an error
	// is retried; lost or preempted attempts are always retried.
	MaxRestartsOnErrors int
	// RecoverOnExitCodes are exit codes (0-255) that always restart the
	// job, without counting toward MaxRestartsOnErrors (SkyPilot's
	// recover_on_exit_codes: transient errors such as an NCCL timeout).
	RecoverOnExitCodes []int
}

// ServiceSpec holds what only services have.
type ServiceSpec struct {
	MinReplicas   int
	MaxReplicas   int
	ReadinessPath string
	Port          int
}

// Workload is a unit of work submitted by a team.
type Workload struct {
	ID       string
	Name     string
	Kind     WorkloadKind
	Team     string
	Priority int
	NumNodes int
	Options  []Resources
	Order    OptionOrder

	Envs       map[string]string
	Setup      string
	Run        string
	Workdir    string
	FileMounts map[string]string
	Recovery   Recovery
	Service    *ServiceSpec

	// Deadline is when the job should be done; zero for none.
	Deadline time.Time
	// CheckpointDir is where the job saves and resumes from.
	CheckpointDir string
	// CheckpointInterval is how often the job checkpoints; zero means it does
	// not, so a preemption loses all its work.
	CheckpointInterval time.Duration
	// DataRegion is where the job's data lives; running elsewhere pays
	// egress on DataGB.
	DataRegion string
	DataGB     float64
	// Duration is the expected run time, used for cost, budget and share
	// estimates (a trace gives it exactly; a user may give an estimate).
	Duration time.Duration
	// Submitted is when the workload arrived.
	Submitted time.Time
	// AvoidRegions are regions the engine must not place this attempt in
	// (reason RecoveryAvoidsRegion). The control plane sets it, never a
	// task file: for job_recovery eager_next_region it holds the region
	// where the previous attempt was lost or preempted.
	AvoidRegions []string
}

// GPUs returns the total GPU count of the workload under option i.
func (w *Workload) GPUs(i int) int { return w.NumNodes * w.Options[i].GPUsPerNode }

// Validate checks a workload after parsing.
func (w *Workload) Validate() error {
	var errs FieldErrors
	if w.Name != "" {
		checkName(&errs, "name", w.Name)
	}
	if w.Kind != Job && w.Kind != Service {
		errs.Add("kind", "unknown kind %q; use job or service", w.Kind)
	}
	if w.NumNodes < 1 {
		errs.Add("num_nodes", "%d is out of range; give 1 or more nodes", w.NumNodes)
	}
	if w.Order != AnyOf && w.Order != Ordered {
		errs.Add("resources", "unknown option order %q; use any_of or ordered", w.Order)
	}
	if len(w.Options) == 0 {
		errs.Add("resources.accelerators", "no GPU requested; ask for one, e.g. accelerators: H100:8")
	}
	for i, o := range w.Options {
		path := fmt.Sprintf("resources[%d]", i)
		if o.GPU == "" {
			errs.Add(path+".accelerators", "no GPU model; ask for one, e.g. H100:8")
		}
		if o.GPUsPerNode < 1 || o.GPUsPerNode > MaxGPUsPerNode {
			errs.Add(path+".accelerators", "%d GPUs per node is out of range; give 1 to %d", o.GPUsPerNode, MaxGPUsPerNode)
		}
		checkNonNegative(&errs, path+".cpus", o.CPUs)
		checkNonNegative(&errs, path+".memory", o.MemoryGiB)
		checkNonNegative(&errs, path+".max_hourly_cost", o.MaxHourlyCost)
	}
	switch w.Recovery.Strategy {
	case "", RecoveryFailover, RecoveryEagerNextRegion:
	default:
		errs.Add("job_recovery.strategy", "unknown strategy %q; use FAILOVER or EAGER_NEXT_REGION", w.Recovery.Strategy)
	}
	for i, c := range w.Recovery.RecoverOnExitCodes {
		if c < 0 || c > 255 {
			errs.Add(fmt.Sprintf("job_recovery.recover_on_exit_codes[%d]", i), "%d is not an exit code; give 0 to 255", c)
		}
	}
	if w.Recovery.MaxRestartsOnErrors < 0 {
		errs.Add("job_recovery.max_restarts_on_errors", "%d is negative; give 0 or more", w.Recovery.MaxRestartsOnErrors)
	}
	if w.CheckpointInterval < 0 {
		errs.Add("x-gpubroker.checkpoint_interval", "negative; give a duration such as 30m")
	}
	if w.Duration < 0 {
		errs.Add("x-gpubroker.duration", "negative; give a duration such as 12h")
	}
	checkNonNegative(&errs, "x-gpubroker.data_gb", w.DataGB)
	w.checkBounds(&errs)
	if w.Service != nil {
		s := w.Service
		if s.MinReplicas < 0 || (s.MaxReplicas != 0 && s.MaxReplicas < s.MinReplicas) {
			errs.Add("service.replica_policy", "min_replicas %d and max_replicas %d do not make a range; give 0 <= min <= max", s.MinReplicas, s.MaxReplicas)
		}
	}
	return errs.Err()
}

// Clone returns a deep copy of w: the copy shares no slice, map or pointer
// with w. A field added to Workload with such a type must be copied here
// too (TestWorkloadCloneCopiesEveryReference fails until it is).
func (w *Workload) Clone() *Workload {
	if w == nil {
		return nil
	}
	c := *w
	c.Options = slices.Clone(w.Options)
	c.Envs = maps.Clone(w.Envs)
	c.FileMounts = maps.Clone(w.FileMounts)
	if w.Service != nil {
		s := *w.Service
		c.Service = &s
	}
	c.AvoidRegions = slices.Clone(w.AvoidRegions)
	c.Recovery.RecoverOnExitCodes = slices.Clone(w.Recovery.RecoverOnExitCodes)
	return &c
}
