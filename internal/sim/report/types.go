package report

import "time"

// Report is the outcome of replaying one trace through one fleet under one or
// more policies. Every PolicyRun saw the same jobs, seed and scale, so its
// numbers compare side by side.
//
// Maps are keyed by plain strings; encoding/json writes map keys sorted and
// the HTML renderer sorts them too, so map order never reaches the output.
// All float fields must be finite (no NaN or Inf): WriteJSON fails on them.
type Report struct {
	// Trace names the input trace as the user gave it, e.g. "philly:/data/philly".
	Trace string `json:"trace"`
	// Fleet names the fleet file, e.g. "examples/fleet.yaml".
	Fleet string `json:"fleet"`
	// Seed is the simulator's random seed; the same seed replays the same run.
	Seed int64 `json:"seed"`
	// Scale multiplies the trace's arrival rate (1 = as recorded).
	Scale float64 `json:"scale"`
	// Start is the simulated time of the first event (first arrival), UTC.
	Start time.Time `json:"start"`
	// End is the simulated time of the last event, UTC.
	End time.Time `json:"end"`
	// Jobs is the number of jobs read from the trace (after scaling).
	Jobs int `json:"jobs"`
	// Policies holds one run per policy, in the order the user named them.
	Policies []PolicyRun `json:"policies"`
}

// PolicyRun is what one policy did with the trace.
type PolicyRun struct {
	// Name is the policy as the user named it, e.g. "gpubroker", "single:azure", "cheapest".
	Name string `json:"name"`

	// CostUSD is the total spend over the run, in US dollars, including
	// take-or-pay commitments paid whether used or not.
	CostUSD float64 `json:"cost_usd"`
	// CostByProvider splits CostUSD by provider name ("aws", "azure", ...), USD.
	CostByProvider map[string]float64 `json:"cost_by_provider"`
	// CostByPriceClass splits CostUSD by price class ("committed",
	// "reserved", "ondemand", "spot"), USD.
	CostByPriceClass map[string]float64 `json:"cost_by_price_class"`
	// CostByContract splits the spend counted against each contract, by
	// contract name, USD. Spend under no contract is absent.
	CostByContract map[string]float64 `json:"cost_by_contract"`
	// CostByTeam splits CostUSD attributable to teams by team name, USD.
	// Unused take-or-pay capacity belongs to no team and is absent.
	CostByTeam map[string]float64 `json:"cost_by_team"`

	// GPUHoursRun is GPU-hours of work that counted toward a job's completion.
	GPUHoursRun float64 `json:"gpu_hours_run"`
	// GPUHoursBilled is GPU-hours paid for by running work: run plus lost.
	GPUHoursBilled float64 `json:"gpu_hours_billed"`
	// GPUHoursLost is GPU-hours of work thrown away by preemptions and
	// outages (work since the last checkpoint).
	GPUHoursLost float64 `json:"gpu_hours_lost"`

	// Commitments holds the burn-down of every contract, sorted by contract name.
	Commitments []Commitment `json:"commitments"`

	// ProviderShare is each provider's share of GPU-hours over the policy's
	// rolling window, sampled daily, in time order.
	ProviderShare []SharePoint `json:"provider_share"`
	// ProviderShareCap is the configured maximum share per provider, a
	// fraction in (0, 1]; 0 means no cap.
	ProviderShareCap float64 `json:"provider_share_cap"`
	// PeakCapShare is the largest share any provider reached as the cap
	// measures it: GPU-hours in the window over the window's total, but
	// never over less than the policy's share floor (so the first jobs of
	// an idle fleet do not count as 100%). A fraction; 0 when unknown.
	PeakCapShare float64 `json:"peak_cap_share"`

	// CostOverTime is cumulative spend by provider, sampled daily, in time
	// order (a first point at Start holding zeros makes the chart start from
	// zero). Take-or-pay charges count as they fall due, so the last point
	// sums to CostUSD and matches CostByProvider.
	CostOverTime []CostPoint `json:"cost_over_time"`

	// JCT is job completion time (arrival to finish) over completed jobs, seconds.
	JCT Dist `json:"jct"`
	// JCTBySize splits JCT by job size bucket (see SizeBucket): "1", "2-8", "9-64", "65+".
	JCTBySize map[string]Dist `json:"jct_by_size"`
	// Queueing is queueing delay (arrival to first start) over started jobs, seconds.
	Queueing Dist `json:"queueing"`
	// QueueingBySize splits Queueing by job size bucket, seconds.
	QueueingBySize map[string]Dist `json:"queueing_by_size"`

	// Utilisation is the busy fraction of each cluster's GPU capacity over
	// the run, by cluster name, in [0, 1].
	Utilisation map[string]float64 `json:"utilisation"`

	// DeadlinesMissed counts jobs with a deadline that finished after it or never finished.
	DeadlinesMissed int `json:"deadlines_missed"`
	// WithDeadline counts jobs that had a deadline.
	WithDeadline int `json:"with_deadline"`
	// JobsCompleted counts jobs that ran to completion.
	JobsCompleted int `json:"jobs_completed"`
	// NeverRunnable counts jobs that could never run, by reason (e.g.
	// "no pool offers GPU model X", "gang larger than any pool").
	NeverRunnable map[string]int `json:"never_runnable"`
	// Events is the number of simulator events processed.
	Events int64 `json:"events"`
	// Admissions counts placements (a job restarted after a preemption is
	// placed again); OverCapAdmissions those the policy let over the
	// provider share cap because nothing fitted within it.
	Admissions        int `json:"admissions"`
	OverCapAdmissions int `json:"over_cap_admissions"`
	// EnginePreemptions counts attempts the scheduler evicted for
	// higher-priority or reclaiming work; SpotPreemptions those the
	// provider took back; OutageKills those lost to outages.
	EnginePreemptions int `json:"engine_preemptions"`
	SpotPreemptions   int `json:"spot_preemptions"`
	OutageKills       int `json:"outage_kills"`
}

