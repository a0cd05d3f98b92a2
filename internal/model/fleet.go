package model

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Fleet is everything gpubroker may place work on and the rules it places
// by: providers, clusters with their pools, contracts, teams and the policy.
type Fleet struct {
	Providers []ProviderInfo
	Clusters  []Cluster
	Contracts []Contract
	Teams     []Team
	Policy    Policy
}

// ProviderInfo holds what is known of a provider as a whole.
type ProviderInfo struct {
	Name Provider
	// EgressPerGB is the USD price of moving one GB out of this provider's
	// region to another region (or out of the provider).
	EgressPerGB float64
	// SpotPreemptionPerHour is the expected number of spot preemptions per
	// node-hour on this provider, used to price the risk of lost work.
	SpotPreemptionPerHour float64
}

// Cluster is a place where work actually runs.
type Cluster struct {
	Name     string
	Provider Provider
	Region   string
	Zone     string
	Backend  BackendKind
	// Endpoint is free text for people about how the cluster is reached;
	// shown, never used (Slurm and Kubernetes say it). Never a credential.
	Endpoint string
	// Slurm says how to reach a slurm cluster (nil: the broker's own
	// SLURM_CONF and the default partition); only for backend slurm.
	Slurm *SlurmTarget
	// Kubernetes says how to reach a kubernetes cluster (nil: $KUBECONFIG's
	// current context, namespace gpubroker); only for backend kubernetes.
	Kubernetes *KubernetesTarget
	// Target is the cluster's driver block for a backend whose block the
	// vocabulary does not type (every backend but slurm and kubernetes):
	// the mapping under the backend's name in the fleet file, as JSON
	// would decode it (string, float64, bool, nil, []any, map[string]any).
	// The backend's driver checks it and reads it; nil when the cluster
	// has none.
	Target map[string]any
	// QueueAhead lets each pool of a cluster whose engine queues work
	// itself (slurm, kubernetes) hold up to this many nodes' worth of
	// admitted work beyond its capacity (never more than the pool's own
	// nodes): the engine queues it and starts it the moment capacity
	// frees, instead of the broker admitting it then (ADR 0003). 0, the
	// default, admits only what fits.
	QueueAhead int
	Pools      []Pool
}

// QueuesAhead reports whether c's pools hold work queued in its engine
// beyond their capacity (QueueAhead on an engine with a queue).
func (c *Cluster) QueuesAhead() bool {
	return c.QueueAhead > 0 && (c.Backend == BackendSlurm || c.Backend == BackendKubernetes)
}

// AheadNodes is how many queue slots (nodes' worth of work queued in the
// engine beyond the pool's capacity) pool p of c gets.
func (c *Cluster) AheadNodes(p *Pool) int {
	if !c.QueuesAhead() {
		return 0
	}
	return min(c.QueueAhead, p.Nodes)
}

// SlurmTarget is how the broker reaches one Slurm cluster through the
// Slurm commands. Paths are the broker machine's.
type SlurmTarget struct {
	// Conf is the slurm.conf the commands read (SLURM_CONF); empty: the
	// broker's environment.
	Conf string
	// Partition jobs go to; empty: the cluster's default partition.
	Partition string
	// GRESType is the GPU GRES type requested (gpu:TYPE:N), e.g. "h100";
	// empty requests any GPU.
	GRESType string
	// Dir is the directory shared with the compute nodes where attempts'
	// scripts and logs live; empty: under the broker's state directory
	// (right only when the nodes see it at the same path).
	Dir string
	// Account and QOS every job is charged to and scheduled under
	// (--account, --qos); empty: the submitting user's defaults.
	Account string
	QOS     string
	// TeamAccounts and TeamQOS override Account and QOS for one team's
	// jobs, so that Slurm's own fair share and limits see gpubroker's
	// teams.
	TeamAccounts map[string]string
	TeamQOS      map[string]string
}

