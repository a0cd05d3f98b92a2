package spec

import (
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

var fleetKeys = []string{"providers", "contracts", "clusters", "teams", "policy"}

// ParseFleet reads a fleet file (schema in the package doc). Pools given
// by instance_type are filled from cat (catalog.Builtin() when cat is nil).
// On failure the error is an Errors listing every problem with its line and
// the returned fleet is nil; warnings are returned either way.
func ParseFleet(data []byte, file string, cat *catalog.Catalog) (*model.Fleet, []Warning, error) {
	return ParseFleetWith(data, file, FleetOptions{Catalog: cat})
}

// ParseFleetWith is ParseFleet against a build's backends (see
// FleetOptions): what a server applies and runs.
func ParseFleetWith(data []byte, file string, o FleetOptions) (*model.Fleet, []Warning, error) {
	cat := o.Catalog
	if cat == nil {
		cat = catalog.Builtin()
	}
	bs := newFleetBackends(o.Backends)
	p := newParser(file)
	docs := p.documents(data)
	if len(docs) > 1 {
		p.errorf(docs[1], "---", "a fleet file holds one document; merge the documents or split them into files")
	}
	f := &model.Fleet{Policy: model.DefaultPolicy()}
	if len(docs) == 0 && len(p.errs) == 0 {
		p.errorf(nil, "clusters", "the file holds no fleet; give at least clusters: with one cluster and its pools")
	}
	if len(docs) > 0 {
		root := docs[0]
		p.see("", root)
		for _, fd := range p.fields(root, "", "a fleet mapping (providers, contracts, clusters, teams, policy)") {
			p.see(fd.key, fd.keyN)
			switch fd.key {
			case "providers":
				for i, n := range p.items(fd.value, "providers", "a list of providers", false) {
					f.Providers = append(f.Providers, p.providerInfo(n, index("providers", i)))
				}
			case "contracts":
				for i, n := range p.items(fd.value, "contracts", "a list of contracts", false) {
					f.Contracts = append(f.Contracts, p.contract(n, index("contracts", i)))
				}
			case "clusters":
				for i, n := range p.items(fd.value, "clusters", "a list of clusters", false) {
					f.Clusters = append(f.Clusters, p.cluster(n, index("clusters", i), cat, bs))
				}
			case "teams":
				for i, n := range p.items(fd.value, "teams", "a list of teams", false) {
					f.Teams = append(f.Teams, p.team(n, index("teams", i)))
				}
			case "policy":
				p.policy(fd.value, &f.Policy)
			default:
				p.unknown(fd, "", fleetKeys)
			}
		}
		p.mergeModel("", f.Validate())
		bs.check(p, f)
	}
	if len(p.errs) > 0 {
		return nil, p.sortedWarnings(), p.sortedErrors()
	}
	return f, p.sortedWarnings(), nil
}

// name reads a name-like field and lower-cases provider names.
func (p *parser) lowerName(n *yaml.Node, path string) string {
	s, _ := p.str(n, path)
	return strings.ToLower(strings.TrimSpace(s))
}

func (p *parser) providerInfo(n *yaml.Node, path string) model.ProviderInfo {
	var pi model.ProviderInfo
	p.see(path, n)
	for _, f := range p.fields(n, path, "a provider mapping (name, egress_per_gb, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "name":
			pi.Name = model.Provider(p.lowerName(f.value, fp))
		case "egress_per_gb":
			pi.EgressPerGB, _ = p.number(f.value, fp, "give USD per GB moved out, e.g. 0.09")
		case "spot_preemptions_per_hour":
			pi.SpotPreemptionPerHour, _ = p.number(f.value, fp, "give expected preemptions per node-hour, e.g. 0.05")
		default:
			p.unknown(f, path, []string{"name", "egress_per_gb", "spot_preemptions_per_hour"})
		}
	}
	return pi
}

var contractKeys = []string{"name", "provider", "kind", "spend_usd", "start", "end", "years", "discount", "take_or_pay", "yearly_minimums_usd", "gpu", "gpus", "price_per_gpu_hour"}

