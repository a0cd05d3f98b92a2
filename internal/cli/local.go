package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gpubroker/internal/api"
)

// The local state directory and the local server the CLI starts on first
// use. A local server writes, in its state directory:
//
//	server.url    where it listens ("http://127.0.0.1:8470")
//	server.pid    its process ID (for `gpubroker server stop`)
//	admin.token   an admin token for the local user (mode 0600)
//	server.log    its output, when the CLI started it
//	gpubroker.db  the SQLite store; local/ the local backend's work
//
// Caveat: `go run ./cmd/gpubroker launch ...` runs a binary that `go run`
// builds in a temporary directory and deletes when it exits. The server
// it starts is that same binary re-executed; on Linux it keeps running
// after the file is deleted, but stop and start it with a built binary
// (`go build ./cmd/gpubroker`) for anything longer than a try-out.

const (
	urlFile   = "server.url"
	pidFile   = "server.pid"
	tokenFile = "admin.token"
	logFile   = "server.log"
	dbFile    = "gpubroker.db"
)

// startTimeout bounds how long launch waits for a server it started.
const startTimeout = 30 * time.Second

// stateDir is where a local server keeps its state:
// $GPUBROKER_STATE_DIR, else $XDG_STATE_HOME/gpubroker, else
// ~/.local/state/gpubroker.
func stateDir(getenv func(string) string) (string, error) {
	if d := getenv("GPUBROKER_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "gpubroker"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no state directory: set GPUBROKER_STATE_DIR (%w)", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "state", "gpubroker"), nil
}

// readStateFile reads one small file of the state directory, trimmed;
// "" when it does not exist.
func readStateFile(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// writeStateFile writes a state file atomically (temp file + rename), so
// a reader never sees half a URL or token.
func writeStateFile(dir, name, content string, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// connect resolves the server and token: flags, then GPUBROKER_SERVER and
// GPUBROKER_TOKEN, then the local server of the state directory. With
// autostart (launch), a missing local server is started in the background.
func (env *Env) connect(ctx context.Context, o clientOptions, autostart bool) (*api.Client, error) {
	getenv := os.Getenv
	server, token := o.server, o.token
	if server == "" {
		server = getenv("GPUBROKER_SERVER")
	}
	if token == "" {
		token = getenv("GPUBROKER_TOKEN")
	}
	if server != "" && token != "" {
		return newClient(server, token), nil
	}
	dir, err := stateDir(getenv)
	if err != nil {
		if server != "" {
			return newClient(server, token), nil
		}
		return nil, err
	}
	if server == "" {
		u, err := readStateFile(dir, urlFile)
		if err != nil {
			return nil, err
		}
		switch {
		case u != "" && healthy(ctx, u):
			server = u
		case autostart:
			u, err := env.startLocalServer(ctx, dir)
			if err != nil {
				return nil, err
			}
			server = u
		default:
			return nil, fmt.Errorf("no gpubroker server: none answers in %s; start one with `gpubroker server`, or name one with --server or GPUBROKER_SERVER (`gpubroker launch` starts a local one)", dir)
		}
	}
	if token == "" {
		// The local server's admin token; a remote server without a
		// token answers 401, which says what to do.
		t, err := readStateFile(dir, tokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	}
	return newClient(server, token), nil
}

// startLocalServer starts `gpubroker server --state-dir dir` as a detached
// background process (its own session, output to server.log) and waits
// until it answers /healthz at the URL it writes to server.url.
func (env *Env) startLocalServer(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("starting a local server: cannot find this program: %w", err)
	}
	logPath := filepath.Join(dir, logFile)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("starting a local server: %w", err)
	}
	defer log.Close()
	// A stale URL from a server that died must not be mistaken for the
	// new one's.
	if err := os.Remove(filepath.Join(dir, urlFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	cmd := exec.Command(self, "server", "--state-dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command and its terminal
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting a local server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case err := <-exited:
			return "", fmt.Errorf("the local server exited at start (%v); see %s:\n%s", err, logPath, logTail(logPath, 10))
		case <-deadline.C:
			return "", fmt.Errorf("the local server did not answer within %s; see %s:\n%s", startTimeout, logPath, logTail(logPath, 10))
		case <-tick.C:
			u, err := readStateFile(dir, urlFile)
			if err != nil || u == "" || !healthy(ctx, u) {
				continue
			}
			fmt.Fprintf(env.Stderr, "started a local gpubroker server (SQLite + local backend) at %s; logs: %s\n", u, logPath)
			return u, nil
		}
	}
}

// logTail returns the last n lines of a file, indented, for error messages.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
