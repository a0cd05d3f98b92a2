package spec

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// Task is what one task file describes: one workload, or several for a
// SkyPilot pipeline (a multi-document file).
type Task struct {
	// Name is the pipeline's name when the file starts with a document that
	// holds only `name:`; empty otherwise.
	Name      string
	Workloads []*model.Workload
	// Warnings lists fields accepted but not acted on, in file order.
	Warnings []Warning
}

// ParseTask reads a SkyPilot-style task file (see the package doc for the
// subset understood). file names the input in messages only.
//
// On failure the error is an Errors listing every problem found with its
// line, and the returned Task holds only the Warnings (no Workloads).
func ParseTask(data []byte, file string) (*Task, error) {
	p := newParser(file)
	docs := p.documents(data)
	task := &Task{}
	if len(docs) == 0 && len(p.errs) == 0 {
		p.errorf(nil, "resources.accelerators", "the file holds no task; give at least resources: {accelerators: H100:1} and run:")
	}
	if len(docs) > 1 && isPipelineHeader(docs[0]) {
		for _, f := range p.fields(docs[0], "", "a mapping") {
			switch f.key {
			case "name":
				task.Name, _ = p.str(f.value, "name")
			default:
				p.warnf(f.keyN, f.key, "job group settings are not supported yet; the tasks are placed one by one")
			}
		}
		docs = docs[1:]
	}
	for _, doc := range docs {
		p.lines, p.blocked = map[string]int{}, map[string]bool{}
		if w := p.workload(doc); w != nil {
			task.Workloads = append(task.Workloads, w)
		}
	}
	task.Warnings = p.sortedWarnings()
	if len(p.errs) > 0 {
		// Warnings often explain an error (a misspelt accelerators key
		// leaves the task with no GPU), so they are kept.
		return &Task{Warnings: task.Warnings}, p.sortedErrors()
	}
	return task, nil
}

// isPipelineHeader reports whether a document is a pipeline's (or job
// group's) leading header: only name, execution and primary_tasks.
func isPipelineHeader(n *yaml.Node) bool {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "name" && k != "execution" && k != "primary_tasks" {
			return false
		}
	}
	return true
}

var taskKeys = []string{
	"name", "num_nodes", "resources", "envs", "secrets", "setup", "run",
	"workdir", "file_mounts", "job_recovery", "service", "x-gpubroker",
	// accepted, not acted on:
	"config", "volumes", "experimental", "event_callback", "inputs", "outputs", "pool", "storage_mounts",
}

// workload parses one task document.
func (p *parser) workload(n *yaml.Node) *model.Workload {
	n = resolve(n)
	p.see("", n)
	w := &model.Workload{
		Kind:     model.Job,
		NumNodes: 1,
		Recovery: model.Recovery{Strategy: "failover"},
	}
	errsBefore := len(p.errs)
	p.allowSpot = false
	var res *yaml.Node
	resLine := n
	var servicePort int
	for _, f := range p.fields(n, "", "a task (a mapping with resources:, run:, ...)") {
		p.see(f.key, f.keyN)
		switch f.key {
		case "name":
			w.Name, _ = p.str(f.value, "name")
		case "num_nodes":
			if v, ok := p.integer(f.value, "num_nodes", "give the number of nodes, e.g. num_nodes: 2"); ok {
				w.NumNodes = v
			}
		case "resources":
			res, resLine = f.value, f.keyN
		case "envs":
			p.envs(f.value, "envs", w, false)
		case "secrets":
			p.envs(f.value, "secrets", w, true)
		case "setup":
			w.Setup = p.script(f.value, "setup")
		case "run":
			w.Run = p.script(f.value, "run")
		case "workdir":
			w.Workdir = p.workdir(f.value)
		case "file_mounts":
			p.fileMounts(f.value, w)
		case "job_recovery":
			p.recovery(f.value, "job_recovery", w)
		case "service":
			w.Kind = model.Service
			w.Service, servicePort = p.service(f.value)
		case "x-gpubroker":
			p.extensions(f.value, w)
		case "config", "volumes", "experimental", "event_callback", "inputs", "outputs", "pool", "storage_mounts":
			p.warnf(f.keyN, f.key, "not supported by gpubroker yet; ignored")
		default:
			p.unknown(f, "", taskKeys)
		}
	}
	opts, order, ports := p.resources(res, resLine, w)
	for i := range opts {
		// allow_spot lets the broker choose; use_spot: true still means
		// spot only.
		opts[i].AllowSpot = p.allowSpot && !opts[i].UseSpot
	}
	w.Options, w.Order = opts, order
	if w.Service != nil && w.Service.Port == 0 {
		switch {
		case servicePort != 0:
			w.Service.Port = servicePort
		case len(ports) > 0:
			w.Service.Port = ports[0]
		}
	}
	if w.Service == nil && len(ports) > 0 {
		p.warns = append(p.warns, Warning{File: p.file, Line: p.lineOf("resources.ports"), Path: "resources.ports",
			Msg: "opening ports is not supported for jobs yet; ignored"})
	}
	if len(p.errs) == errsBefore || len(w.Options) > 0 {
		p.mergeModel("", w.Validate())
	}
	return w
}

