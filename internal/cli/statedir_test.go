package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// The state directory's secrets end up private whatever modes they had;
// server.url and server.pid stay readable; each driver's directory exists,
// private, except local/ under root, which is the local driver's to open.
func TestSecureStateDir(t *testing.T) {
	for _, root := range []bool{false, true} {
		dir := t.TempDir()
		files := map[string]os.FileMode{
			dbFile: 0o644, dbFile + "-wal": 0o644, dbFile + "-shm": 0o644, tokenFile: 0o644, logFile: 0o640,
			urlFile: 0o644, pidFile: 0o644,
		}
		for name, mode := range files {
			if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Join(dir, name), mode)
		}
		if err := os.Mkdir(filepath.Join(dir, "ckpt"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := secureStateDir(dir, []string{"local", "slurm"}, root); err != nil {
			t.Fatal(err)
		}
		want := map[string]os.FileMode{
			dbFile: 0o600, dbFile + "-wal": 0o600, dbFile + "-shm": 0o600, tokenFile: 0o600, logFile: 0o600,
			urlFile: 0o644, pidFile: 0o644, "ckpt": 0o700, "slurm": 0o700, "local": 0o700, ".": 0o700,
		}
		if root {
			want["."] = 0o711
			delete(want, "local")
			if _, err := os.Stat(filepath.Join(dir, "local")); !os.IsNotExist(err) {
				t.Errorf("root: local/ was created (%v); it is the local driver's", err)
			}
		}
		for name, mode := range want {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("root %v: %s: %v", root, name, err)
				continue
			}
			if got := fi.Mode().Perm(); got != mode {
				t.Errorf("root %v: %s is %v, want %v", root, name, got, mode)
			}
		}
	}
}
