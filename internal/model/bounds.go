package model

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Bounds on the numbers and sizes of user input that size the broker's
// memory or work. A task or fleet past one is refused with the field named;
// a stored one (accepted by an older version) fails validation when read
// back, and the server reports it instead of acting on it. docs/tasks.md
// and docs/fleet.md list them.
const (
	// MaxNumNodes bounds a job's num_nodes: a gang runs in one pool, so
	// it can never be larger than MaxPoolNodes.
	MaxNumNodes = MaxPoolNodes
	// MaxReplicas bounds a service's replicas (min and max).
	MaxReplicas = 1000
	// MaxOptions bounds a workload's resource options after any_of,
	// ordered and accelerator sets are expanded: the engine weighs every
	// option of every pending workload in every round.
	MaxOptions = 64
	// MaxEnvs bounds a workload's environment variables (envs and secrets
	// together).
	MaxEnvs = 1000
	// MaxEnvNameBytes bounds one variable's name.
	MaxEnvNameBytes = 256
	// MaxEnvValueBytes bounds one variable's value: Linux refuses to start
	// a process with an environment string over 128 KiB (E2BIG).
	MaxEnvValueBytes = 64 << 10
	// MaxEnvBytes bounds all of a workload's names and values together,
	// well under the 2 MiB a Linux exec takes for arguments and
	// environment (with an 8 MiB stack) and the object sizes Kubernetes
	// stores.
	MaxEnvBytes = 256 << 10
	// MaxFileMounts bounds a workload's file_mounts.
	MaxFileMounts = 1000
	// MaxPathBytes bounds a path given in a task (workdir, file_mounts,
	// checkpoint_dir, readiness probe): Linux's PATH_MAX.
	MaxPathBytes = 4096
	// MaxLabelBytes bounds a region, zone, instance type, cohort or
	// accelerator as written: the longest real one is a few dozen bytes.
	MaxLabelBytes = 128
	// MaxRestarts bounds max_restarts_on_errors: every restart is a new
	// attempt with its own log directory.
	MaxRestarts = 100
	// MaxClusters, MaxPools (over all clusters), MaxTeams, MaxContracts and
	// MaxProviders bound a fleet's lists: a round observes every cluster
	// and weighs every pool.
	MaxClusters  = 10_000
	MaxPools     = 100_000
	MaxTeams     = 10_000
	MaxContracts = 10_000
	MaxProviders = 1000
	// MaxFleetNodes bounds the nodes of all pools together (each pool's
	// max_nodes when elastic): the engine holds state per node. The
	// engine's 10,000-cluster scaling benchmark (BenchmarkPlacementScaling)
	// has 1.32 million.
	MaxFleetNodes = 4_000_000
	// MaxRegions bounds a team's or the policy's regions list.
	MaxRegions = 1000
	// MaxContractYears bounds a contract's term (and so its yearly
	// minimums): the ledger walks it month by month.
	MaxContractYears = 100
)

// checkLabel refuses a free-text label longer than MaxLabelBytes or
// holding control characters (NUL among them).
func checkLabel(errs *FieldErrors, path, s string) {
	if len(s) > MaxLabelBytes {
		errs.Add(path, "%d bytes is too long; give at most %d", len(s), MaxLabelBytes)
		return
	}
	if hasControl(s) {
		errs.Add(path, "%q holds a control character; remove it", s)
	}
}

