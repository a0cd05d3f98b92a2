package spec

import (
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// accel is one accelerator choice as written.
type accel struct {
	gpu   model.GPUModel
	count int
	arg   string
}

// resSpec is one resources mapping (the outer one, or an item of any_of /
// ordered) before defaults are applied.
type resSpec struct {
	node   *yaml.Node
	path   string
	r      model.Resources
	set    map[string]bool
	accels []accel
	// accelsOrdered is true when accelerators was written as a list.
	accelsOrdered bool
	accelNode     *yaml.Node
	ports         []int
}

var resourceKeys = []string{
	"infra", "cloud", "region", "zone", "accelerators", "cpus", "memory", "instance_type",
	"use_spot", "disk_size", "max_hourly_cost", "any_of", "ordered", "ports", "job_recovery", "spot_recovery",
	"image_id", "disk_tier", "network_tier", "labels", "accelerator_args", "autostop", "volumes", "_cluster_config_overrides", "priority",
	"load_balancing_policy", "candidates",
}

// resources turns the resources section into the workload's options.
func (p *parser) resources(n, at *yaml.Node, w *model.Workload) ([]model.Resources, model.OptionOrder, []int) {
	outer := p.resourceFields(n, "resources", w, true)
	var items []*resSpec
	order := model.AnyOf
	for _, key := range []string{"any_of", "ordered"} {
		list, ok := outer.lists[key]
		if !ok {
			continue
		}
		if len(items) > 0 {
			p.errorf(outer.listKeys[key], "resources."+key, "give any_of or ordered, not both")
			break
		}
		if key == "ordered" {
			order = model.Ordered
		}
		for i, it := range p.items(list, "resources."+key, "a list of resource mappings", false) {
			path := index("resources."+key, i)
			spec := p.resourceFields(it, path, w, false)
			items = append(items, spec.resSpec)
			outer.accelErr = outer.accelErr || spec.accelErr
		}
		if len(items) == 0 {
			p.errorf(outer.listKeys[key], "resources."+key, "the list is empty; give at least one resources mapping, or leave %s out", key)
		}
	}
	if len(items) == 0 {
		items = []*resSpec{outer.resSpec}
		if outer.accelsOrdered {
			order = model.Ordered
		}
	} else {
		warned := map[*yaml.Node]bool{}
		for _, it := range items {
			inherit(it, outer.resSpec)
			if it.accelsOrdered && order == model.AnyOf && len(it.accels) > 1 && !warned[it.accelNode] {
				warned[it.accelNode] = true
				p.warnf(it.accelNode, "resources.accelerators", "a list inside any_of is taken as a set: every choice is acceptable")
			}
		}
	}
	for _, it := range items {
		if len(it.accels) == 0 {
			if a, ok := p.fromInstanceType(it); ok {
				it.accels = []accel{a}
			}
		}
	}
	// The options are counted before they are made: an any_of list and an
	// accelerator set it inherits multiply (a 1 MB file could ask for
	// billions).
	count := 0
	for _, it := range items {
		count += len(it.accels)
	}
	if count > model.MaxOptions {
		node := at
		if node == nil {
			node = resolve(n)
		}
		p.errorf(node, "resources", "%d resource options (after any_of, ordered and accelerator sets are expanded) are more than %d; list fewer choices", count, model.MaxOptions)
		p.block("resources")
		return nil, order, outer.ports
	}
	var opts []model.Resources
	for _, it := range items {
		for _, a := range it.accels {
			r := it.r
			r.GPU, r.GPUsPerNode, r.AcceleratorArg = a.gpu, a.count, a.arg
			i := len(opts)
			p.see(index("resources", i), it.node)
			if it.accelNode != nil {
				p.see(index("resources", i)+".accelerators", it.accelNode)
			}
			opts = append(opts, r)
		}
	}
	if outer.accelErr {
		p.block("resources")
	}
	if len(opts) == 0 && !outer.accelErr {
		node := at
		if node == nil {
			node = resolve(n)
		}
		p.errorf(node, "resources.accelerators", "no GPU requested; gpubroker places GPU work: add e.g. accelerators: H100:1")
	}
	return opts, order, outer.ports
}

// fromInstanceType fills the accelerator from the catalog when a task
// names an instance type but no accelerators.
func (p *parser) fromInstanceType(s *resSpec) (accel, bool) {
	if s.r.InstanceType == "" || s.r.Provider == "" {
		return accel{}, false
	}
	if p.cat == nil {
		p.cat = catalog.Builtin()
	}
	o, ok := p.cat.Lookup(s.r.Provider, s.r.InstanceType, s.r.Region)
	if !ok || o.GPU == "" || o.GPUCount < 1 {
		return accel{}, false
	}
	return accel{gpu: o.GPU, count: o.GPUCount, arg: s.r.InstanceType}, true
}

// inherit fills the fields an any_of/ordered item leaves unset from the
// outer resources.
func inherit(it, outer *resSpec) {
	if len(it.accels) == 0 {
		it.accels, it.accelsOrdered = outer.accels, outer.accelsOrdered
		if it.accelNode == nil {
			it.accelNode = outer.accelNode
		}
	}
	o := outer.r
	r := &it.r
	if !it.set["provider"] {
		r.Provider = o.Provider
	}
	if !it.set["region"] {
		r.Region = o.Region
	}
	if !it.set["zone"] {
		r.Zone = o.Zone
	}
	if !it.set["use_spot"] {
		r.UseSpot = o.UseSpot
	}
	if !it.set["cpus"] {
		r.CPUs, r.CPUsAtLeast = o.CPUs, o.CPUsAtLeast
	}
	if !it.set["memory"] {
		r.MemoryGiB, r.MemoryAtLeast = o.MemoryGiB, o.MemoryAtLeast
	}
	if !it.set["instance_type"] {
		r.InstanceType = o.InstanceType
	}
	if !it.set["max_hourly_cost"] {
		r.MaxHourlyCost = o.MaxHourlyCost
	}
	if !it.set["disk_size"] {
		r.DiskSizeGiB = o.DiskSizeGiB
	}
}

type outerSpec struct {
	*resSpec
	lists    map[string]*yaml.Node
	listKeys map[string]*yaml.Node
	accelErr bool
}

func (p *parser) resourceFields(n *yaml.Node, path string, w *model.Workload, outer bool) outerSpec {
	s := &resSpec{node: resolve(n), path: path, set: map[string]bool{}}
	out := outerSpec{resSpec: s, lists: map[string]*yaml.Node{}, listKeys: map[string]*yaml.Node{}}
	var infraN, cloudN *yaml.Node
	for _, f := range p.fields(n, path, "a resources mapping (accelerators, infra, ...)") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		v := f.value
		switch f.key {
		case "infra":
			infraN = f.keyN
			p.infra(v, fp, s)
		case "cloud":
			cloudN = f.keyN
			if c, ok := p.str(v, fp); ok && c != "" {
				s.r.Provider = p.provider(v, fp, c)
				s.set["provider"] = true
			}
		case "region":
			s.r.Region, _ = p.str(v, fp)
			s.set["region"] = true
		case "zone":
			s.r.Zone, _ = p.str(v, fp)
			s.set["zone"] = true
		case "accelerators":
			s.accelNode = f.keyN
			if !p.accelerators(v, fp, s) {
				out.accelErr = true
			}
		case "cpus", "memory":
			str, ok := p.str(v, fp)
			if !ok || str == "" {
				continue
			}
			val, atLeast, err := parseAtLeast(str, f.key == "memory")
			if err != nil || val < 0 {
				unit := ""
				if f.key == "memory" {
					unit = " GiB"
				}
				p.errorf(v, fp, "%q is not a %s request; write a number%s, or add + for at least (e.g. %s: 8+)", str, f.key, unit, f.key)
				continue
			}
			if f.key == "cpus" {
				s.r.CPUs, s.r.CPUsAtLeast = val, atLeast
			} else {
				s.r.MemoryGiB, s.r.MemoryAtLeast = val, atLeast
			}
			s.set[f.key] = true
		case "instance_type":
			s.r.InstanceType, _ = p.str(v, fp)
			s.set["instance_type"] = true
		case "use_spot":
			s.r.UseSpot, _ = p.boolean(v, fp)
			s.set["use_spot"] = true
		case "disk_size":
			str, ok := p.str(v, fp)
			if !ok || str == "" {
				continue
			}
			num, scale := cutSizeUnit(str)
			d, err := strconv.ParseFloat(num, 64)
			if err != nil || d < 0 || d*scale > 1<<30 {
				p.errorf(v, fp, "%q is not a disk size; give GiB as a whole number, e.g. disk_size: 256", str)
				continue
			}
			s.r.DiskSizeGiB = int(d * scale)
			s.set["disk_size"] = true
		case "max_hourly_cost":
			s.r.MaxHourlyCost, _ = p.number(v, fp, "give the most USD per hour the task may cost, e.g. 40")
			s.set["max_hourly_cost"] = true
		case "candidates":
			// SkyPilot's early name for any_of.
			if !outer {
				p.errorf(f.keyN, fp, "candidates cannot be nested; list the alternatives in the outer resources")
				continue
			}
			p.warnf(f.keyN, fp, "candidates is the old name of any_of; read as any_of")
			out.lists["any_of"], out.listKeys["any_of"] = v, f.keyN
		case "any_of", "ordered":
			if !outer {
				p.errorf(f.keyN, fp, "%s cannot be nested; list the alternatives in the outer resources", f.key)
				continue
			}
			out.lists[f.key], out.listKeys[f.key] = v, f.keyN
		case "ports":
			s.ports = p.ports(v, fp)
		case "job_recovery", "spot_recovery":
			if !outer {
				p.warnf(f.keyN, fp, "job recovery is set per task; give it in the outer resources")
				continue
			}
			if f.key == "spot_recovery" {
				p.warnf(f.keyN, fp, "spot_recovery is the old name of job_recovery; read as job_recovery")
			}
			p.recovery(v, fp, w)
		case "image_id", "disk_tier", "network_tier", "labels", "accelerator_args", "autostop", "volumes", "_cluster_config_overrides", "priority", "load_balancing_policy":
			p.warnf(f.keyN, fp, "not supported by gpubroker yet; ignored")
		default:
			p.unknown(f, path, resourceKeys)
		}
	}
	if infraN != nil && cloudN != nil {
		p.errorf(cloudN, join(path, "cloud"), "give infra or cloud/region/zone, not both (e.g. infra: aws/us-east-1)")
	}
	return out
}