// KubernetesTarget is how the broker reaches one Kubernetes cluster.
type KubernetesTarget struct {
	// Kubeconfig is the kubeconfig file; empty: $KUBECONFIG, then
	// ~/.kube/config, then the in-cluster service account.
	Kubeconfig string
	// Context is the kubeconfig context; empty: the current one.
	Context string
	// Namespace holds the broker's Jobs; empty: gpubroker.
	Namespace string
	// Image runs the job's bash scripts; empty: the backend's default.
	Image string
	// Products maps a pool name to the nvidia.com/gpu.product label value
	// its nodes carry; a pool not listed selects nodes by its own name.
	Products map[string]string
	// Compression lets the API server gzip its responses (off by default:
	// see kubernetes.Options.Compression).
	Compression bool
}

// Pool is a block of identical GPU nodes inside a cluster.
type Pool struct {
	Name        string
	GPU         GPUModel
	GPUsPerNode int
	Nodes       int
	PriceClass  PriceClass
	// PricePerGPUHour is the list USD price of one GPU for one hour. For a
	// pool given by catalog instance type the spec fills it in.
	PricePerGPUHour float64
	InstanceType    string
	// CPUsPerNode and MemoryGiBPerNode describe each node; zero means
	// unknown, and then a workload's cpus/memory request is not checked.
	CPUsPerNode      float64
	MemoryGiBPerNode float64
	// Contract names the contract this pool's capacity or spend counts
	// toward; empty for none.
	Contract string
	// MaxNodes > Nodes makes the pool elastic: the engine may ask for more
	// nodes up to MaxNodes (a scale request).
	MaxNodes int
}

// GPUs is the pool's installed GPU count.
func (p Pool) GPUs() int { return p.GPUsPerNode * p.Nodes }

// ContractKind says what a contract commits to.
type ContractKind string

const (
	// SpendCommitment promises to spend an amount over the term, at a
	// discount off list prices for the provider's capacity.
	SpendCommitment ContractKind = "spend"
	// CapacityCommitment reserves N GPUs of a model for the term.
	CapacityCommitment ContractKind = "capacity"
)

// Contract is a commitment signed with a provider.
type Contract struct {
	Name     string
	Provider Provider
	Kind     ContractKind
	Start    time.Time
	End      time.Time
	// SpendUSD is the total committed spend over the term (spend kind).
	SpendUSD float64
	// YearlyMinimumsUSD, when set, is the minimum spend for each contract
	// year in order; its length is the term in whole years.
	YearlyMinimumsUSD []float64
	// GPU and GPUs describe a capacity commitment.
	GPU  GPUModel
	GPUs int
	// PricePerGPUHour is what a capacity commitment costs per GPU-hour,
	// paid whether used or not when TakeOrPay.
	PricePerGPUHour float64
	// Discount is the fraction off list price the contract gives (0.3 = 30%).
	Discount  float64
	TakeOrPay bool
}

// Term returns the contract's length.
func (c Contract) Term() time.Duration { return c.End.Sub(c.Start) }

// Team is who submits work.
type Team struct {
	Name string
	// Quota is the nominal number of GPUs of each model the team may hold at
	// once. A model absent from the map has a quota of zero: the team runs it
	// only on capacity borrowed from its cohort.
	Quota map[GPUModel]int
	// Weight is the team's fair-share weight (default 1).
	Weight float64
	// Cohort groups teams that lend each other idle quota.
	Cohort string
	// MonthlyBudgetUSD caps the team's spend per calendar month; 0 = none.
	MonthlyBudgetUSD float64
	// Regions, when set, are the only regions the team's work may run in
	// (data residency).
	Regions []string
	// MaxPriority, when set, is the highest priority the team's members
	// may submit with (priority decides who preempts whom); nil: the
	// policy's MaxPriority.
	MaxPriority *int
}

// Policy holds the fleet-wide placement rules.
type Policy struct {
	// MaxProviderShare caps any one provider's share of GPU-hours over
	// ShareWindow (0.6 = 60%). Zero disables the cap.
	MaxProviderShare float64
	ShareWindow      time.Duration
	// ShareFloorGPUHours is the smallest denominator the share is computed
	// against, so the cap means something while the fleet is nearly idle
	// (with no floor, the first job would give its provider 100%). Zero lets
	// the engine take fleet GPUs x 24h.
	ShareFloorGPUHours float64
	// CapFallback lets the engine go over the cap when no provider can run a
	// workload within it.
	CapFallback bool
	// SpotAllowed permits spot capacity at all.
	SpotAllowed bool
	// Regions, when set, are the only regions any work may run in.
	Regions []string
	// MaxPricePerGPUHour is a ceiling on list price per GPU-hour by GPU
	// model; the key "*" applies to every model.
	MaxPricePerGPUHour map[GPUModel]float64
	// Preemption lets higher-priority or within-quota work preempt
	// lower-priority or borrowed work.
	Preemption bool
	// FairShare orders teams by weighted usage; off means plain FIFO by
	// priority then arrival.
	FairShare bool
	// MaxPriority, when set, is the highest priority a member of a team
	// without its own max_priority may submit with; nil: no limit.
	MaxPriority *int
}