// script reads setup/run: a string (usually a block scalar).
func (p *parser) script(n *yaml.Node, path string) string {
	n = resolve(n)
	if n != nil && n.Kind == yaml.SequenceNode {
		// Some files give commands as a list; run them in order.
		var lines []string
		for i, c := range p.items(n, path, "commands", false) {
			if s, ok := p.str(c, index(path, i)); ok {
				lines = append(lines, s)
			}
		}
		return strings.Join(lines, "\n")
	}
	s, _ := p.str(n, path)
	return s
}

func (p *parser) envs(n *yaml.Node, path string, w *model.Workload, secret bool) {
	fields := p.fields(n, path, "a mapping of NAME: value")
	var unset []string
	var firstUnset *yaml.Node
	for _, f := range fields {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		if f.key == "" {
			p.errorf(f.keyN, fp, "an environment variable needs a name")
			continue
		}
		v := resolve(f.value)
		if isNull(v) {
			unset = append(unset, f.key)
			if firstUnset == nil {
				firstUnset = f.keyN
			}
		} else if v.Kind != yaml.ScalarNode {
			p.errorf(v, fp, "expected a single value (string, number or bool), got %s; quote it to pass it as text", describe(v))
			continue
		}
		if w.Envs == nil {
			w.Envs = map[string]string{}
		}
		if _, dup := w.Envs[f.key]; dup {
			p.warnf(f.keyN, fp, "also set under envs; the value here wins")
		}
		if isNull(v) {
			w.Envs[f.key] = ""
		} else {
			w.Envs[f.key] = v.Value
		}
	}
	if len(unset) > 0 {
		p.warnf(firstUnset, path, "%s %s no value; give a value at launch, or it runs as an empty string", strings.Join(unset, ", "), plural(len(unset), "has", "have"))
	}
	if secret && len(fields) > 0 {
		p.warnf(resolve(n), path, "secrets are kept as environment variables of the workload and are not redacted yet")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (p *parser) workdir(n *yaml.Node) string {
	n = resolve(n)
	if n != nil && n.Kind == yaml.MappingNode {
		url := ""
		for _, f := range p.fields(n, "workdir", "a mapping") {
			p.see(join("workdir", f.key), f.keyN)
			switch f.key {
			case "url":
				url, _ = p.str(f.value, "workdir.url")
			case "ref":
				p.warnf(f.keyN, "workdir.ref", "a git ref is not kept yet; the default branch is used")
			default:
				p.unknown(f, "workdir", []string{"url", "ref"})
			}
		}
		if url == "" {
			p.errorf(n, "workdir.url", "missing; give the git repository URL, or a local path as workdir: ./src")
		}
		return url
	}
	s, _ := p.str(n, "workdir")
	return s
}

func (p *parser) fileMounts(n *yaml.Node, w *model.Workload) {
	for _, f := range p.fields(n, "file_mounts", "a mapping of remote path: source") {
		fp := join("file_mounts", f.key)
		p.see(fp, f.keyN)
		v := resolve(f.value)
		source := ""
		switch {
		case isNull(v):
			p.warnf(f.keyN, fp, "no source given; ignored")
			continue
		case v.Kind == yaml.MappingNode:
			for _, g := range p.fields(v, fp, "a mapping") {
				switch g.key {
				case "source":
					if g.value != nil && resolve(g.value).Kind == yaml.SequenceNode {
						srcs := p.stringList(g.value, join(fp, "source"))
						source = strings.Join(srcs, ",")
						if len(srcs) > 1 {
							p.warnf(g.keyN, join(fp, "source"), "several sources are joined with ','; the backend must split them")
						}
					} else {
						source, _ = p.str(g.value, join(fp, "source"))
					}
				case "mode", "name", "store", "persistent", "config", "_force_delete", "_bucket_sub_path":
					// Storage options: the backend decides how to mount.
				default:
					p.unknown(g, fp, []string{"source", "mode", "name", "store", "persistent", "config"})
				}
			}
			if source == "" {
				p.warnf(f.keyN, fp, "a bucket without source (created by SkyPilot) is not supported yet; ignored")
				continue
			}
		default:
			s, ok := p.str(v, fp)
			if !ok {
				continue
			}
			source = s
		}
		if w.FileMounts == nil {
			w.FileMounts = map[string]string{}
		}
		w.FileMounts[f.key] = source
	}
}

func (p *parser) recovery(n *yaml.Node, path string, w *model.Workload) {
	n = resolve(n)
	setStrategy := func(v *yaml.Node, fp string) {
		s, ok := p.str(v, fp)
		if !ok {
			return
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "", "failover":
			w.Recovery.Strategy = "failover"
		case "eager_next_region":
			w.Recovery.Strategy = "eager_next_region"
		case "none":
			p.warnf(v, fp, "recovery none is not supported: gpubroker always moves a lost or preempted attempt (failover)")
		case "dynamic_node_set":
			p.warnf(v, fp, "DYNAMIC_NODE_SET (elastic jobs) is not supported yet; the job is recovered as a whole (failover)")
		default:
			p.errorf(v, fp, "unknown recovery strategy %q; use FAILOVER or EAGER_NEXT_REGION", s)
		}
	}
	if n != nil && n.Kind == yaml.MappingNode {
		for _, f := range p.fields(n, path, "a mapping") {
			fp := join(path, f.key)
			p.see(fp, f.keyN)
			switch f.key {
			case "strategy":
				setStrategy(f.value, fp)
			case "max_restarts_on_errors":
				if v, ok := p.integer(f.value, fp, "give how many times to retry a job that fails, e.g. 3"); ok {
					w.Recovery.MaxRestartsOnErrors = v
				}
			case "recover_on_exit_codes":
				p.warnf(f.keyN, fp, "not supported yet; every failure counts toward max_restarts_on_errors")
			case "min_nodes":
				p.warnf(f.keyN, fp, "elastic jobs are not supported yet; ignored")
			default:
				p.unknown(f, path, []string{"strategy", "max_restarts_on_errors", "recover_on_exit_codes"})
			}
		}
		return
	}
	setStrategy(n, path)
}

func (p *parser) service(n *yaml.Node) (*model.ServiceSpec, int) {
	s := &model.ServiceSpec{}
	replicasGiven, policyGiven, maxGiven := false, false, false
	port := 0
	for _, f := range p.fields(n, "service", "a mapping (readiness_probe, replicas, ...)") {
		fp := join("service", f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "readiness_probe":
			s.ReadinessPath = p.probe(f.value, fp)
		case "replicas":
			if v, ok := p.integer(f.value, fp, "give the number of replicas, e.g. replicas: 2"); ok {
				s.MinReplicas, s.MaxReplicas, replicasGiven = v, v, true
			}
		case "replica_policy":
			policyGiven = true
			for _, g := range p.fields(f.value, fp, "a mapping (min_replicas, max_replicas, ...)") {
				gp := join(fp, g.key)
				p.see(gp, g.keyN)
				switch g.key {
				case "min_replicas":
					s.MinReplicas, _ = p.integer(g.value, gp, "give the fewest replicas to keep, e.g. 1")
				case "max_replicas":
					s.MaxReplicas, _ = p.integer(g.value, gp, "give the most replicas to scale to, e.g. 4")
					maxGiven = true
				case "target_qps_per_replica", "upscale_delay_seconds", "downscale_delay_seconds",
					"base_ondemand_fallback_replicas", "dynamic_ondemand_fallback", "num_overprovision", "target_num_ongoing_requests_per_replica":
					p.warnf(g.keyN, gp, "autoscaling settings are not supported yet; ignored")
				default:
					p.unknown(g, fp, []string{"min_replicas", "max_replicas", "target_qps_per_replica", "upscale_delay_seconds", "downscale_delay_seconds"})
				}
			}
		case "ports", "port":
			port, _ = p.integer(f.value, fp, "give the port the replicas serve on, e.g. 8080")
		case "load_balancing_policy", "tls", "spot_placer", "pool", "workers":
			p.warnf(f.keyN, fp, "not supported yet; ignored")
		default:
			p.unknown(f, "service", []string{"readiness_probe", "replicas", "replica_policy", "ports", "load_balancing_policy", "tls"})
		}
	}
	if replicasGiven && policyGiven {
		p.errorf(resolve(n), "service.replicas", "give replicas or replica_policy, not both")
	}
	if !replicasGiven && !policyGiven {
		s.MinReplicas, s.MaxReplicas = 1, 1
	}
	if policyGiven && !maxGiven {
		s.MaxReplicas = s.MinReplicas
	}
	return s, port
}

func (p *parser) probe(n *yaml.Node, path string) string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		s, _ := p.str(n, path)
		return s
	}
	probePath := ""
	for _, f := range p.fields(n, path, "a mapping") {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "path":
			probePath, _ = p.str(f.value, fp)
		case "post_data", "initial_delay_seconds", "timeout_seconds", "headers", "period_seconds":
			p.warnf(f.keyN, fp, "not supported yet; the probe is a plain GET of path")
		default:
			p.unknown(f, path, []string{"path", "post_data", "initial_delay_seconds", "timeout_seconds", "headers"})
		}
	}
	return probePath
}

