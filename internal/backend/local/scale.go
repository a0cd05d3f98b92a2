package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gpubroker/internal/backend"
)

// poolsDir holds one file per pool the control plane scaled (backend.Scaler):
// the pool's node count.
const poolsDir = ".pools"

var _ backend.Scaler = (*Backend)(nil)

// Scale sets an elastic pool's node count. The local backend's nodes are
// slots of this machine (every node of a gang runs here), so a node is
// ready as soon as it is counted: Scale returns nodes. The count is kept
// in DIR/.pools/POOL, so a Backend opened again after a restart has it,
// and from then on Submit refuses an attempt of that pool on a node at or
// past it. A pool never scaled takes any node index, as before.
func (b *Backend) Scale(ctx context.Context, pool string, nodes int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validName(pool); err != nil {
		return 0, fmt.Errorf("local: invalid pool name %q", pool)
	}
	if nodes < 0 {
		return 0, fmt.Errorf("local: pool %s: %d nodes is negative", pool, nodes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok, err := b.poolNodes(pool); err == nil && ok && cur == nodes {
		return nodes, nil
	}
	dir := filepath.Join(b.dir, poolsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("local: pool %s: %v: %w", pool, err, backend.ErrUnavailable)
	}
	if err := writeAtomic(filepath.Join(dir, pool), []byte(strconv.Itoa(nodes)+"\n")); err != nil {
		return 0, fmt.Errorf("local: pool %s: %v: %w", pool, err, backend.ErrUnavailable)
	}
	return nodes, nil
}

// poolNodes reads a pool's node count; ok is false for a pool never
// scaled.
func (b *Backend) poolNodes(pool string) (n int, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(b.dir, poolsDir, pool))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", poolsDir+"/"+pool, err)
	}
	return n, true, nil
}

// checkNodes refuses a spec with a node its scaled pool does not have.
func (b *Backend) checkNodes(spec backend.Spec) error {
	if spec.Pool == "" || validName(spec.Pool) != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(b.dir, spec.Name)); err == nil {
		return nil // submitted already: Submit is idempotent
	}
	b.mu.Lock()
	n, ok, err := b.poolNodes(spec.Pool)
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("local: submit %s: pool %s: %v: %w", spec.Name, spec.Pool, err, backend.ErrUnavailable)
	}
	if !ok {
		return nil
	}
	for _, nd := range spec.Nodes {
		if nd.Index >= n {
			return fmt.Errorf("local: submit %s: node %d of pool %s is not provisioned (the pool has %d nodes)", spec.Name, nd.Index, spec.Pool, n)
		}
	}
	return nil
}