// DefaultPolicy is the policy a fleet file without a policy section gets.
func DefaultPolicy() Policy {
	return Policy{ShareWindow: 30 * 24 * time.Hour, SpotAllowed: true, Preemption: true, FairShare: true}
}

// Validate checks the fleet as a whole: names unique, references resolve,
// numbers in range. Errors carry YAML paths.
func (f *Fleet) Validate() error {
	var errs FieldErrors
	providers := map[Provider]bool{}
	for i, p := range f.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		checkName(&errs, path+".name", string(p.Name))
		if providers[p.Name] {
			errs.Add(path+".name", "provider %q is listed twice; list each provider once", p.Name)
		}
		providers[p.Name] = true
		checkNonNegative(&errs, path+".egress_per_gb", p.EgressPerGB)
		checkNonNegative(&errs, path+".spot_preemptions_per_hour", p.SpotPreemptionPerHour)
	}
	contracts := map[string]Contract{}
	for i, c := range f.Contracts {
		path := fmt.Sprintf("contracts[%d]", i)
		errs.Merge(path, c.Validate())
		if _, dup := contracts[c.Name]; dup {
			errs.Add(path+".name", "contract %q is defined twice; give each contract its own name", c.Name)
		}
		contracts[c.Name] = c
	}
	clusters := map[string]bool{}
	for i, c := range f.Clusters {
		path := fmt.Sprintf("clusters[%d]", i)
		errs.Merge(path, c.Validate())
		if clusters[c.Name] {
			errs.Add(path+".name", "cluster %q is defined twice; give each cluster its own name", c.Name)
		}
		clusters[c.Name] = true
		for j, p := range c.Pools {
			if p.Contract == "" {
				continue
			}
			ct, ok := contracts[p.Contract]
			ppath := fmt.Sprintf("%s.pools[%d].contract", path, j)
			switch {
			case !ok:
				errs.Add(ppath, "unknown contract %q; define it under contracts: or remove the reference", p.Contract)
			case ct.Provider != c.Provider:
				errs.Add(ppath, "contract %q is with %q but the cluster is on %q; a pool can only count toward its own provider's contract", p.Contract, ct.Provider, c.Provider)
			}
		}
	}
	teams := map[string]bool{}
	for i, t := range f.Teams {
		path := fmt.Sprintf("teams[%d]", i)
		errs.Merge(path, t.Validate())
		if teams[t.Name] {
			errs.Add(path+".name", "team %q is defined twice; give each team its own name", t.Name)
		}
		teams[t.Name] = true
	}
	for i, c := range f.Clusters {
		if c.Slurm == nil {
			continue
		}
		for _, m := range []struct {
			key string
			by  map[string]string
		}{{"team_accounts", c.Slurm.TeamAccounts}, {"team_qos", c.Slurm.TeamQOS}} {
			keys := make([]string, 0, len(m.by))
			for k := range m.by {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, team := range keys {
				path := fmt.Sprintf("clusters[%d].slurm.%s.%s", i, m.key, team)
				if !teams[team] && team != "default" {
					errs.Add(path, "unknown team %q; define it under teams: or remove it", team)
				}
				if m.by[team] == "" {
					errs.Add(path, "empty; give the Slurm %s for team %s, or remove the line", strings.TrimPrefix(m.key, "team_"), team)
				}
			}
		}
	}
	errs.Merge("policy", f.Policy.Validate())
	f.checkBounds(&errs)
	return errs.Err()
}