var extensionKeys = []string{"team", "priority", "deadline", "checkpoint_dir", "checkpoint_interval", "data_region", "data_gb", "duration", "allow_spot"}

// extensions reads gpubroker's own fields under x-gpubroker.
func (p *parser) extensions(n *yaml.Node, w *model.Workload) {
	const base = "x-gpubroker"
	for _, f := range p.fields(n, base, "a mapping (team, priority, deadline, ...)") {
		fp := join(base, f.key)
		p.see(fp, f.keyN)
		switch f.key {
		case "team":
			w.Team, _ = p.str(f.value, fp)
		case "priority":
			w.Priority, _ = p.integer(f.value, fp, "give a whole number; higher runs first")
		case "deadline":
			if s, ok := p.str(f.value, fp); ok && s != "" {
				t, err := parseDate(s)
				if err != nil {
					p.errorf(f.value, fp, "%q is not a date; write 2026-03-01 or 2026-03-01T18:00:00Z", s)
				}
				w.Deadline = t
			}
		case "checkpoint_dir":
			w.CheckpointDir, _ = p.str(f.value, fp)
		case "checkpoint_interval":
			w.CheckpointInterval = p.duration(f.value, fp, "30m")
		case "duration":
			w.Duration = p.duration(f.value, fp, "12h")
		case "data_region":
			w.DataRegion, _ = p.str(f.value, fp)
		case "data_gb":
			w.DataGB, _ = p.number(f.value, fp, "give the size of the job's input data in GB, e.g. 500")
		case "allow_spot":
			p.allowSpot, _ = p.boolean(f.value, fp)
		default:
			p.unknown(f, base, extensionKeys)
		}
	}
}

func (p *parser) duration(n *yaml.Node, path, example string) time.Duration {
	s, ok := p.str(n, path)
	if !ok || s == "" {
		return 0
	}
	d, err := parseDuration(s)
	if err != nil {
		p.errorf(n, path, "%q is not a duration (%v); write e.g. %s, 90m, 2h or 1d", s, err, example)
		return 0
	}
	return d
}

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
	var opts []model.Resources
	for _, it := range items {
		if len(it.accels) == 0 {
			if a, ok := p.fromInstanceType(it); ok {
				it.accels = []accel{a}
			}
		}
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