func (p *parser) contract(n *yaml.Node, path string) model.Contract {
	var c model.Contract
	p.see(path, n)
	var years float64
	var yearsN, endN *yaml.Node
	for _, f := range p.fields(n, path, "a contract mapping (name, provider, kind, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "name":
			c.Name, _ = p.str(f.value, fp)
		case "provider":
			c.Provider = model.Provider(p.lowerName(f.value, fp))
		case "kind":
			c.Kind = model.ContractKind(p.lowerName(f.value, fp))
		case "spend_usd":
			c.SpendUSD, _ = p.number(f.value, fp, "give the total committed spend in USD, e.g. 38e9")
		case "start":
			p.see(join(path, "term"), f.keyN)
			c.Start = p.date(f.value, fp)
			if c.Start.IsZero() {
				p.block(join(path, "term"))
			}
		case "end":
			endN = f.keyN
			c.End = p.date(f.value, fp)
			if c.End.IsZero() {
				p.block(join(path, "term"))
			}
		case "years":
			yearsN = f.keyN
			years, _ = p.number(f.value, fp, "give the term in years, e.g. 7")
			if years <= 0 || years > 100 {
				p.errorf(f.value, fp, "%v is out of range; give the term in years, from above 0 to 100", years)
				years = 0
			}
		case "discount":
			c.Discount, _ = p.number(f.value, fp, "give the fraction off list price, e.g. 0.35")
		case "take_or_pay":
			c.TakeOrPay, _ = p.boolean(f.value, fp)
		case "yearly_minimums_usd":
			for i, it := range p.items(f.value, fp, "a list of USD amounts, one per contract year", false) {
				v, _ := p.number(it, index(fp, i), "give the minimum spend of that year in USD, e.g. 2e9")
				c.YearlyMinimumsUSD = append(c.YearlyMinimumsUSD, v)
			}
		case "gpu":
			c.GPU = p.gpu(f.value, fp)
		case "gpus":
			c.GPUs, _ = p.integer(f.value, fp, "give the number of GPUs reserved, e.g. 4096")
		case "price_per_gpu_hour":
			c.PricePerGPUHour, _ = p.number(f.value, fp, "give USD per GPU-hour, e.g. 2.1")
		default:
			p.unknown(f, path, contractKeys)
		}
	}
	if !c.Start.IsZero() {
		switch {
		case yearsN != nil && endN != nil:
			p.errorf(endN, join(path, "end"), "give years or end, not both")
		case yearsN != nil && years > 0:
			c.End = addYears(c.Start, years)
		case endN == nil && len(c.YearlyMinimumsUSD) > 0:
			c.End = c.Start.AddDate(len(c.YearlyMinimumsUSD), 0, 0)
		}
	}
	if endN == nil && yearsN == nil && len(c.YearlyMinimumsUSD) == 0 {
		p.errorf(resolve(n), join(path, "end"), "the contract has no term; give years: (e.g. 7) or end: (e.g. 2033-01-01)")
		p.block(join(path, "term"))
	}
	return c
}

func addYears(t time.Time, years float64) time.Time {
	whole := math.Floor(years)
	t = t.AddDate(int(whole), 0, 0)
	return t.Add(time.Duration((years - whole) * 365.25 * 24 * float64(time.Hour)))
}

func (p *parser) date(n *yaml.Node, path string) time.Time {
	s, ok := p.str(n, path)
	if !ok || s == "" {
		if ok {
			p.errorf(n, path, "missing; write a date such as 2026-01-01 or 2026-01-01T00:00:00Z")
		}
		return time.Time{}
	}
	t, err := parseDate(s)
	if err != nil {
		p.errorf(n, path, "%q is not a date; write 2026-01-01 or 2026-01-01T00:00:00Z", s)
	}
	return t
}

// gpu reads a GPU model name through the catalog's aliases.
func (p *parser) gpu(n *yaml.Node, path string) model.GPUModel {
	s, ok := p.str(n, path)
	if !ok {
		return ""
	}
	return p.gpuName(n, path, s)
}

func (p *parser) gpuName(n *yaml.Node, path, s string) model.GPUModel {
	if strings.TrimSpace(s) == "" {
		p.errorf(n, path, "missing; name a GPU model such as H100")
		return ""
	}
	g, err := catalog.ParseGPU(s)
	if err != nil {
		p.errorf(n, path, "%v", err)
		return ""
	}
	return g
}

