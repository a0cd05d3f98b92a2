package local

import (
	"fmt"
	"path/filepath"

	"gpubroker/internal/backend"
)

var _ backend.HostBound = (*Backend)(nil)

// Where is this machine and the state directory.
func (b *Backend) Where() backend.Where {
	return backend.Where{Host: b.opts.Hostname, Dir: b.dir}
}

// Adopt returns a Backend over another state directory on this machine,
// with this one's options: the records of a broker that died (a leader of
// a shared store killed with its work still running, see the package
// documentation). Its processes are found again from their locks and exit
// files, as after a restart; nothing is started twice. One Backend per
// directory is kept and returned again; w naming this Backend's own
// directory returns b.
func (b *Backend) Adopt(w backend.Where) (backend.Backend, error) {
	if w.Host != b.opts.Hostname {
		return nil, fmt.Errorf("local: %s on host %q, this broker runs on %q: %w", w.Dir, w.Host, b.opts.Hostname, backend.ErrOtherHost)
	}
	dir, err := filepath.Abs(w.Dir)
	if err != nil || w.Dir == "" {
		return nil, fmt.Errorf("local: adopt %q: not a directory path", w.Dir)
	}
	if dir == b.dir {
		return b, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.adopted[dir]; ok {
		return a, nil
	}
	a, err := New(dir, b.opts)
	if err != nil {
		return nil, err
	}
	if b.adopted == nil {
		b.adopted = map[string]*Backend{}
	}
	b.adopted[dir] = a
	return a, nil
}
