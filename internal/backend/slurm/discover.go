package slurm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"gpubroker/internal/backend"
	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// sinfoFormat is what discovery asks sinfo for, one line per node and
// partition; parseSinfo reads it.
const sinfoFormat = "%N|%P|%T|%c|%m|%G"

// Node is one Slurm node as sinfo reports it.
type Node struct {
	Name      string
	Partition string // without the default marker '*'
	Default   bool   // the partition is the cluster's default
	State     string // e.g. idle, mixed, allocated, drained, down*
	CPUs      int
	MemoryMB  int64
	// GPUs are the node's GPUs by GRES type ("" for an untyped gpu:N).
	GPUs map[string]int
}

// GPUCount is the node's GPUs of every type.
func (n Node) GPUCount() int {
	total := 0
	for _, c := range n.GPUs {
		total += c
	}
	return total
}

// Unavailable tells whether the node takes no new work: down, drained or
// draining, failing, or not responding (a '*' suffix).
func (n Node) Unavailable() bool {
	s := strings.ToLower(n.State)
	if strings.HasSuffix(s, "*") {
		return true
	}
	for _, w := range []string{"down", "drain", "fail", "inval", "maint", "reboot", "unk", "future", "power"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// Nodes lists the cluster's nodes (of Options.Partition when set), one
// entry per node, with one sinfo call. A node in several partitions is
// listed once, under the default partition if it is in it, else under the
// first.
func (b *Backend) Nodes(ctx context.Context) ([]Node, error) {
	args := []string{"--noheader", "--Node", "--format=" + sinfoFormat}
	if b.opts.Partition != "" {
		args = append(args, "--partition="+b.opts.Partition)
	}
	out, err := b.run(ctx, "sinfo", args...)
	if err != nil {
		return nil, fmt.Errorf("slurm: sinfo: %w", err)
	}
	nodes, err := parseSinfo(string(out))
	if err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}
	return uniqueNodes(nodes), nil
}

// uniqueNodes keeps one entry per node name, sorted by name.
func uniqueNodes(nodes []Node) []Node {
	byName := map[string]Node{}
	for _, n := range nodes {
		old, ok := byName[n.Name]
		if !ok || (n.Default && !old.Default) {
			byName[n.Name] = n
		}
	}
	out := make([]Node, 0, len(byName))
	for _, n := range byName {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return nodeLess(out[i].Name, out[j].Name) })
	return out
}

// nodeLess orders node names with their numeric suffixes compared as
// numbers (gpu2 before gpu10).
func nodeLess(a, b string) bool {
	pa, na := splitNum(a)
	pb, nb := splitNum(b)
	if pa != pb {
		return pa < pb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil || i == len(s) {
		return s, -1
	}
	return s[:i], n
}

// parseSinfo reads sinfo --Node --format=sinfoFormat output.
func parseSinfo(out string) ([]Node, error) {
	var nodes []Node
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("sinfo line %d: %d fields, want 6: %q", i+1, len(f), line)
		}
		part := strings.TrimSpace(f[1])
		n := Node{
			Name:      strings.TrimSpace(f[0]),
			Partition: strings.TrimSuffix(part, "*"),
			Default:   strings.HasSuffix(part, "*"),
			State:     strings.TrimSpace(f[2]),
			GPUs:      parseGRES(f[5]),
		}
		n.CPUs, _ = strconv.Atoi(strings.TrimSpace(f[3]))
		n.MemoryMB, _ = strconv.ParseInt(strings.TrimSpace(f[4]), 10, 64)
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// parseGRES reads a node's GRES list ("gpu:h100:8", "gpu:8(S:0-1)",
// "gpu:a100:4,gpu:v100:2,nvme:1", "(null)") into GPUs per type.
func parseGRES(s string) map[string]int {
	out := map[string]int{}
	for _, item := range splitGRES(strings.TrimSpace(s)) {
		if i := strings.IndexByte(item, '('); i >= 0 {
			item = item[:i] // socket binding, e.g. (S:0-1)
		}
		parts := strings.Split(item, ":")
		if parts[0] != "gpu" || len(parts) < 2 || len(parts) > 3 {
			continue
		}
		typ, count := "", parts[len(parts)-1]
		if len(parts) == 3 {
			typ = parts[1]
		}
		n, err := strconv.Atoi(count)
		if err != nil && len(parts) == 2 {
			typ, n, err = count, 1, nil // "gpu:h100": one of that type
		}
		if err != nil || n <= 0 || n > 1<<16 {
			continue // no node has that many GPUs
		}
		out[typ] += n
	}
	return out
}

// splitGRES splits at commas outside parentheses.
func splitGRES(s string) []string {
	var items []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				items = append(items, s[start:i])
				start = i + 1
			}
		}
	}
	return append(items, s[start:])
}

// GPUs reports how many GPUs each node has (sorted by node name), from the
// GRES sinfo reports.
func (b *Backend) GPUs(ctx context.Context) ([]int, error) {
	nodes, err := b.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(nodes))
	for i, n := range nodes {
		out[i] = n.GPUCount()
	}
	return out, nil
}

