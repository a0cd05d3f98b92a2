package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gpubroker/internal/backend"
)

// Logs streams an attempt's node logs: node 0's, then node 1's, ... when not
// following; as they are written, line by line, when following. Lines are
// prefixed "[rank N] " when the attempt has more than one node. Following
// ends once the attempt has ended and every log is drained, or when ctx is
// done (the reader then sees io.EOF). Logs of forgotten attempts are still
// served, without following. ErrNotFound for names never submitted.
func (b *Backend) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	files, kept, err := b.logFiles(name)
	if err != nil {
		return nil, err
	}
	poll := b.opts.LogPoll
	return backend.TailFiles(ctx, files, follow && !kept, func() bool { return b.ended(name) }, poll, poll), nil
}

// TailLogs implements backend.LogTailer: the last lines of each node's
// log, read from its end.
func (b *Backend) TailLogs(ctx context.Context, name string, lines int, maxBytes int64) ([]byte, error) {
	files, _, err := b.logFiles(name)
	if err != nil {
		return nil, err
	}
	return backend.TailLines(files, lines, maxBytes)
}

// logFiles are the node logs of an attempt, in rank order; kept when the
// attempt was forgotten (its logs moved under .logs).
func (b *Backend) logFiles(name string) (files []backend.LogFile, kept bool, err error) {
	if err := validName(name); err != nil {
		return nil, false, err
	}
	var paths []string
	adir := filepath.Join(b.dir, name)
	if rec, err := readRecord(adir); err == nil {
		for rank := range rec.Spec.Nodes {
			paths = append(paths, filepath.Join(adir, nodeFile(rank, "log")))
		}
	} else {
		kept = true
		paths, err = keptLogs(filepath.Join(b.dir, logsDir, name))
		if err != nil {
			return nil, false, fmt.Errorf("local: logs %s: %w", name, backend.ErrNotFound)
		}
	}
	files = make([]backend.LogFile, len(paths))
	for i, p := range paths {
		files[i] = backend.LogFile{Path: p}
		if len(paths) > 1 {
			files[i].Prefix = "[rank " + strconv.Itoa(i) + "] "
		}
	}
	return files, kept, nil
}

// keptLogs lists the node logs Forget kept, ordered by rank.
func keptLogs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type ranked struct {
		rank int
		path string
	}
	var logs []ranked
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), "node-")
		s, ok2 := strings.CutSuffix(s, ".log")
		r, err := strconv.Atoi(s)
		if ok && ok2 && err == nil {
			logs = append(logs, ranked{r, filepath.Join(dir, e.Name())})
		}
	}
	if len(logs) == 0 {
		return nil, errors.New("no logs")
	}
	sort.Slice(logs, func(i, j int) bool { return logs[i].rank < logs[j].rank })
	paths := make([]string, len(logs))
	for i, l := range logs {
		paths[i] = l.path
	}
	return paths, nil
}

// ended reports whether the attempt has ended (or is gone).
func (b *Backend) ended(name string) bool {
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	st, ok := b.observe(name, gen)
	if !ok {
		return true
	}
	return st.Phase != backend.PhasePending && st.Phase != backend.PhaseRunning
}