// infra reads SkyPilot's infra: "aws", "aws/us-east-1",
// "aws/us-east-1/us-east-1a", "k8s", "k8s/context", "*/us-east-1".
func (p *parser) infra(v *yaml.Node, path string, s *resSpec) {
	str, ok := p.str(v, path)
	if !ok || str == "" {
		return
	}
	parts := strings.Split(strings.TrimSpace(str), "/")
	cloud := strings.ToLower(parts[0])
	if isClusterManager(cloud) {
		s.r.Provider = p.provider(v, path, cloud)
		s.set["provider"] = true
		if len(parts) > 1 {
			p.warnf(v, path, "cluster or context %q is not used for placement yet; any %s cluster in the fleet may run this", strings.Join(parts[1:], "/"), cloud)
		}
		return
	}
	if len(parts) > 3 {
		p.errorf(v, path, "%q has too many parts; write cloud/region/zone, e.g. aws/us-east-1/us-east-1a", str)
		return
	}
	wild := func(x string) string {
		if x == "*" {
			return ""
		}
		return x
	}
	if c := wild(cloud); c != "" {
		s.r.Provider = p.provider(v, path, c)
	}
	s.set["provider"] = true
	if len(parts) > 1 {
		s.r.Region = wild(parts[1])
		s.set["region"] = true
	}
	if len(parts) > 2 {
		s.r.Zone = wild(parts[2])
		s.set["zone"] = true
	}
}