// checkPath refuses a path longer than MaxPathBytes or holding a NUL byte,
// which no file system accepts.
func checkPath(errs *FieldErrors, path, s string) {
	if len(s) > MaxPathBytes {
		errs.Add(path, "%d bytes is too long for a path; give at most %d", len(s), MaxPathBytes)
	} else if strings.IndexByte(s, 0) >= 0 {
		errs.Add(path, "holds a NUL byte, which no path can; remove it")
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// checkCount refuses a list longer than most.
func checkCount(errs *FieldErrors, path string, n, most int, fix string) {
	if n > most {
		errs.Add(path, "%d entries are more than %d; %s", n, most, fix)
	}
}

// checkBounds adds the workload's bound violations to errs.
func (w *Workload) checkBounds(errs *FieldErrors) {
	if w.NumNodes > MaxNumNodes {
		errs.Add("num_nodes", "%d is more than %d; no pool holds a larger gang", w.NumNodes, MaxNumNodes)
	}
	if w.Team != "" {
		checkName(errs, "x-gpubroker.team", w.Team)
	}
	if len(w.Options) > MaxOptions {
		errs.Add("resources", "%d resource options (after any_of, ordered and accelerator sets are expanded) are more than %d; list fewer choices", len(w.Options), MaxOptions)
	}
	for i, o := range w.Options {
		path := fmt.Sprintf("resources[%d]", i)
		checkLabel(errs, path+".region", o.Region)
		checkLabel(errs, path+".zone", o.Zone)
		checkLabel(errs, path+".instance_type", o.InstanceType)
		checkLabel(errs, path+".accelerators", o.AcceleratorArg)
		if i >= MaxOptions {
			break // one message per field is enough
		}
	}
	w.checkEnvs(errs)
	checkCount(errs, "file_mounts", len(w.FileMounts), MaxFileMounts, "mount a directory instead of its files")
	for _, dst := range sortedKeys(w.FileMounts) {
		checkPath(errs, "file_mounts", dst)
		checkPath(errs, "file_mounts."+safeKey(dst), w.FileMounts[dst])
	}
	checkPath(errs, "workdir", w.Workdir)
	checkPath(errs, "x-gpubroker.checkpoint_dir", w.CheckpointDir)
	checkLabel(errs, "x-gpubroker.data_region", w.DataRegion)
	if w.Recovery.MaxRestartsOnErrors > MaxRestarts {
		errs.Add("job_recovery.max_restarts_on_errors", "%d is more than %d; give %d or fewer", w.Recovery.MaxRestartsOnErrors, MaxRestarts, MaxRestarts)
	}
	if s := w.Service; s != nil {
		if s.MinReplicas > MaxReplicas || s.MaxReplicas > MaxReplicas {
			errs.Add("service.replicas", "%d replicas are more than %d; give %d or fewer", max(s.MinReplicas, s.MaxReplicas), MaxReplicas, MaxReplicas)
		}
		checkPath(errs, "service.readiness_probe", s.ReadinessPath)
	}
}

// checkEnvs bounds the environment: count, sizes, and what no process
// environment can hold (a NUL byte anywhere, '=' in a name).
func (w *Workload) checkEnvs(errs *FieldErrors) {
	checkCount(errs, "envs", len(w.Envs), MaxEnvs, "pass the values in a file instead")
	total, oversized := 0, false
	for _, k := range sortedKeys(w.Envs) {
		v := w.Envs[k]
		total += len(k) + len(v)
		path := "envs." + safeKey(k)
		switch {
		case len(k) > MaxEnvNameBytes:
			errs.Add(path, "the name is %d bytes; give at most %d", len(k), MaxEnvNameBytes)
		case strings.IndexByte(k, 0) >= 0 || strings.IndexByte(k, '=') >= 0:
			errs.Add(path, "an environment variable's name cannot hold a NUL byte or '='; rename it")
		}
		switch {
		case len(v) > MaxEnvValueBytes:
			oversized = true
			errs.Add(path, "the value is %d bytes; give at most %d (pass larger data in a file)", len(v), MaxEnvValueBytes)
		case strings.IndexByte(v, 0) >= 0:
			errs.Add(path, "the value holds a NUL byte, which no process environment can; remove it")
		}
	}
	if total > MaxEnvBytes && !oversized {
		// (An oversized value is named above; the sum would only echo it.)
		errs.Add("envs", "names and values add up to %d bytes, more than %d; pass larger data in a file", total, MaxEnvBytes)
	}
}

// safeKey is a map key as it may appear in a field path: at most 64 bytes,
// control characters escaped, so that a hostile key does not make the
// message huge or unreadable.
func safeKey(k string) string {
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	if hasControl(k) {
		q := fmt.Sprintf("%q", k)
		return q[1 : len(q)-1]
	}
	return k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkBounds adds the fleet's bound violations to errs.
func (f *Fleet) checkBounds(errs *FieldErrors) {
	checkCount(errs, "providers", len(f.Providers), MaxProviders, "describe only the providers the clusters use")
	checkCount(errs, "contracts", len(f.Contracts), MaxContracts, "merge contracts, or split the fleet")
	checkCount(errs, "clusters", len(f.Clusters), MaxClusters, "split the fleet between brokers")
	checkCount(errs, "teams", len(f.Teams), MaxTeams, "merge teams into cohorts' teams, or split the fleet")
	pools, nodes := 0, 0
	for i, c := range f.Clusters {
		path := fmt.Sprintf("clusters[%d]", i)
		checkLabel(errs, path+".region", c.Region)
		checkLabel(errs, path+".zone", c.Zone)
		if len(c.Endpoint) > MaxPathBytes {
			errs.Add(path+".endpoint", "%d bytes is too long; give at most %d", len(c.Endpoint), MaxPathBytes)
		}
		pools += len(c.Pools)
		for j, p := range c.Pools {
			checkLabel(errs, fmt.Sprintf("%s.pools[%d].instance_type", path, j), p.InstanceType)
			if p.Nodes > 0 && p.Nodes <= MaxPoolNodes && p.MaxNodes <= MaxPoolNodes {
				nodes += max(p.Nodes, p.MaxNodes)
			}
		}
	}
	if pools > MaxPools {
		errs.Add("clusters", "the clusters hold %d pools, more than %d; split the fleet between brokers", pools, MaxPools)
	}
	if nodes > MaxFleetNodes {
		errs.Add("clusters", "the pools hold %d nodes (max_nodes for elastic pools), more than %d; split the fleet between brokers", nodes, MaxFleetNodes)
	}
	for i, t := range f.Teams {
		path := fmt.Sprintf("teams[%d]", i)
		if t.Cohort != "" {
			checkLabel(errs, path+".cohort", t.Cohort)
		}
		checkCount(errs, path+".regions", len(t.Regions), MaxRegions, "list fewer regions")
		for k, r := range t.Regions {
			checkLabel(errs, fmt.Sprintf("%s.regions[%d]", path, k), r)
		}
	}
	for i, c := range f.Contracts {
		path := fmt.Sprintf("contracts[%d]", i)
		if !c.Start.IsZero() && c.End.After(c.Start.AddDate(MaxContractYears, 0, 1)) {
			errs.Add(path+".term", "the term is longer than %d years; give an end within %d years of the start", MaxContractYears, MaxContractYears)
		}
		checkCount(errs, path+".yearly_minimums_usd", len(c.YearlyMinimumsUSD), MaxContractYears, "give one minimum per contract year")
	}
	checkCount(errs, "policy.regions", len(f.Policy.Regions), MaxRegions, "list fewer regions")
	for k, r := range f.Policy.Regions {
		checkLabel(errs, fmt.Sprintf("policy.regions[%d]", k), r)
	}
	if f.Policy.ShareWindow > time.Duration(MaxContractYears)*365*24*time.Hour {
		errs.Add("policy.share_window", "longer than %d years; give a window such as 30d", MaxContractYears)
	}
}
