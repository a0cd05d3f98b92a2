package spec

import (
	"encoding/json"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// Backend is what the fleet parser knows of one backend a build drives:
// the backend: values that name it and how to check its clusters. These
// are fields of the driver's backend.Driver, copied by whoever wires the
// build; spec never imports a driver.
type Backend struct {
	// Name is the backend: value (lower case); a cluster's driver block is
	// the mapping under the same key.
	Name string
	// Aliases are other spellings of Name.
	Aliases []string
	// Check validates what only the driver reads of a cluster of this
	// backend (its block, model.Cluster.Target); nil or a
	// model.FieldErrors with paths relative to the cluster.
	Check func(cl model.Cluster, f *model.Fleet) error
}

// FleetOptions are what ParseFleetWith reads a fleet file against.
type FleetOptions struct {
	// Catalog fills pools given by instance_type; nil: catalog.Builtin().
	Catalog *catalog.Catalog
	// Backends are the backends a cluster may name. A backend: value that
	// is none of them is an error naming the field and the backends there
	// are; a cluster's block under its backend's name (other than the
	// typed slurm: and kubernetes: blocks) is kept in
	// model.Cluster.Target, and the backend's Check runs on each of its
	// clusters.
	//
	// Nil: any of model.BackendKinds, with no driver blocks: the
	// vocabulary of a fleet that runs nowhere (plan and simulate, whose
	// cloud clusters no driver runs, and the fleets a server stored
	// before it checked backends).
	Backends []Backend
}

// fleetBackends answers the parser's questions about backends; a nil
// *fleetBackends is the vocabulary without drivers.
type fleetBackends struct {
	list []Backend
}

func newFleetBackends(list []Backend) *fleetBackends {
	if list == nil {
		return nil
	}
	return &fleetBackends{list: list}
}

// find returns the backend s names (its name or an alias), or nil.
func (bs *fleetBackends) find(s string) *Backend {
	for i := range bs.list {
		b := &bs.list[i]
		if s == b.Name || slices.Contains(b.Aliases, s) {
			return b
		}
	}
	return nil
}

// kind reads a cluster's backend: value. With backends, one that names
// none of them is an error here, and model.Cluster.Validate's check of
// the vocabulary's kinds is skipped (a driver may name a kind the
// vocabulary does not list).
func (bs *fleetBackends) kind(p *parser, n *yaml.Node, path string) model.BackendKind {
	s := p.lowerName(n, path)
	if bs == nil {
		if s == "k8s" {
			s = string(model.BackendKubernetes)
		}
		return model.BackendKind(s)
	}
	p.block(path)
	b := bs.find(s)
	if b == nil {
		if s == "" {
			p.errorf(n, path, "missing; say how work reaches the cluster: %s", bs.names())
		} else {
			p.errorf(n, path, "unknown backend %q; this build drives %s", s, bs.names())
		}
		return model.BackendKind(s)
	}
	return model.BackendKind(b.Name)
}

// names lists the backends a cluster may name, for messages.
func (bs *fleetBackends) names() string {
	if bs == nil {
		return "local, slurm, kubernetes or cloud"
	}
	names := make([]string, len(bs.list))
	for i, b := range bs.list {
		names[i] = b.Name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// block reports whether a cluster key is a driver block.
func (bs *fleetBackends) block(key string) bool {
	return bs != nil && bs.find(key) != nil
}

// clusterKeys are the keys a cluster mapping may hold, for suggestions.
func (bs *fleetBackends) clusterKeys() []string {
	if bs == nil {
		return clusterKeys
	}
	keys := slices.Clone(clusterKeys)
	for _, b := range bs.list {
		if !slices.Contains(keys, b.Name) {
			keys = append(keys, b.Name)
		}
	}
	return keys
}

// target returns the driver block of a cluster whose backend is kind, as
// JSON would hold it; a block of another backend is an error, as a
// slurm: block on a kubernetes cluster is.
func (bs *fleetBackends) target(p *parser, path string, kind model.BackendKind, blocks []field) map[string]any {
	var out map[string]any
	for _, f := range blocks {
		fp := join(path, f.key)
		p.see(fp, f.keyN)
		p.seeAll(fp, f.value, 0)
		b := bs.find(f.key)
		if kind == "" {
			continue // the missing backend: is reported
		}
		if model.BackendKind(b.Name) != kind {
			p.errorf(f.keyN, fp, "a %s block on a %s cluster; remove it or set backend: %s", f.key, kind, b.Name)
			continue
		}
		v := resolve(f.value)
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			p.errorf(v, fp, "expected a %s mapping, got %s", b.Name, describe(v))
			continue
		}
		var raw any
		if err := v.Decode(&raw); err != nil {
			p.errorf(v, fp, "%v", err)
			continue
		}
		data, err := json.Marshal(raw)
		if err == nil {
			err = json.Unmarshal(data, &out)
		}
		if err != nil {
			p.errorf(v, fp, "expected a mapping of plain keys and values: %v", err)
			out = nil
		}
	}
	return out
}

// seeAll records the line of every field written under n, so that a
// driver's Check errors point at them. It does not follow aliases (an
// error under one points at the alias), so a file built to explode when
// its aliases are expanded costs no more than its size.
func (p *parser) seeAll(path string, n *yaml.Node, depth int) {
	if n == nil || n.Kind == yaml.AliasNode || depth > 32 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if p.budget--; p.budget < 0 {
				return
			}
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			kp := join(path, k.Value)
			p.see(kp, k)
			p.seeAll(kp, n.Content[i+1], depth+1)
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			if p.budget--; p.budget < 0 {
				return
			}
			ip := index(path, i)
			p.see(ip, it)
			p.seeAll(ip, it, depth+1)
		}
	}
}

// check runs each backend's Check on its clusters.
func (bs *fleetBackends) check(p *parser, f *model.Fleet) {
	if bs == nil {
		return
	}
	for i, c := range f.Clusters {
		if b := bs.find(string(c.Backend)); b != nil && b.Check != nil {
			p.mergeModel(index("clusters", i), b.Check(c, f))
		}
	}
}
