package slurm

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// lookup finds the newest job named name, in slurmctld's memory (squeue)
// and then in accounting (sacct, from since on).
func (b *Backend) lookup(ctx context.Context, name string, since time.Time) (int64, bool, error) {
	out, err := b.run(ctx, "squeue", "--me", "--noheader", "--states=all", "--name="+name, "--format=%i")
	if err != nil {
		return 0, false, err
	}
	if id, ok := newestID(string(out)); ok {
		return id, true, nil
	}
	out, err = b.run(ctx, "sacct", "--noheader", "--parsable2", "--allocations",
		"--starttime="+slurmTime(since), "--name="+name, "--format=JobIDRaw")
	if err != nil {
		if accountingDisabled(err) {
			return 0, false, nil
		}
		return 0, false, err
	}
	id, ok := newestID(string(out))
	return id, ok, nil
}

// lookupKnown finds the newest job named name among those Slurm held
// (squeue: queued, running or recently ended) or accounted (sacct, since
// Lookback) when this Backend first asked; it asks on the first call and
// again after a failed one.
func (b *Backend) lookupKnown(ctx context.Context, name string) (int64, bool, error) {
	b.knownMu.Lock()
	defer b.knownMu.Unlock()
	if b.known == nil {
		known := map[string]int64{}
		out, err := b.run(ctx, "squeue", "--me", "--noheader", "--states=all", "--format=%i|%j")
		if err != nil {
			return 0, false, err
		}
		addKnown(known, string(out))
		out, err = b.run(ctx, "sacct", "--noheader", "--parsable2", "--allocations",
			"--starttime="+slurmTime(b.opts.Clock().Add(-b.opts.Lookback)), "--format=JobIDRaw,JobName")
		switch {
		case err == nil:
			addKnown(known, string(out))
		case !accountingDisabled(err):
			return 0, false, err
		}
		b.known = known
	}
	id, ok := b.known[name]
	return id, ok, nil
}

// addKnown adds to known the newest id of each attempt-named job in out,
// lines of "ID|NAME".
func addKnown(known map[string]int64, out string) {
	for _, l := range strings.Split(out, "\n") {
		idText, name, ok := strings.Cut(strings.TrimSpace(l), "|")
		if !ok || validName(name) != nil {
			continue
		}
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			continue
		}
		if id > known[name] {
			known[name] = id
		}
	}
}

// newestID is the largest job id in a one-id-a-line output.
func newestID(out string) (int64, bool) {
	var best int64
	found := false
	for _, l := range strings.Fields(out) {
		id, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
		if err != nil {
			continue
		}
		if !found || id > best {
			best, found = id, true
		}
	}
	return best, found
}

// accountingDisabled tells a cluster without slurmdbd apart from a failure.
func accountingDisabled(err error) bool {
	var ce *CommandError
	return errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Stderr), "accounting storage is disabled")
}

// slurmTime formats t as Slurm's command-line tools read times.
func slurmTime(t time.Time) string {
	return t.In(time.Local).Format("2006-01-02T15:04:05")
}
