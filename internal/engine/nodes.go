package engine

import (
	"math/bits"
	"sort"

	"gpubroker/internal/model"
)

const maxG = model.MaxGPUsPerNode

// capVec holds, for g = 1..maxG, how many nodes of a pool have at least g
// free GPUs (index 0 unused). Nodes an elastic pool may still add count as
// fully free.
type capVec [maxG + 1]int32

// fits reports whether n nodes with g free GPUs each are available.
func (v *capVec) fits(n, g int) bool { return int(v[g]) >= n }

// pool is the round's working state of one fleet pool.
type pool struct {
	seq     int
	ref     PoolRef
	cluster *model.Cluster
	spec    *model.Pool
	gpn     int
	down    bool

	// free holds free GPUs per node. It aliases the snapshot until the
	// first change, then is a private copy (owned).
	free  []int
	owned bool
	// grow is how many more nodes the pool may still add (elastic pools).
	grow int

	cnt  capVec
	regs []treeReg
	lv   *levels
	cost poolCost
	// running lists allocations in this pool, for preemption; runSorted
	// once ordered cheapest victim first.
	running        []*runAlloc
	fresh          []*runAlloc // admitted by the Scheduler, not yet in running
	runSorted      bool
	busy           bool // on round.busy
	sortedRound    int
	runMinPriority int
	runBorrowed    bool
}

func newPool(seq int, cl *model.Cluster, p *model.Pool, st *PoolState) *pool {
	pl := &pool{seq: seq, ref: PoolRef{Cluster: cl.Name, Pool: p.Name}, cluster: cl, spec: p, gpn: p.GPUsPerNode}
	if st != nil && st.NodeFree != nil {
		pl.free = st.NodeFree
	} else {
		pl.free = make([]int, p.Nodes)
		for i := range pl.free {
			pl.free[i] = p.GPUsPerNode
		}
		pl.owned = true
	}
	if st != nil {
		pl.down = st.Down
	}
	if p.MaxNodes > len(pl.free) {
		pl.grow = p.MaxNodes - len(pl.free)
	}
	pl.recount()
	return pl
}

// recount rebuilds cnt from free: O(nodes), done once per pool per round.
func (pl *pool) recount() {
	var hist [maxG + 2]int32
	for _, f := range pl.free {
		if f > pl.gpn {
			f = pl.gpn
		}
		if f > 0 {
			hist[f]++
		}
	}
	var run int32
	pl.cnt = capVec{}
	for g := pl.gpn; g >= 1; g-- {
		run += hist[g]
		pl.cnt[g] = run + int32(pl.grow)
	}
}

// levels indexes a pool's nodes by their free GPU count, one bitset per
// count, so best-fit node choice does not scan the whole pool.
type levels struct {
	sets [maxG + 1][]uint64
	hint [maxG + 1]int // first word that may have a bit set
	n    [maxG + 1]int // nodes at each level
}

func (pl *pool) levels() *levels {
	if pl.lv != nil {
		return pl.lv
	}
	lv := &levels{}
	words := (len(pl.free) + pl.grow + 63) / 64
	for k := 0; k <= pl.gpn; k++ {
		lv.sets[k] = make([]uint64, words)
	}
	for i, f := range pl.free {
		if f > pl.gpn {
			f = pl.gpn
		}
		if f < 0 {
			f = 0
		}
		lv.sets[f][i/64] |= 1 << (i % 64)
		lv.n[f]++
	}
	pl.lv = lv
	return lv
}

func (lv *levels) set(k, i int) {
	lv.sets[k][i/64] |= 1 << (i % 64)
	lv.n[k]++
	if i/64 < lv.hint[k] {
		lv.hint[k] = i / 64
	}
}

func (lv *levels) clear(k, i int) {
	lv.sets[k][i/64] &^= 1 << (i % 64)
	lv.n[k]--
}

// first returns the lowest node index with exactly k free, or -1.
func (lv *levels) first(k int) int {
	s := lv.sets[k]
	for w := lv.hint[k]; w < len(s); w++ {
		if s[w] != 0 {
			lv.hint[k] = w
			return w*64 + bits.TrailingZeros64(s[w])
		}
	}
	lv.hint[k] = len(s)
	return -1
}

func (pl *pool) own() {
	if !pl.owned {
		pl.free = append([]int(nil), pl.free...)
		pl.owned = true
	}
}

// take places n nodes x g GPUs, best fit: nodes with the fewest free GPUs
// that still fit go first (lowest index breaks ties), so whole free nodes
// stay whole for gangs. New nodes of an elastic pool come last. The caller
// has checked cnt.fits(n, g). Returns the chosen node indexes, ascending,
// and how many were newly added.
func (pl *pool) take(n, g int) (nodes []int, added int) {
	pl.own()
	lv := pl.levels()
	nodes = make([]int, 0, n)
	for k := g; k <= pl.gpn && len(nodes) < n; k++ {
		for len(nodes) < n {
			i := lv.first(k)
			if i < 0 {
				break
			}
			lv.clear(k, i)
			lv.set(k-g, i)
			pl.free[i] -= g
			nodes = append(nodes, i)
		}
	}
	for len(nodes) < n {
		i := len(pl.free)
		pl.free = append(pl.free, pl.gpn-g)
		lv.set(pl.gpn-g, i)
		pl.grow--
		added++
		nodes = append(nodes, i)
	}
	sort.Ints(nodes)
	pl.updateCounts()
	return nodes, added
}

// release returns g GPUs on each of nodes (a preempted allocation).
func (pl *pool) release(nodes []int, g int) {
	pl.own()
	lv := pl.levels()
	for _, i := range nodes {
		if i >= len(pl.free) {
			continue
		}
		f := pl.free[i]
		nf := f + g
		if nf > pl.gpn {
			nf = pl.gpn
		}
		lv.clear(clampLevel(f, pl.gpn), i)
		lv.set(nf, i)
		pl.free[i] = nf
	}
	pl.updateCounts()
}

func clampLevel(f, gpn int) int {
	if f < 0 {
		return 0
	}
	if f > gpn {
		return gpn
	}
	return f
}

// updateCounts recomputes cnt from the level sets' population and pushes
// it into every index that holds the pool.
func (pl *pool) updateCounts() {
	var run int32
	for g := pl.gpn; g >= 1; g-- {
		run += int32(pl.lv.n[g])
		pl.cnt[g] = run + int32(pl.grow)
	}
	for _, r := range pl.regs {
		r.t.update(r.leaf, &pl.cnt)
	}
}

// fitsAfterRelease reports whether n x g fits once the given victims'
// GPUs are returned, without changing the pool.
func (pl *pool) fitsAfterRelease(n, g int, victims []*runAlloc) bool {
	have := int(pl.cnt[g])
	if have >= n {
		return true
	}
	delta := map[int]int{}
	for _, v := range victims {
		for _, i := range v.a.Nodes {
			if i < len(pl.free) {
				delta[i] += v.a.GPUsPerNode
			}
		}
	}
	for i, d := range delta {
		before := pl.free[i]
		after := before + d
		if after > pl.gpn {
			after = pl.gpn
		}
		if before < g && after >= g {
			have++
		}
	}
	return have >= n
}
