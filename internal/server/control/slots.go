package control

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/store"
)

// GPU slots: which GPU indexes of each node an attempt gets. The engine
// counts free GPUs per node; the server turns a count into indexes, lowest
// free first given the other attempts on the node, at admission. The
// slots are kept on the attempt in the store (store.Move.Slots, read back
// as store.Attempt.Slots), so that dispatch after a restart, and a
// restarted server's view of who uses what, is the same as before. They
// are also written into the admission event's message ("gpu slots: 0=0,1
// 1=0,1", node=indexes) for people; that text is never read back.

// attemptSlots are the slots of one job's current attempt.
type attemptSlots struct {
	attempt int
	pool    engine.PoolRef
	nodes   []backend.Node
}

type nodeKey struct {
	pool engine.PoolRef
	node int
}

// slotTable is the GPU indexes in use on each node.
type slotTable map[nodeKey]map[int]bool

const slotsMarker = "gpu slots: "

// formatSlots writes nodes as "gpu slots: 0=0,1 1=0,1".
func formatSlots(nodes []backend.Node) string {
	var b strings.Builder
	b.WriteString(slotsMarker)
	for i, n := range nodes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(n.Index))
		b.WriteByte('=')
		for k, g := range n.GPUs {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(g))
		}
	}
	return b.String()
}

// storeSlots are nodes as the store keeps them.
func storeSlots(nodes []backend.Node) []store.NodeSlots {
	out := make([]store.NodeSlots, len(nodes))
	for i, n := range nodes {
		out[i] = store.NodeSlots{Node: n.Index, GPUs: n.GPUs}
	}
	return out
}

// assignSlots gives need GPUs on each of nodes, the lowest indexes that
// used does not hold, and marks them used. The engine only places work
// where a node has need free GPUs, so these are below the node's GPU
// count; were the table ever inconsistent, indexes past it are given
// rather than a GPU shared.
func assignSlots(used slotTable, pool engine.PoolRef, nodes []int, need int) []backend.Node {
	out := make([]backend.Node, 0, len(nodes))
	for _, n := range nodes {
		k := nodeKey{pool, n}
		u := used[k]
		if u == nil {
			u = map[int]bool{}
			used[k] = u
		}
		node := backend.Node{Index: n, GPUs: make([]int, 0, need)}
		for g := 0; len(node.GPUs) < need; g++ {
			if !u[g] {
				node.GPUs = append(node.GPUs, g)
				u[g] = true
			}
		}
		out = append(out, node)
	}
	return out
}

// releaseSlots undoes assignSlots.
func releaseSlots(used slotTable, pool engine.PoolRef, nodes []backend.Node) {
	for _, n := range nodes {
		for _, g := range n.GPUs {
			delete(used[nodeKey{pool, n.Index}], g)
		}
	}
}

// defaultSlots is 0..GPUsPerNode-1 on every node of p.
func defaultSlots(p *store.Placement) []backend.Node {
	out := make([]backend.Node, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = backend.Node{Index: n, GPUs: make([]int, p.GPUsPerNode)}
		for g := range out[i].GPUs {
			out[i].GPUs[g] = g
		}
	}
	return out
}

// ensureSlots makes sure every job holding capacity has its slots known:
// from memory, else from its attempt in the store (after a restart), else
// (an admission written by something else) the lowest free. Entries of
// jobs no longer holding capacity are dropped.
func (rd *round) ensureSlots(ctx context.Context) {
	known := rd.s.rec.slots
	holding := rd.holding()
	keep := make(map[int64]bool, len(holding))
	var unknown []*store.Job
	for _, j := range holding {
		keep[j.ID] = true
		if sl, ok := known[j.ID]; ok && sl.attempt == j.Attempt {
			continue
		}
		if nodes, ok := rd.storedSlots(ctx, j); ok {
			known[j.ID] = attemptSlots{attempt: j.Attempt, pool: poolOf(j), nodes: nodes}
			continue
		}
		unknown = append(unknown, j)
	}
	for id := range known {
		if !keep[id] {
			delete(known, id)
		}
	}
	if len(unknown) == 0 {
		return
	}
	used := rd.usedSlots()
	for _, j := range unknown {
		ref := poolOf(j)
		known[j.ID] = attemptSlots{attempt: j.Attempt, pool: ref,
			nodes: assignSlots(used, ref, j.Placement.Nodes, j.Placement.GPUsPerNode)}
	}
}

// storedSlots are the slots the store keeps for j's current attempt.
func (rd *round) storedSlots(ctx context.Context, j *store.Job) ([]backend.Node, bool) {
	as, err := rd.s.store.Attempts(ctx, j.ID)
	if err != nil {
		return nil, false
	}
	for _, a := range as {
		if a.Attempt != j.Attempt || len(a.Slots) == 0 {
			continue
		}
		nodes := make([]backend.Node, len(a.Slots))
		for i, n := range a.Slots {
			nodes[i] = backend.Node{Index: n.Node, GPUs: n.GPUs}
		}
		return nodes, true
	}
	return nil, false
}

// usedSlots is the slot table of every job holding capacity now.
func (rd *round) usedSlots() slotTable {
	used := slotTable{}
	ids := make([]int64, 0, len(rd.s.rec.slots))
	for id := range rd.s.rec.slots {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		j := rd.jobs[id]
		sl := rd.s.rec.slots[id]
		if j == nil || !holds(j) || sl.attempt != j.Attempt {
			continue
		}
		for _, n := range sl.nodes {
			k := nodeKey{sl.pool, n.Index}
			if used[k] == nil {
				used[k] = map[int]bool{}
			}
			for _, g := range n.GPUs {
				used[k][g] = true
			}
		}
	}
	return used
}

func poolOf(j *store.Job) engine.PoolRef {
	return engine.PoolRef{Cluster: j.Placement.Cluster, Pool: j.Placement.Pool}
}