func isClusterManager(s string) bool {
	switch s {
	case "k8s", "kubernetes", "slurm", "ssh":
		return true
	}
	return false
}

// provider turns a SkyPilot cloud name into a provider. Cluster managers
// (k8s, kubernetes, slurm, ssh) are not sellers of capacity: they leave
// the provider open (any cluster of the fleet qualifies) with a warning.
func (p *parser) provider(v *yaml.Node, path, s string) model.Provider {
	s = strings.ToLower(strings.TrimSpace(s))
	if isClusterManager(s) {
		p.warnf(v, path, "%q names a cluster manager, not a provider: the provider is left open and the fleet's clusters decide", s)
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			p.errorf(v, path, "%q is not a provider name; use a cloud such as aws, gcp, azure, lambda or k8s", s)
			return ""
		}
	}
	return model.Provider(s)
}

// accelerators reads the three SkyPilot forms: "H100:8", a list (ordered
// preference) and a set/mapping (any of them). It reports whether it
// parsed without error.
func (p *parser) accelerators(v *yaml.Node, path string, s *resSpec) bool {
	v = resolve(v)
	ok := true
	// In a list or set, an accelerator gpubroker cannot place (a TPU, say)
	// is dropped with a warning as long as a GPU choice remains.
	type dropped struct {
		n   *yaml.Node
		err error
	}
	var unsupported []dropped
	add := func(n *yaml.Node, arg string, several bool) {
		g, c, err := catalog.ParseAccelerator(strings.TrimSpace(arg))
		var unsup *catalog.UnsupportedError
		if several && errors.As(err, &unsup) {
			unsupported = append(unsupported, dropped{n, err})
			return
		}
		if err != nil {
			p.errorf(n, path, "%v", err)
			ok = false
			return
		}
		s.accels = append(s.accels, accel{gpu: g, count: c, arg: arg})
	}
	switch {
	case isNull(v):
		return true
	case v.Kind == yaml.ScalarNode:
		add(v, v.Value, false)
	case v.Kind == yaml.SequenceNode:
		s.accelsOrdered = true
		items := p.items(v, path, "a list of accelerators", false)
		for i, it := range items {
			if it.Kind == yaml.MappingNode {
				for _, f := range p.fields(it, index(path, i), "a mapping") {
					add(f.keyN, accelArg(f), len(items) > 1)
				}
				continue
			}
			if a, okS := p.str(it, index(path, i)); okS {
				add(it, a, len(items) > 1)
			} else {
				ok = false
			}
		}
	case v.Kind == yaml.MappingNode:
		fields := p.fields(v, path, "a mapping")
		for _, f := range fields {
			add(f.keyN, accelArg(f), len(fields) > 1)
		}
	default:
		p.errorf(v, path, "expected an accelerator such as H100:8, a list or a set of them, got %s", describe(v))
		return false
	}
	for _, d := range unsupported {
		if len(s.accels) > 0 {
			p.warnf(d.n, path, "%v; this choice is dropped", d.err)
		} else {
			p.errorf(d.n, path, "%v", d.err)
			ok = false
		}
	}
	if len(s.accels) == 0 && ok {
		p.errorf(v, path, "empty; give a GPU such as H100:8")
		ok = false
	}
	s.set["accelerators"] = true
	return ok
}

// accelArg writes a mapping entry back in "name:count" form: {H100: 8} and
// {H100:8} (a key with no value) both mean H100:8.
func accelArg(f field) string {
	v := resolve(f.value)
	if isNull(v) || v.Kind != yaml.ScalarNode {
		return f.key
	}
	return f.key + ":" + v.Value
}

// ports reads 8080, "8080", "10020-10040" or a list of those, keeping the
// first port of each entry.
func (p *parser) ports(v *yaml.Node, path string) []int {
	var out []int
	for i, it := range p.items(v, path, "a port or a list of ports", true) {
		ip := path
		if resolve(v).Kind == yaml.SequenceNode {
			ip = index(path, i)
		}
		s, ok := p.str(it, ip)
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(s, "-")
		n, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil || n < 1 || n > 65535 {
			p.errorf(it, ip, "%q is not a port; give a number from 1 to 65535 or a range such as 10020-10040", s)
			continue
		}
		out = append(out, n)
	}
	return out
}
