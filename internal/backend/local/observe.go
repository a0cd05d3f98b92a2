package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gpubroker/internal/backend"
)

// Observe returns one Status per attempt in the state directory, sorted by
// name. Observing also acts on what it sees, so that a restarted broker
// converges without remembering anything: a gang with a failed, lost or
// cancelled node is stopped (SIGTERM, SIGKILL after the grace period).
func (b *Backend) Observe(ctx context.Context) ([]backend.Status, error) {
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, fmt.Errorf("local: observe: %v: %w", err, backend.ErrUnavailable)
	}
	out := make([]backend.Status, 0, len(entries))
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, ok := b.observe(e.Name(), gen); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// node is what the files say of one node.
type node struct {
	rank   int
	alive  bool // someone holds its lock
	exited bool // its exit file exists
	code   int
	ended  time.Time
}

func (b *Backend) readNode(adir string, rank int) node {
	n := node{rank: rank}
	lock := filepath.Join(adir, nodeFile(rank, "lock"))
	if n.readExit(adir) {
		// Its status is written, but until its lock is free some of its
		// processes are still ending (a gang member stopped by SIGTERM
		// writes its status from its trap): it has not ended yet, and the
		// attempt is not over while it runs.
		if lockHeld(lock) {
			n.exited, n.alive = false, true
		}
		return n
	}
	if lockHeld(lock) {
		n.alive = true
		return n
	}
	// It may have written its exit file and ended between the two looks.
	if n.readExit(adir) {
		return n
	}
	if fi, err := os.Stat(filepath.Join(adir, nodeFile(rank, "log"))); err == nil {
		n.ended = fi.ModTime()
	} else if fi, err := os.Stat(adir); err == nil {
		n.ended = fi.ModTime()
	}
	return n
}

func (n *node) readExit(adir string) bool {
	p := filepath.Join(adir, nodeFile(n.rank, "exit"))
	data, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	n.exited = true
	n.code, n.ended = parseExit(string(data))
	if n.ended.IsZero() {
		if fi, err := os.Stat(p); err == nil {
			n.ended = fi.ModTime()
		}
	}
	return true
}

// parseExit reads an exit file, "CODE [SECONDS.MICROS]"; ended is zero
// when the file has no readable time (a shell without EPOCHREALTIME, or a
// file written before the time was recorded): the caller takes the file's
// mtime.
// Garbage for the code means the disk lies: it counts as a failure (255)
// rather than a guessed success.
func parseExit(data string) (code int, ended time.Time) {
	f := strings.Fields(data)
	if len(f) == 0 {
		return 255, time.Time{}
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return 255, time.Time{}
	}
	if len(f) > 1 {
		ended = backend.UnixTime(f[1])
	}
	return code, ended
}

// observe computes the status of one attempt; ok is false when it vanished
// (forgotten meanwhile).
func (b *Backend) observe(name string, gen uint64) (backend.Status, bool) {
	b.mu.Lock()
	if st, ok := b.final[name]; ok {
		b.mu.Unlock()
		return st, true
	}
	starting := b.starting[name] > 0
	rec, haveRec := b.recs[name]
	b.mu.Unlock()

	adir := filepath.Join(b.dir, name)
	st := backend.Status{Name: name}
	if !haveRec {
		r, err := readRecord(adir)
		switch {
		case err == nil:
			rec = r.brief()
			b.mu.Lock()
			if b.gen == gen {
				b.recs[name] = rec
			}
			b.mu.Unlock()
		case starting:
			st.Phase = backend.PhasePending
			return st, true
		default:
			fi, serr := os.Stat(adir)
			if serr != nil {
				return st, false
			}
			st.Phase = backend.PhaseLost
			st.Ended = fi.ModTime()
			if errors.Is(err, fs.ErrNotExist) {
				st.Message = "submission interrupted before the attempt was recorded"
			} else {
				st.Message = "unreadable record: " + err.Error()
			}
			b.cacheFinal(st, gen)
			return st, true
		}
	}
	st.Started = rec.Submitted
	if rec.Host != b.opts.Hostname {
		// Its processes, if any, are on another machine: nothing here can
		// see or stop them.
		st.Phase = backend.PhaseLost
		st.Message = fmt.Sprintf("started on host %q, this broker runs on %q", rec.Host, b.opts.Hostname)
		b.cacheFinal(st, gen)
		return st, true
	}

	nodes := make([]node, len(rec.Spec.Nodes))
	var alive, unstarted, exited int
	var failed, lost *node
	for i := range nodes {
		nodes[i] = b.readNode(adir, i)
		n := &nodes[i]
		switch {
		case n.alive:
			alive++
		case n.exited:
			exited++
			if n.code != 0 && (failed == nil || n.ended.Before(failed.ended)) {
				failed = n
			}
		case starting:
			// Submit is still starting nodes: one not alive yet may be
			// between creating its lock file and taking it.
			unstarted++
		default:
			if lost == nil {
				lost = n
			}
		}
		if n.ended.After(st.Ended) {
			st.Ended = n.ended
		}
	}
	_, err := os.Stat(filepath.Join(adir, "cancelled"))
	cancelled := err == nil

	reason := ""
	switch {
	case cancelled:
		reason = "cancelled"
	case failed != nil:
		reason = fmt.Sprintf("node %d exited with code %d", failed.rank, failed.code)
	case lost != nil:
		reason = fmt.Sprintf("node %d ended without recording an exit status (killed, or the machine restarted)", lost.rank)
	}
	if failed != nil {
		code := failed.code
		st.ExitCode = &code
	}

	if alive > 0 || unstarted > 0 {
		st.Ended = time.Time{}
		st.Phase = backend.PhaseRunning
		if alive == 0 {
			st.Phase = backend.PhasePending
		}
		if reason != "" && !starting {
			b.stop(name, adir, len(nodes))
			st.Message = "stopping: " + reason
		}
		return st, true
	}
	switch {
	case exited == len(nodes) && failed == nil:
		zero := 0
		st.Phase, st.ExitCode = backend.PhaseSucceeded, &zero
	case cancelled || failed != nil:
		st.Phase, st.Message = backend.PhaseFailed, reason
	default:
		st.Phase, st.Message = backend.PhaseLost, reason
	}
	b.cacheFinal(st, gen)
	return st, true
}

