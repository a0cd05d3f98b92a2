package spec

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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
				w.Recovery.RecoverOnExitCodes = p.exitCodes(f.value, fp)
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

// exitCodes reads recover_on_exit_codes: one exit code or a list of them,
// each 0 to 255, duplicates dropped.
func (p *parser) exitCodes(v *yaml.Node, path string) []int {
	var out []int
	for i, it := range p.items(v, path, "an exit code or a list of exit codes", true) {
		ip := path
		if resolve(v).Kind == yaml.SequenceNode {
			ip = index(path, i)
		}
		c, ok := p.integer(it, ip, "give an exit code from 0 to 255, e.g. 33")
		if !ok {
			continue
		}
		if c < 0 || c > 255 {
			p.errorf(it, ip, "%d is not an exit code; give 0 to 255", c)
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}
