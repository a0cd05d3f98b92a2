package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"gpubroker/internal/model"
)

// secureStateDir keeps the state directory's secrets (the SQLite store and
// its -wal and -shm files, admin.token and any other token file, the
// server's log) from every other user, the local backend's jobs included:
// its files are made 0600 (server.url and server.pid excepted: they hold
// no secret and tell clients where the server is) and its directories
// 0700, each driver's directory created now, private, before the driver
// opens it. SQLite gives -wal and -shm files it creates later the mode of
// the database file.
//
// When the server runs as root the local backend runs jobs under other
// uids, which must reach their work directories below local/: the state
// directory is then 0711 (reachable, not listable), and local/ is the
// local driver's to open (0711) for its jobs. See
// docs/adr/0009-local-job-isolation.md.
func secureStateDir(dir string, drivers []string, root bool) error {
	shared := func(name string) bool { return root && name == string(model.BackendLocal) }
	for _, name := range drivers {
		if !shared(name) {
			if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
				return fmt.Errorf("--state-dir: %w", err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == urlFile || name == pidFile || shared(name) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			continue // gone meanwhile, or a dangling link
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			if err := os.Chmod(p, mode&^0o077); err != nil {
				return fmt.Errorf("--state-dir: %w", err)
			}
		}
	}
	mode := os.FileMode(0o700)
	if root {
		mode = 0o711
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	return nil
}