// Health reports whether the cluster can take work: slurmctld answers
// `scontrol ping` (else an error wrapping backend.ErrUnavailable), and at
// least one node is neither down nor drained (else backend.ErrNoNewWork:
// jobs on drained nodes run on, and Slurm itself reports those a down node
// took with it, NODE_FAIL). A healthy answer stands for
// Options.HealthEvery, and is returned while a new check runs in the
// background (see fresh).
func (b *Backend) Health(ctx context.Context) error {
	_, err := b.health.get(ctx, b.opts.Clock(), b.opts.HealthEvery, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, b.check(ctx)
	})
	if errors.Is(err, errNoAnswer) {
		return fmt.Errorf("slurm: health: %w: %w", err, backend.ErrUnavailable)
	}
	return err
}

// check asks slurmctld whether it is up and how many nodes take work.
func (b *Backend) check(ctx context.Context) error {
	if conf := b.opts.Conf; conf != "" {
		// Every Slurm command retries a missing slurm.conf for a minute
		// before it fails; say so at once.
		if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("slurm: health: slurm.conf not found: %s: %w", conf, backend.ErrUnavailable)
		} else if err != nil {
			return fmt.Errorf("slurm: health: slurm.conf: %v: %w", err, backend.ErrUnavailable)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.HealthTimeout)
	defer cancel()
	out, err := b.run(ctx, "scontrol", "ping")
	if err != nil {
		return fmt.Errorf("slurm: health: %v: %w", err, backend.ErrUnavailable)
	}
	if !pingUp(string(out)) {
		return fmt.Errorf("slurm: health: slurmctld not up: %s: %w", strings.TrimSpace(string(out)), backend.ErrUnavailable)
	}
	nodes, err := b.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("slurm: health: %v: %w", err, backend.ErrUnavailable)
	}
	down := 0
	for _, n := range nodes {
		if n.Unavailable() {
			down++
		}
	}
	if down == len(nodes) {
		return fmt.Errorf("slurm: health: %d of %d nodes down or drained: %w", down, len(nodes), backend.ErrNoNewWork)
	}
	return nil
}

// pingUp reads `scontrol ping`: "Slurmctld(primary) at HOST is UP", one line
// per controller; any controller up will do.
func pingUp(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), "is UP") {
			return true
		}
	}
	return false
}

// DiscoverPools derives fleet pools from the nodes' GRES: one pool per
// partition, GPU type, GPUs per node, CPUs and memory, with the node count
// (down and drained nodes included: a pool is installed capacity). Nodes
// without GPUs are left out. GRES types are mapped to models with
// catalog.ParseGPU (gpu:h100:8 -> H100); an untyped or unknown GRES is an
// error naming the node, since a pool needs its model. Names are
// PARTITION-TYPE (PARTITION-TYPE-xN when one partition has several sizes of
// one type); PriceClass and prices are left for the fleet to fill in.
func (b *Backend) DiscoverPools(ctx context.Context) ([]model.Pool, error) {
	nodes, err := b.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	return poolsFromNodes(nodes)
}

func poolsFromNodes(nodes []Node) ([]model.Pool, error) {
	type key struct {
		part, typ  string
		gpus, cpus int
		mem        int64
	}
	count := map[key]int{}
	var keys []key
	for _, n := range nodes {
		for typ, c := range n.GPUs {
			k := key{n.Partition, typ, c, n.CPUs, n.MemoryMB}
			if count[k] == 0 {
				keys = append(keys, k)
			}
			count[k]++
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.part != b.part {
			return a.part < b.part
		}
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		if a.gpus != b.gpus {
			return a.gpus < b.gpus
		}
		if a.cpus != b.cpus {
			return a.cpus < b.cpus
		}
		return a.mem < b.mem
	})
	sizes := map[[2]string]int{}
	for _, k := range keys {
		sizes[[2]string{k.part, k.typ}]++
	}
	var pools []model.Pool
	names := map[string]int{}
	for _, k := range keys {
		if k.typ == "" {
			return nil, fmt.Errorf("slurm: partition %s: GRES gpu:%d has no type; name the model in slurm.conf (e.g. Gres=gpu:h100:%d)", k.part, k.gpus, k.gpus)
		}
		g, err := catalog.ParseGPU(k.typ)
		if err != nil {
			return nil, fmt.Errorf("slurm: partition %s: GRES type %q: %w", k.part, k.typ, err)
		}
		name := k.part + "-" + strings.ToLower(k.typ)
		if sizes[[2]string{k.part, k.typ}] > 1 {
			name += "-x" + strconv.Itoa(k.gpus)
		}
		if names[name]++; names[name] > 1 {
			name += "-" + strconv.Itoa(names[name])
		}
		pools = append(pools, model.Pool{
			Name:             name,
			GPU:              g,
			GPUsPerNode:      k.gpus,
			Nodes:            count[k],
			CPUsPerNode:      float64(k.cpus),
			MemoryGiBPerNode: float64(k.mem) / 1024,
		})
	}
	return pools, nil
}
