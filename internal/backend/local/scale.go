package local

import (
	"context"
	"fmt"

	"gpubroker/internal/backend"
)

var _ backend.Scaler = (*Backend)(nil)

// Scale sets an elastic pool's node count. The local backend's nodes are
// slots of this one machine (every node of a gang runs here, see
// nodeEnv): there is nothing to start or stop, so every node asked for is
// ready at once and Scale returns nodes. It bounds nothing: which nodes a
// pool has is the control plane's to keep (see backend.Scaler).
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
	return nodes, nil
}
