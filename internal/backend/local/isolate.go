package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"gpubroker/internal/backend"
)

// The default range of the uids (and gids, the same numbers) that teams'
// jobs run as: below 2^31, so that no tool reading ids as signed 32-bit
// numbers sees a negative one, and far above the ids useradd (1000-60000),
// systemd's dynamic users (61184-65519) and /etc/subuid ranges (100000 and
// up, 65536 a user) hand out.
const (
	DefaultUIDBase  = 2_000_000_000
	DefaultUIDCount = 65536
)

// jobPath is the whole of a job's PATH unless its task sets one.
const jobPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Isolation runs every job under a uid and gid of its team's own, so that
// jobs of one team cannot read another team's work and logs, nor the
// broker's files (its state directory must be private to the broker: see
// docs/adr/0009-local-job-isolation.md). It needs the broker to run as
// root, and setpriv (util-linux) in PATH.
type Isolation struct {
	// UIDBase and UIDCount are the range team ids are taken from:
	// [UIDBase, UIDBase+UIDCount). Zero: DefaultUIDBase, DefaultUIDCount.
	// Nothing else on the machine may use these ids.
	UIDBase, UIDCount int
	// Table is the file that records which team has which id, shared by
	// every Backend of this machine so that a team has the same id in
	// every cluster and no two teams share one. Empty: DIR/.uids.json.
	Table string
}

// IsolationFromEnv is the Isolation of a broker that runs as root
// (geteuid 0), nil otherwise: jobs then run as the broker's own user. The
// range may be moved with GPUBROKER_LOCAL_UID_BASE and
// GPUBROKER_LOCAL_UID_COUNT.
func IsolationFromEnv(getenv func(string) string, euid int, table string) (*Isolation, error) {
	if euid != 0 {
		return nil, nil
	}
	iso := &Isolation{Table: table}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"GPUBROKER_LOCAL_UID_BASE", &iso.UIDBase}, {"GPUBROKER_LOCAL_UID_COUNT", &iso.UIDCount}} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("local: %s=%q is not a positive number; give e.g. %s=%d", v.name, s, v.name, DefaultUIDBase)
		}
		*v.dst = n
	}
	return iso, iso.check()
}

func (iso *Isolation) check() error {
	if iso.UIDBase == 0 {
		iso.UIDBase = DefaultUIDBase
	}
	if iso.UIDCount == 0 {
		iso.UIDCount = DefaultUIDCount
	}
	if iso.UIDBase < 1000 || iso.UIDCount < 1 || int64(iso.UIDBase)+int64(iso.UIDCount) > 1<<31 {
		return fmt.Errorf("local: job uid range %d+%d is out of bounds; give a base of at least 1000 and base+count at most 2^31 (GPUBROKER_LOCAL_UID_BASE, GPUBROKER_LOCAL_UID_COUNT)", iso.UIDBase, iso.UIDCount)
	}
	return nil
}

// setupIsolation checks iso and finds setpriv; it makes the state
// directory reachable (0711, not listable) for jobs that must reach their
// work directories below it, and the kept logs private.
func setupIsolation(dir string, iso *Isolation) (string, error) {
	if iso == nil {
		return "", os.Chmod(filepath.Join(dir, logsDir), 0o700)
	}
	if err := iso.check(); err != nil {
		return "", err
	}
	if iso.Table == "" {
		iso.Table = filepath.Join(dir, ".uids.json")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return "", fmt.Errorf("local: jobs run under per-team uids (the broker runs as root), which needs setpriv (util-linux): %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return "", fmt.Errorf("local: state directory: %w", err)
	}
	if err := os.Chmod(filepath.Join(dir, logsDir), 0o700); err != nil {
		return "", fmt.Errorf("local: state directory: %w", err)
	}
	return setpriv, nil
}

// teamID is team's uid (and gid): the one the table gives it, else a free
// one, chosen from a hash of the name (the same team gets the same id on
// a fresh table when no other team took it first), recorded before use.
func (iso *Isolation) teamID(team string) (int, error) {
	lock, err := os.OpenFile(iso.Table+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	ids := map[string]int{}
	data, err := os.ReadFile(iso.Table)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, err
	default:
		if err := json.Unmarshal(data, &ids); err != nil {
			return 0, fmt.Errorf("%s: %w", iso.Table, err)
		}
	}
	if id, ok := ids[team]; ok {
		if id < iso.UIDBase || id >= iso.UIDBase+iso.UIDCount {
			return 0, fmt.Errorf("%s: team %q has uid %d, outside the range %d+%d; move the range back or delete the file (no job of the team may run)", iso.Table, team, id, iso.UIDBase, iso.UIDCount)
		}
		return id, nil
	}
	used := map[int]bool{}
	for _, id := range ids {
		used[id] = true
	}
	h := fnv.New32a()
	h.Write([]byte(team))
	start := int(h.Sum32() % uint32(iso.UIDCount))
	id := -1
	for i := range iso.UIDCount {
		if c := iso.UIDBase + (start+i)%iso.UIDCount; !used[c] {
			id = c
			break
		}
	}
	if id < 0 {
		return 0, fmt.Errorf("%s: all %d job uids from %d are taken; give a larger GPUBROKER_LOCAL_UID_COUNT", iso.Table, iso.UIDCount, iso.UIDBase)
	}
	ids[team] = id
	out, err := json.MarshalIndent(ids, "", "  ")
	if err != nil {
		return 0, err
	}
	tmp := iso.Table + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return 0, err
	}
	return id, os.Rename(tmp, iso.Table)
}

// prepare makes the attempt's work directory (the job's HOME, and where it
// starts when the spec gives no Workdir) and, when jobs are isolated,
// hands it and the scripts to the team's id and opens the attempt
// directory for traversal. It returns the work directory and the uid
// (-1: the broker's).
func (b *Backend) prepare(adir string, spec backend.Spec) (string, int, error) {
	work := filepath.Join(adir, workDir)
	if err := os.Mkdir(work, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", -1, err
	}
	if b.opts.Isolation == nil {
		return work, -1, nil
	}
	id, err := b.opts.Isolation.teamID(spec.Team)
	if err != nil {
		return "", -1, fmt.Errorf("job uid of team %q: %w", spec.Team, err)
	}
	if err := os.Chown(work, id, id); err != nil {
		return "", -1, err
	}
	// The scripts are read by the job's own shell: the team's group.
	for _, s := range []string{"setup.sh", "run.sh"} {
		p := filepath.Join(adir, s)
		if err := os.Chown(p, 0, id); err != nil {
			return "", -1, err
		}
		if err := os.Chmod(p, 0o640); err != nil {
			return "", -1, err
		}
	}
	// Every file in it is private (0600) or the team's (work/, the
	// scripts): reachable by name, not listable.
	return work, id, os.Chmod(adir, 0o711)
}

// baseEnv is the environment a job starts from instead of the broker's:
// PATH and HOME only. The spec's Envs and the backend's variables follow.
func baseEnv(home string) []string {
	return []string{"PATH=" + jobPath, "HOME=" + home}
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