var clusterKeys = []string{"name", "provider", "region", "zone", "backend", "endpoint", "slurm", "kubernetes", "queue_ahead", "pools"}

func (p *parser) cluster(n *yaml.Node, path string, cat *catalog.Catalog, bs *fleetBackends) model.Cluster {
	var c model.Cluster
	p.see(path, n)
	var pools []*yaml.Node
	var blocks []field // driver blocks (FleetOptions.Backends)

	backendGiven := false
	for _, f := range p.fields(n, path, "a cluster mapping (name, provider, region, backend, pools)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "name":
			c.Name, _ = p.str(f.value, fp)
		case "provider":
			c.Provider = model.Provider(p.lowerName(f.value, fp))
		case "region":
			c.Region, _ = p.str(f.value, fp)
		case "zone":
			c.Zone, _ = p.str(f.value, fp)
		case "backend":
			backendGiven = true
			c.Backend = bs.kind(p, f.value, fp)
		case "endpoint":
			c.Endpoint, _ = p.str(f.value, fp)
		case "slurm":
			c.Slurm = p.slurmTarget(f.value, fp)
		case "kubernetes", "k8s":
			c.Kubernetes = p.kubernetesTarget(f.value, fp)
		case "queue_ahead":
			c.QueueAhead, _ = p.integer(f.value, fp, "give how many nodes' worth of work each pool may queue in the engine beyond its capacity, e.g. 4")
		case "pools":
			pools = p.items(f.value, fp, "a list of pools", false)
		default:
			if bs.block(f.key) {
				blocks = append(blocks, f)
				continue
			}
			p.unknown(f, path, bs.clusterKeys())
		}
	}
	if !backendGiven {
		p.errorf(resolve(n), join(path, "backend"), "missing; say how work reaches the cluster: %s", bs.names())
	}
	c.Target = bs.target(p, path, c.Backend, blocks)
	for i, pn := range pools {
		c.Pools = append(c.Pools, p.pool(pn, index(join(path, "pools"), i), c, cat))
	}
	return c
}

var poolKeys = []string{"name", "gpu", "gpus_per_node", "nodes", "max_nodes", "price_class", "price_per_gpu_hour", "instance_type", "contract", "cpus_per_node", "memory_gib_per_node"}

func (p *parser) pool(n *yaml.Node, path string, c model.Cluster, cat *catalog.Catalog) model.Pool {
	var pl model.Pool
	p.see(path, n)
	var gpuN, countN, priceN, itN *yaml.Node
	classGiven := false
	for _, f := range p.fields(n, path, "a pool mapping (name, gpu, gpus_per_node, nodes, price_class, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "name":
			pl.Name, _ = p.str(f.value, fp)
		case "gpu":
			gpuN = f.value
			pl.GPU = p.gpu(f.value, fp)
		case "gpus_per_node":
			countN = f.value
			pl.GPUsPerNode, _ = p.integer(f.value, fp, "give the GPUs in each node, e.g. 8")
		case "nodes":
			pl.Nodes, _ = p.integer(f.value, fp, "give the number of nodes, e.g. 64")
		case "max_nodes":
			pl.MaxNodes, _ = p.integer(f.value, fp, "give the most nodes the pool may grow to, e.g. 128")
		case "price_class":
			classGiven = true
			pl.PriceClass = model.PriceClass(p.lowerName(f.value, fp))
			if pl.PriceClass == "on-demand" || pl.PriceClass == "on_demand" {
				pl.PriceClass = model.OnDemand
			}
		case "price_per_gpu_hour":
			priceN = f.value
			pl.PricePerGPUHour, _ = p.number(f.value, fp, "give USD per GPU-hour, e.g. 3.9")
		case "instance_type":
			itN = f.value
			pl.InstanceType, _ = p.str(f.value, fp)
		case "contract":
			pl.Contract, _ = p.str(f.value, fp)
		case "cpus_per_node":
			pl.CPUsPerNode, _ = p.number(f.value, fp, "give the vCPUs of each node, e.g. 192")
		case "memory_gib_per_node":
			pl.MemoryGiBPerNode, _ = p.number(f.value, fp, "give the memory of each node in GiB, e.g. 2048")
		default:
			p.unknown(f, path, poolKeys)
		}
	}
	if !classGiven {
		p.errorf(resolve(n), join(path, "price_class"), "missing; say how the pool is paid for: committed, reserved, ondemand or spot")
	}
	if pl.InstanceType != "" {
		p.fillFromCatalog(&pl, path, c, cat, itN, gpuN, countN, priceN)
	}
	return pl
}