// Validate checks one cluster and its pools.
func (c Cluster) Validate() error {
	var errs FieldErrors
	checkName(&errs, "name", c.Name)
	checkName(&errs, "provider", string(c.Provider))
	if c.Region == "" {
		errs.Add("region", "missing; give the region the cluster is in (e.g. us-east-1, or the site name for on-prem)")
	}
	if !c.Backend.Valid() {
		errs.Add("backend", "unknown backend %q; use one of %s", c.Backend, quote(backendNames()))
	}
	if c.Slurm != nil && c.Backend != BackendSlurm {
		errs.Add("slurm", "a slurm block on a %s cluster; remove it or set backend: slurm", c.Backend)
	}
	if c.QueueAhead < 0 {
		errs.Add("queue_ahead", "%d is negative; give how many nodes' worth of work each pool may queue in the engine, or 0 for none", c.QueueAhead)
	} else if c.QueueAhead > 0 && c.Backend != BackendSlurm && c.Backend != BackendKubernetes {
		errs.Add("queue_ahead", "a %s cluster has no queue of its own to hold work ahead; remove queue_ahead (only slurm and kubernetes clusters take it)", c.Backend)
	}
	if c.Kubernetes != nil {
		if c.Backend != BackendKubernetes {
			errs.Add("kubernetes", "a kubernetes block on a %s cluster; remove it or set backend: kubernetes", c.Backend)
		}
		pools := map[string]bool{}
		for _, p := range c.Pools {
			pools[p.Name] = true
		}
		keys := make([]string, 0, len(c.Kubernetes.Products))
		for k := range c.Kubernetes.Products {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !pools[k] {
				errs.Add("kubernetes.products."+k, "no pool %q in this cluster; key products by the cluster's pool names", k)
			}
			if c.Kubernetes.Products[k] == "" {
				errs.Add("kubernetes.products."+k, "empty; give the nvidia.com/gpu.product label of the pool's nodes (e.g. NVIDIA-H100-80GB-HBM3)")
			}
		}
		if ns := c.Kubernetes.Namespace; ns != "" && !validName(ns) {
			errs.Add("kubernetes.namespace", "%q is not a valid namespace; use lower-case letters, digits and '-'", ns)
		}
	}
	if len(c.Pools) == 0 {
		errs.Add("pools", "the cluster has no pools; add at least one pool of GPU nodes")
	}
	names := map[string]bool{}
	for i, p := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		errs.Merge(path, p.Validate())
		if names[p.Name] {
			errs.Add(path+".name", "pool %q is defined twice in this cluster", p.Name)
		}
		names[p.Name] = true
	}
	return errs.Err()
}

func backendNames() []string {
	out := make([]string, len(BackendKinds))
	for i, b := range BackendKinds {
		out[i] = string(b)
	}
	return out
}

// Validate checks one pool.
func (p Pool) Validate() error {
	var errs FieldErrors
	checkName(&errs, "name", p.Name)
	if p.GPU == "" {
		errs.Add("gpu", "missing; name the GPU model of the pool's nodes (e.g. H100)")
	}
	if p.GPUsPerNode < 1 || p.GPUsPerNode > MaxGPUsPerNode {
		errs.Add("gpus_per_node", "%d is out of range; give 1 to %d", p.GPUsPerNode, MaxGPUsPerNode)
	}
	if p.Nodes < 0 {
		errs.Add("nodes", "%d is negative; give the number of nodes (0 or more)", p.Nodes)
	}
	if p.Nodes > MaxPoolNodes {
		errs.Add("nodes", "%d is more than %d; split the capacity into several pools or clusters", p.Nodes, MaxPoolNodes)
	}
	if p.MaxNodes > MaxPoolNodes {
		errs.Add("max_nodes", "%d is more than %d; split the capacity into several pools or clusters", p.MaxNodes, MaxPoolNodes)
	}
	if p.MaxNodes != 0 && p.MaxNodes < p.Nodes {
		errs.Add("max_nodes", "%d is below nodes (%d); give max_nodes >= nodes, or leave it out", p.MaxNodes, p.Nodes)
	}
	if !p.PriceClass.Valid() {
		errs.Add("price_class", "unknown price class %q; use committed, reserved, ondemand or spot", p.PriceClass)
	}
	checkNonNegative(&errs, "price_per_gpu_hour", p.PricePerGPUHour)
	return errs.Err()
}