func (b *Backend) cacheFinal(st backend.Status, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen == gen {
		b.final[st.Name] = st
		delete(b.stopping, st.Name)
	}
}

// stop sends SIGTERM to every node of the attempt that has not exited the
// first time it is called, and SIGKILL once the grace period has passed:
// from a timer, and again from any later call (a restarted broker starts the
// grace period over).
func (b *Backend) stop(name, adir string, nodes int) {
	now := b.opts.Clock()
	b.mu.Lock()
	first, ok := b.stopping[name]
	if !ok {
		b.stopping[name] = now
	}
	b.mu.Unlock()
	if !ok {
		signalGang(adir, nodes, syscall.SIGTERM)
		time.AfterFunc(b.opts.Grace, func() { signalGang(adir, nodes, syscall.SIGKILL) })
		return
	}
	if now.Sub(first) >= b.opts.Grace {
		signalGang(adir, nodes, syscall.SIGKILL)
	}
}

// signalGang signals the process group of every node without an exit file.
func signalGang(adir string, nodes int, sig syscall.Signal) {
	for rank := range nodes {
		if _, err := os.Stat(filepath.Join(adir, nodeFile(rank, "exit"))); err == nil {
			continue
		}
		signalNode(adir, rank, sig)
	}
}

// signalNode signals node rank's process group, unless its leader's pid now
// belongs to another process (same pid, other start time). A leader that is
// gone may have left members behind; the group id cannot be reused while
// they live, so the group is signalled anyway.
func signalNode(adir string, rank int, sig syscall.Signal) {
	data, err := os.ReadFile(filepath.Join(adir, nodeFile(rank, "pid")))
	if err != nil {
		return
	}
	var pid int
	var ticks uint64
	if _, err := fmt.Sscanf(string(data), "%d %d", &pid, &ticks); err != nil || pid <= 1 {
		return
	}
	if cur, err := procStartTicks(pid); err == nil && cur != ticks {
		return
	}
	_ = syscall.Kill(-pid, sig)
}

// Cancel stops an attempt: it is marked cancelled, its process groups get
// SIGTERM now and SIGKILL after the grace period. It returns once the
// signals are sent; Observe reports Running ("stopping: cancelled") until
// every process is gone, then Failed. Cancelling an unknown or ended attempt
// returns nil.
func (b *Backend) Cancel(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	b.mu.Lock()
	_, ended := b.final[name]
	b.mu.Unlock()
	adir := filepath.Join(b.dir, name)
	if ended {
		return nil
	}
	if _, err := os.Stat(adir); err != nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(adir, "cancelled"), nil, 0o600); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // forgotten meanwhile
		}
		return fmt.Errorf("local: cancel %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	rec, err := readRecord(adir)
	if err != nil {
		// Not recorded yet (a Submit in progress) or never will be: the
		// marker makes Observe stop whatever gets started.
		return nil
	}
	b.stop(name, adir, len(rec.Spec.Nodes))
	return nil
}

// Forget removes an attempt's record; its logs are kept under
// DIR/.logs/NAME/. Anything of the attempt still alive is killed first.
// Forgetting an unknown attempt returns nil.
func (b *Backend) Forget(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	adir := filepath.Join(b.dir, name)
	if _, err := os.Stat(adir); err != nil {
		return nil
	}
	if rec, err := readRecord(adir); err == nil {
		signalGang(adir, len(rec.Spec.Nodes), syscall.SIGKILL)
	}
	b.mu.Lock()
	b.gen++
	delete(b.final, name)
	delete(b.recs, name)
	delete(b.stopping, name)
	b.mu.Unlock()

	// Rename first: the attempt disappears from Observe in one step.
	trash := filepath.Join(b.dir, trashDir)
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return fmt.Errorf("local: forget %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	gone := filepath.Join(trash, fmt.Sprintf("%s.%d", name, time.Now().UnixNano()))
	if err := os.Rename(adir, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("local: forget %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	keep := filepath.Join(b.dir, logsDir, name)
	_ = os.RemoveAll(keep)
	logs, _ := filepath.Glob(filepath.Join(gone, "node-*.log"))
	if len(logs) > 0 {
		if err := os.MkdirAll(keep, 0o700); err == nil {
			for _, l := range logs {
				_ = os.Rename(l, filepath.Join(keep, filepath.Base(l)))
			}
		}
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("local: forget %s: %v: %w", name, err, backend.ErrUnavailable)
	}
	return nil
}

// lockHeld tells whether any process holds the node's lock: whether any
// process of the node is alive.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// procStartTicks is field 22 of /proc/PID/stat: when the process started,
// in clock ticks since boot. With the pid it names a process uniquely.
func procStartTicks(pid int) (uint64, error) {
	fields, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// procStat returns the fields of /proc/PID/stat after the command name
// (which may contain spaces and parentheses), starting at field 3.
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	return strings.Fields(string(data[i+1:])), nil
}