// fillFromCatalog completes a pool given by instance type. Explicit fields
// win over the catalog, except that a GPU model or count contradicting the
// instance type is an error.
func (p *parser) fillFromCatalog(pl *model.Pool, path string, c model.Cluster, cat *catalog.Catalog, itN, gpuN, countN, priceN *yaml.Node) {
	fp := join(path, "instance_type")
	o, ok := cat.Lookup(c.Provider, pl.InstanceType, c.Region)
	if !ok {
		p.errorf(itN, fp, "%s", unknownInstanceMsg(cat, c, pl.InstanceType))
		p.block(path)
		return
	}
	if o.GPU == "" || o.GPUCount < 1 {
		p.errorf(itN, fp, "instance type %q has no GPU; give a GPU instance type such as p5.48xlarge", pl.InstanceType)
		p.block(path)
		return
	}
	switch {
	case gpuN == nil:
		pl.GPU = o.GPU
	case pl.GPU != "" && pl.GPU != o.GPU:
		p.errorf(gpuN, join(path, "gpu"), "%s but instance type %s has %s; leave gpu out or fix it", pl.GPU, pl.InstanceType, o.GPU)
	}
	switch {
	case countN == nil:
		pl.GPUsPerNode = o.GPUCount
	case pl.GPUsPerNode != o.GPUCount:
		p.errorf(countN, join(path, "gpus_per_node"), "%d but instance type %s has %d GPUs; leave gpus_per_node out or fix it", pl.GPUsPerNode, pl.InstanceType, o.GPUCount)
	}
	if pl.CPUsPerNode == 0 {
		pl.CPUsPerNode = o.VCPUs
	}
	if pl.MemoryGiBPerNode == 0 {
		pl.MemoryGiBPerNode = o.MemoryGiB
	}
	if priceN == nil {
		price := o.OnDemand
		if pl.PriceClass == model.Spot {
			price = o.Spot
			if price <= 0 {
				p.errorf(itN, fp, "the catalog has no spot price for %s in %s; give price_per_gpu_hour", pl.InstanceType, c.Region)
			}
		}
		pl.PricePerGPUHour = price / float64(o.GPUCount)
	}
}

var teamKeys = []string{"name", "weight", "cohort", "quota", "monthly_budget_usd", "regions", "max_priority"}

func (p *parser) team(n *yaml.Node, path string) model.Team {
	t := model.Team{Weight: 1}
	p.see(path, n)
	for _, f := range p.fields(n, path, "a team mapping (name, weight, quota, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "name":
			t.Name, _ = p.str(f.value, fp)
		case "weight":
			t.Weight, _ = p.number(f.value, fp, "give a fair-share weight above 0, e.g. 2")
		case "cohort":
			t.Cohort, _ = p.str(f.value, fp)
		case "monthly_budget_usd":
			t.MonthlyBudgetUSD, _ = p.number(f.value, fp, "give USD per month, e.g. 5e6")
		case "regions":
			t.Regions = p.stringList(f.value, fp)
		case "max_priority":
			if v, ok := p.integer(f.value, fp, "give the highest priority the team's members may use, e.g. 100"); ok {
				t.MaxPriority = &v
			}
		case "quota":
			t.Quota = map[model.GPUModel]int{}
			for _, q := range p.fields(f.value, fp, "a mapping of GPU model: count") {
				qp := join(fp, q.key)
				g := p.gpuName(q.keyN, qp, q.key)
				if g == "" {
					continue
				}
				p.see(join(fp, string(g)), q.keyN)
				v, ok := p.integer(q.value, qp, "give a GPU count, e.g. H100: 256")
				if !ok {
					continue
				}
				if _, dup := t.Quota[g]; dup {
					p.errorf(q.keyN, qp, "%s is given twice (as two spellings); keep one", g)
				}
				t.Quota[g] = v
			}
		default:
			p.unknown(f, path, teamKeys)
		}
	}
	return t
}