// Commitment is the burn-down of one contract.
type Commitment struct {
	// Contract is the contract's name from the fleet.
	Contract string `json:"contract"`
	// Provider is the provider the contract is with.
	Provider string `json:"provider"`
	// TakeOrPay is true when unused commitment is paid anyway.
	TakeOrPay bool `json:"take_or_pay"`
	// CommittedUSD is the commitment's value over the simulated span, USD.
	CommittedUSD float64 `json:"committed_usd"`
	// Series is planned vs actual cumulative spend, in time order (daily).
	Series []BurnPoint `json:"series"`
	// UsedUSD is the spend that burned the commitment by the end, USD.
	UsedUSD float64 `json:"used_usd"`
	// WastedUSD is take-or-pay value paid for but never used, USD.
	WastedUSD float64 `json:"wasted_usd"`
	// ShortfallUSD is how far actual burn trails the plan at the end, USD
	// (0 when on or ahead of plan).
	ShortfallUSD float64 `json:"shortfall_usd"`
}

// BurnPoint is one sample of a commitment burn-down.
type BurnPoint struct {
	// Time is the sample's simulated time, UTC.
	Time time.Time `json:"time"`
	// PlannedUSD is the cumulative spend the contract plans by Time, USD.
	PlannedUSD float64 `json:"planned_usd"`
	// ActualUSD is the cumulative spend counted against it by Time, USD.
	ActualUSD float64 `json:"actual_usd"`
}

// SharePoint is provider concentration at one moment.
type SharePoint struct {
	// Time is the sample's simulated time, UTC.
	Time time.Time `json:"time"`
	// Share is each provider's fraction of GPU-hours in the window, in [0, 1],
	// summing to 1 when any work ran.
	Share map[string]float64 `json:"share"`
	// HHI is the Herfindahl-Hirschman index, the sum of squared shares, in
	// [0, 1] (1 = everything on one provider).
	HHI float64 `json:"hhi"`
}

// CostPoint is cumulative spend at one moment.
type CostPoint struct {
	// Time is the sample's simulated time, UTC.
	Time time.Time `json:"time"`
	// ByProvider is cumulative spend per provider from the start to Time, USD.
	ByProvider map[string]float64 `json:"by_provider"`
}

// Dist summarises a distribution of durations, all in seconds.
type Dist struct {
	// Count is the number of samples.
	Count int `json:"count"`
	// Mean is the arithmetic mean, seconds.
	Mean float64 `json:"mean_s"`
	// P50 is the median, seconds.
	P50 float64 `json:"p50_s"`
	// P90 is the 90th percentile, seconds.
	P90 float64 `json:"p90_s"`
	// P99 is the 99th percentile, seconds.
	P99 float64 `json:"p99_s"`
	// Max is the largest sample, seconds.
	Max float64 `json:"max_s"`
	// Hist is a histogram over log-spaced bins (see Summarize), in bin order.
	Hist []Bin `json:"hist"`
}

// Bin is one histogram bin: samples s with Lower <= s < Upper.
type Bin struct {
	// Lower is the bin's lower edge, seconds (inclusive).
	Lower float64 `json:"lower_s"`
	// Upper is the bin's upper edge, seconds (exclusive).
	Upper float64 `json:"upper_s"`
	// Count is the number of samples in the bin.
	Count int `json:"count"`
}

// Job size buckets, by GPUs per job: the keys of JCTBySize and QueueingBySize.
const (
	Size1     = "1"
	Size2to8  = "2-8"
	Size9to64 = "9-64"
	Size65up  = "65+"
)

// SizeBuckets lists the job size buckets in display order.
var SizeBuckets = []string{Size1, Size2to8, Size9to64, Size65up}

// SizeBucket returns the size bucket of a job with the given GPU count.
func SizeBucket(gpus int) string {
	switch {
	case gpus <= 1:
		return Size1
	case gpus <= 8:
		return Size2to8
	case gpus <= 64:
		return Size9to64
	default:
		return Size65up
	}
}
