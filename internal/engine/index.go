package engine

// segTree answers "which is the first pool, in cost order, with at least n
// nodes that have g free GPUs" in O(log pools). Leaves are the pools of one
// class and one provider in ascending effective cost; each inner node holds
// the element-wise maximum of its children's capacity vectors.
type segTree struct {
	size  int // leaves, rounded up to a power of two
	n     int // real leaves
	width int // the largest GPUs-per-node among the leaves
	val   []capVec
	pools []*pool
}

type treeReg struct {
	t    *segTree
	leaf int
}

func newSegTree(pools []*pool) *segTree {
	size := 1
	for size < len(pools) {
		size *= 2
	}
	t := &segTree{size: size, n: len(pools), val: make([]capVec, 2*size), pools: pools}
	for i, p := range pools {
		t.width = max(t.width, p.gpn)
		t.val[size+i] = p.cnt
		p.regs = append(p.regs, treeReg{t: t, leaf: i})
	}
	for i := size - 1; i >= 1; i-- {
		t.pull(i)
	}
	return t
}

func (t *segTree) pull(i int) {
	l, r := &t.val[2*i], &t.val[2*i+1]
	v := &t.val[i]
	for g := 1; g <= t.width; g++ {
		v[g] = max(l[g], r[g])
	}
}

func (t *segTree) update(leaf int, c *capVec) {
	i := t.size + leaf
	t.val[i] = *c
	for i /= 2; i >= 1; i /= 2 {
		old := t.val[i]
		t.pull(i)
		if t.val[i] == old {
			break
		}
	}
}

// first returns the lowest leaf >= from whose pool fits n x g, or -1.
func (t *segTree) first(from, n, g int) int {
	if from >= t.n || g > t.width || int(t.val[1][g]) < n {
		return -1
	}
	return t.descend(1, 0, t.size, from, n, g)
}

func (t *segTree) descend(i, lo, hi, from, n, g int) int {
	if hi <= from || int(t.val[i][g]) < n {
		return -1
	}
	if hi-lo == 1 {
		if lo >= t.n {
			return -1
		}
		return lo
	}
	mid := (lo + hi) / 2
	if r := t.descend(2*i, lo, mid, from, n, g); r >= 0 {
		return r
	}
	return t.descend(2*i+1, mid, hi, from, n, g)
}