var policyKeys = []string{"max_provider_share", "share_window", "share_floor_gpu_hours", "cap_fallback", "spot_allowed", "regions", "max_price_per_gpu_hour", "preemption", "fair_share", "max_priority"}

func (p *parser) policy(n *yaml.Node, pol *model.Policy) {
	const path = "policy"
	for _, f := range p.fields(n, path, "a policy mapping (max_provider_share, share_window, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "max_provider_share":
			pol.MaxProviderShare, _ = p.number(f.value, fp, "give a fraction, e.g. 0.6 for 60%")
		case "share_window":
			pol.ShareWindow = p.duration(f.value, fp, "30d")
		case "share_floor_gpu_hours":
			pol.ShareFloorGPUHours, _ = p.number(f.value, fp, "give GPU-hours, e.g. 100000")
		case "cap_fallback":
			pol.CapFallback, _ = p.boolean(f.value, fp)
		case "spot_allowed":
			pol.SpotAllowed, _ = p.boolean(f.value, fp)
		case "preemption":
			pol.Preemption, _ = p.boolean(f.value, fp)
		case "fair_share":
			pol.FairShare, _ = p.boolean(f.value, fp)
		case "max_priority":
			if v, ok := p.integer(f.value, fp, "give the highest priority members may use, e.g. 100"); ok {
				pol.MaxPriority = &v
			}
		case "regions":
			pol.Regions = p.stringList(f.value, fp)
		case "max_price_per_gpu_hour":
			pol.MaxPricePerGPUHour = map[model.GPUModel]float64{}
			for _, q := range p.fields(f.value, fp, `a mapping of GPU model (or "*"): USD per GPU-hour`) {
				qp := join(fp, q.key)
				g := model.GPUModel("*")
				if q.key != "*" {
					if g = p.gpuName(q.keyN, qp, q.key); g == "" {
						continue
					}
				}
				p.see(join(fp, string(g)), q.keyN)
				v, ok := p.number(q.value, qp, "give USD per GPU-hour, e.g. H100: 6.0")
				if ok {
					pol.MaxPricePerGPUHour[g] = v
				}
			}
		default:
			p.unknown(f, path, policyKeys)
		}
	}
}

// unknownInstanceMsg words a failed catalog lookup, suggesting the closest
// instance type the provider sells (in the cluster's region when it has
// any there).
func unknownInstanceMsg(cat *catalog.Catalog, c model.Cluster, it string) string {
	var inRegion, anywhere []string
	seen := map[string]bool{}
	for _, o := range cat.Offers {
		if o.Provider != c.Provider || seen[o.InstanceType+"/"+o.Region] {
			continue
		}
		seen[o.InstanceType+"/"+o.Region] = true
		anywhere = append(anywhere, o.InstanceType)
		if o.Region == c.Region {
			inRegion = append(inRegion, o.InstanceType)
		}
	}
	if len(anywhere) == 0 {
		return fmt.Sprintf("the catalog has no instance types for provider %q; give gpu, gpus_per_node and price_per_gpu_hour instead of instance_type", c.Provider)
	}
	if len(inRegion) == 0 {
		if s := suggest(it, anywhere); s != "" && s != it {
			return fmt.Sprintf("unknown instance type %q for %s in %s; did you mean %q? (or give gpu, gpus_per_node and price_per_gpu_hour)", it, c.Provider, c.Region, s)
		}
		return fmt.Sprintf("%s has no %s instance types in the catalog for region %q; check the region, or give gpu, gpus_per_node and price_per_gpu_hour", c.Provider, it, c.Region)
	}
	if s := suggest(it, inRegion); s != "" {
		return fmt.Sprintf("unknown instance type %q for %s in %s; did you mean %q?", it, c.Provider, c.Region, s)
	}
	for _, a := range anywhere {
		if strings.EqualFold(a, it) {
			return fmt.Sprintf("instance type %q is not sold in %s region %s per the catalog; pick another region or give gpu, gpus_per_node and price_per_gpu_hour", it, c.Provider, c.Region)
		}
	}
	return fmt.Sprintf("unknown instance type %q for %s in %s; check the name, or give gpu, gpus_per_node and price_per_gpu_hour", it, c.Provider, c.Region)
}