// Validate checks one contract.
func (c Contract) Validate() error {
	var errs FieldErrors
	checkName(&errs, "name", c.Name)
	checkName(&errs, "provider", string(c.Provider))
	if c.Start.IsZero() || c.End.IsZero() || !c.End.After(c.Start) {
		errs.Add("term", "the term needs a start before its end (e.g. start: 2026-01-01, years: 7)")
	}
	switch c.Kind {
	case SpendCommitment:
		if c.SpendUSD <= 0 {
			errs.Add("spend_usd", "a spend commitment needs the amount committed (e.g. 38e9)")
		}
		sum := 0.0
		for i, m := range c.YearlyMinimumsUSD {
			checkNonNegative(&errs, fmt.Sprintf("yearly_minimums_usd[%d]", i), m)
			sum += m
		}
		if sum > c.SpendUSD*1.000001 {
			errs.Add("yearly_minimums_usd", "yearly minimums add up to %.4g, more than the commitment %.4g", sum, c.SpendUSD)
		}
	case CapacityCommitment:
		if c.GPU == "" {
			errs.Add("gpu", "a capacity commitment needs the GPU model it reserves")
		}
		if c.GPUs <= 0 {
			errs.Add("gpus", "a capacity commitment needs the number of GPUs it reserves (1 or more)")
		}
	default:
		errs.Add("kind", "unknown contract kind %q; use spend or capacity", c.Kind)
	}
	checkFraction(&errs, "discount", c.Discount)
	checkNonNegative(&errs, "price_per_gpu_hour", c.PricePerGPUHour)
	return errs.Err()
}

// Validate checks one team.
func (t Team) Validate() error {
	var errs FieldErrors
	checkName(&errs, "name", t.Name)
	if t.Weight < 0 || t.Weight != t.Weight {
		errs.Add("weight", "%v is negative; give a fair-share weight above 0 (default 1)", t.Weight)
	}
	keys := make([]string, 0, len(t.Quota))
	for g := range t.Quota {
		keys = append(keys, string(g))
	}
	sort.Strings(keys)
	for _, g := range keys {
		if t.Quota[GPUModel(g)] < 0 {
			errs.Add("quota."+g, "%d is negative; give a GPU count of 0 or more", t.Quota[GPUModel(g)])
		}
	}
	checkNonNegative(&errs, "monthly_budget_usd", t.MonthlyBudgetUSD)
	return errs.Err()
}

// Validate checks the policy.
func (p Policy) Validate() error {
	var errs FieldErrors
	checkFraction(&errs, "max_provider_share", p.MaxProviderShare)
	if p.MaxProviderShare > 0 && p.ShareWindow <= 0 {
		errs.Add("share_window", "a provider share cap needs a window (e.g. 30d)")
	}
	checkNonNegative(&errs, "share_floor_gpu_hours", p.ShareFloorGPUHours)
	keys := make([]string, 0, len(p.MaxPricePerGPUHour))
	for g := range p.MaxPricePerGPUHour {
		keys = append(keys, string(g))
	}
	sort.Strings(keys)
	for _, g := range keys {
		checkNonNegative(&errs, "max_price_per_gpu_hour."+g, p.MaxPricePerGPUHour[GPUModel(g)])
	}
	return errs.Err()
}

// Provider returns the named provider's info, or a zero value with the name
// set when the fleet does not describe it.
func (f *Fleet) Provider(name Provider) ProviderInfo {
	for _, p := range f.Providers {
		if p.Name == name {
			return p
		}
	}
	return ProviderInfo{Name: name}
}

// Cluster returns the named cluster, or nil when the fleet has none.
func (f *Fleet) Cluster(name string) *Cluster {
	for i := range f.Clusters {
		if f.Clusters[i].Name == name {
			return &f.Clusters[i]
		}
	}
	return nil
}

// Team returns the named team and whether it exists.
func (f *Fleet) Team(name string) (Team, bool) {
	for _, t := range f.Teams {
		if t.Name == name {
			return t, true
		}
	}
	return Team{}, false
}

// Contract returns the named contract and whether it exists.
func (f *Fleet) Contract(name string) (Contract, bool) {
	for _, c := range f.Contracts {
		if c.Name == name {
			return c, true
		}
	}
	return Contract{}, false
}
