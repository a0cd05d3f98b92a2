package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/backend"
	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
)

type serverOptions struct {
	store     string
	listen    string
	stateDir  string
	localGPUs string
	round     time.Duration
	// clusterTimeout is how long a cluster may not answer before its
	// attempts are lost and placed elsewhere.
	clusterTimeout time.Duration
	// HTTP connection bounds (server.Config).
	readTimeout, writeTimeout, idleTimeout time.Duration
	maxConns                               int
	// maxLogSize caps each attempt's stored output ("0": no cap).
	maxLogSize string
	// deadlines bound backend calls (server.Config.Deadlines).
	deadlines server.Deadlines
}

func newServerCmd(env *Env) *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the gpubroker control plane: HTTP API, store, reconciler",
		Long: `server runs the control plane in the foreground until SIGTERM or SIGINT:
the HTTP API (/v1, /healthz, /metrics), the store, and the reconciler that
places pending work with the scheduling engine and drives the backends.

With no flags it keeps everything in the state directory
($GPUBROKER_STATE_DIR, else $XDG_STATE_HOME/gpubroker, else
~/.local/state/gpubroker): the SQLite store (gpubroker.db, WAL mode), the
local backend's work and logs (local/), and for clients on this machine
server.url, server.pid and, on first start, admin.token (an admin token for
team default, mode 0600). Until a fleet is applied it schedules onto a
built-in local fleet: one node with --local-gpus GPUs, run by the local
backend. The state directory is kept private to the server's user (files
0600). Local jobs start from an empty environment (PATH, HOME, their task's
envs); when the server runs as root each team's jobs run under a uid of
the team's own (GPUBROKER_LOCAL_UID_BASE / _COUNT move the range; see
docs/local.md).

--store postgres://... keeps the state in PostgreSQL instead, for a shared
control plane with several replicas (one leads the reconciler).

--listen defaults to 127.0.0.1:8470; when that port is taken and --listen
was not given, a free port is used (server.url says which). Work running on
the local backend survives a server stop or crash: the next server finds it
again.

Clusters of the fleet run on the engine their backend names: local
processes, Slurm (through sbatch/squeue/scancel with the slurm.conf of the
cluster's slurm: block) or Kubernetes (the kubeconfig of its kubernetes:
block); see docs/fleet.md. A cluster that fails its health check takes no
new work at once; after --cluster-timeout without an answer, every attempt
running there is lost and placed elsewhere as a new attempt (job_recovery
decides where), and when the cluster answers again what still runs there is
cancelled.

--max-log-size caps the output each attempt stores on the local and Slurm
backends (shared evenly between the nodes of a gang, at least 64 KiB
each): a log keeps the job's first output up to the cap, then one line
"[gpubroker] output truncated: ..."; the rest is discarded while the job
runs on. 0 stores everything. Kubernetes keeps logs on its nodes, under
the kubelet's own rotation (containerLogMaxSize).

When the disk of the store is full, submissions get 503 with a message
saying so; what was accepted before is kept, and the server takes work
again by itself once there is space.`,
		Example: `  # The embedded default: SQLite + local backend in the state directory
  gpubroker server

  # A shared control plane on PostgreSQL, reachable from other machines
  gpubroker server --store postgres://broker@db/gpubroker --listen 0.0.0.0:8470

  # A local fleet of 4 L40S GPUs, rounds every 200ms, state in /tmp/gb
  gpubroker server --local-gpus L40S:4 --round 200ms --state-dir /tmp/gb

  # Fail work over from a cluster that has not answered for 10s
  gpubroker server --cluster-timeout 10s

  # Close idle connections after 30s; serve at most 1000 at once
  gpubroker server --idle-timeout 30s --max-conns 1000
  # Keep at most 100 MiB of output per attempt
  gpubroker server --max-log-size 100MiB

  # Stop the local server
  gpubroker server stop`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.server(cmd, o, !cmd.Flags().Changed("listen"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.store, "store", "", "store `URL`: sqlite:PATH or postgres://... (default: sqlite:STATE_DIR/gpubroker.db)")
	f.StringVar(&o.listen, "listen", server.DefaultListen, "HTTP listen `ADDRESS`")
	f.StringVar(&o.stateDir, "state-dir", "", "state `DIR` (default: $GPUBROKER_STATE_DIR, $XDG_STATE_HOME/gpubroker or ~/.local/state/gpubroker)")
	f.StringVar(&o.localGPUs, "local-gpus", "", "GPUs of the built-in local fleet as `MODEL:COUNT` (default H100:8)")
	f.DurationVar(&o.round, "round", server.DefaultRoundInterval, "`INTERVAL` between reconcile rounds")
	f.DurationVar(&o.clusterTimeout, "cluster-timeout", server.DefaultClusterTimeout,
		"how long a cluster may not answer (`DURATION`) before its running attempts are lost and placed elsewhere")
	f.DurationVar(&o.readTimeout, "read-timeout", server.DefaultReadTimeout,
		"longest time to read one request, body included (`DURATION`)")
	f.DurationVar(&o.writeTimeout, "write-timeout", server.DefaultWriteTimeout,
		"longest time to write one response (`DURATION`); log streams are exempt")
	f.DurationVar(&o.idleTimeout, "idle-timeout", server.DefaultIdleTimeout,
		"how long an idle keep-alive connection stays open (`DURATION`)")
	f.IntVar(&o.maxConns, "max-conns", server.DefaultMaxConns,
		"most connections served at once (`N`); more wait to be accepted")
	f.StringVar(&o.maxLogSize, "max-log-size", "1GiB",
		"the most output (`SIZE`: bytes, or with KiB, MiB, GiB) an attempt stores; past it the log ends with a truncation note; 0: no cap")
	f.DurationVar(&o.deadlines.Health, "health-timeout", server.DefaultHealthTimeout,
		"how long a cluster's health check may take (`DURATION`) before the cluster is unhealthy")
	f.DurationVar(&o.deadlines.Observe, "observe-timeout", server.DefaultObserveTimeout,
		"how long listing a cluster's attempts may take (`DURATION`) before the cluster is unhealthy")
	f.DurationVar(&o.deadlines.Call, "backend-timeout", server.DefaultBackendTimeout,
		"how long any other backend call (submit, cancel, scale, opening logs) may take (`DURATION`)")
	cmd.AddCommand(newServerStopCmd(env))
	return cmd
}

func (env *Env) server(cmd *cobra.Command, o serverOptions, defaultListen bool) error {
	ctx := cmd.Context()
	d, err := env.drivers()
	if err != nil {
		return err
	}
	dir := o.stateDir
	if dir == "" {
		if dir, err = stateDir(os.Getenv); err != nil {
			return err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	if o.round <= 0 {
		return usageError(cmd, "--round: %s is not a positive interval", o.round)
	}
	if o.clusterTimeout <= 0 {
		return usageError(cmd, "--cluster-timeout: %s is not a positive duration; give e.g. 30s", o.clusterTimeout)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"read-timeout", o.readTimeout}, {"write-timeout", o.writeTimeout}, {"idle-timeout", o.idleTimeout}} {
		if d.v <= 0 {
			return usageError(cmd, "--%s: %s is not a positive duration; give e.g. 1m", d.flag, d.v)
		}
	}
	if o.maxConns < 1 {
		return usageError(cmd, "--max-conns: %d is not a positive count; give e.g. 4096", o.maxConns)
	}
	maxLog, err := parseSize(o.maxLogSize)
	if err != nil {
		return usageError(cmd, "--max-log-size: %v", err)
	}
	if maxLog == 0 {
		maxLog = -1 // no cap
	}
	var gpu model.GPUModel
	var gpus int
	if o.localGPUs != "" {
		name, count, ok := strings.Cut(o.localGPUs, ":")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 {
			return usageError(cmd, "--local-gpus: %q is not MODEL:COUNT (e.g. H100:8)", o.localGPUs)
		}
		if n > model.MaxGPUsPerNode {
			return usageError(cmd, "--local-gpus: %d GPUs on one node is out of range; give 1 to %d", n, model.MaxGPUsPerNode)
		}
		if gpu, err = catalog.ParseGPU(name); err != nil {
			return usageError(cmd, "--local-gpus: %v", err)
		}
		gpus = n
	}
	if u, _ := readStateFile(dir, urlFile); u != "" && healthy(ctx, u) {
		return fmt.Errorf("a gpubroker server already runs for %s at %s (stop it with `gpubroker server stop --state-dir %s`)", dir, u, dir)
	}
	storeURL := o.store
	if storeURL == "" {
		storeURL = "sqlite:" + filepath.Join(dir, dbFile)
		// Private from the start (SQLite would create it 0644; its -wal
		// and -shm files take its mode): see secureStateDir.
		if f, err := os.OpenFile(filepath.Join(dir, dbFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		}
	}
	st, err := d.OpenStore(ctx, storeURL)
	if err != nil {
		return fmt.Errorf("--store %s: %w", redactURL(storeURL), err)
	}
	defer st.Close()
	if err := secureStateDir(dir, backend.Names(d.Backends), os.Geteuid() == 0); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
	backends := &backendSet{dir: dir, drivers: d}
	defer backends.close()
	cfg := server.Config{
		Store:          st,
		Backends:       backends.get,
		Drivers:        d.Backends,
		StateDir:       dir,
		Listen:         o.listen,
		RoundInterval:  o.round,
		ClusterTimeout: o.clusterTimeout,
		Deadlines:      o.deadlines,
		Logger:         logger,
		LocalGPU:       gpu,
		LocalGPUs:      gpus,
		ReadTimeout:    o.readTimeout,
		WriteTimeout:   o.writeTimeout,
		IdleTimeout:    o.idleTimeout,
		MaxConns:       o.maxConns,
		MaxLogBytes:    maxLog,
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Open(ctx); err != nil {
		if !defaultListen || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		// The default port is someone else's: any free one will do, as
		// clients on this machine read server.url.
		logger.Warn("default port taken; listening on a free port", "listen", o.listen)
		cfg.Listen = "127.0.0.1:0"
		if srv, err = server.New(cfg); err != nil {
			return err
		}
		if err := srv.Open(ctx); err != nil {
			return err
		}
	}
	url := "http://" + srv.Addr()
	pid := strconv.Itoa(os.Getpid())
	if err := writeStateFile(dir, pidFile, pid, 0o644); err != nil {
		return err
	}
	if err := writeStateFile(dir, urlFile, url, 0o644); err != nil {
		return err
	}
	logger.Info("gpubroker server ready", "url", url, "store", redactURL(storeURL), "state_dir", dir, "pid", pid)

	<-ctx.Done()
	logger.Info("shutting down")
	// Clients must not find this server's URL once it is gone; a newer
	// server's files are left alone.
	if u, _ := readStateFile(dir, urlFile); u == url {
		os.Remove(filepath.Join(dir, urlFile))
	}
	if p, _ := readStateFile(dir, pidFile); p == pid {
		os.Remove(filepath.Join(dir, pidFile))
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Close(closeCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// backendSet opens the backend of each cluster for the server, with the
// driver its backend names, in the cluster's own directory under the state
// directory (DIR/BACKEND/CLUSTER); an error (the cluster is unhealthy) for
// backends this build does not drive. It keeps what it opened, to close
// after the server.
type backendSet struct {
	dir     string // the state directory
	drivers Drivers

	mu     sync.Mutex
	opened []backend.Backend
}

func (b *backendSet) get(cl model.Cluster) (backend.Backend, error) {
	d := b.drivers.backend(cl.Backend)
	if d == nil {
		return nil, fmt.Errorf("cluster %s: backend %q is not available in this build; it drives %s",
			cl.Name, cl.Backend, strings.Join(backend.Names(b.drivers.Backends), ", "))
	}
	be, err := d.Open(cl, filepath.Join(b.dir, d.Name, cl.Name))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	b.mu.Lock()
	b.opened = append(b.opened, be)
	b.mu.Unlock()
	return be, nil
}

func (b *backendSet) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, be := range b.opened {
		if c, ok := be.(io.Closer); ok {
			c.Close()
		}
	}
}

// redactURL hides a password in a store URL before it is logged.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return u
}

func newServerStopCmd(env *Env) *cobra.Command {
	var dirFlag string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the local server of the state directory",
		Long: `stop sends SIGTERM to the server recorded in the state directory
(server.pid) and waits until it has shut down. Work running on the local
backend keeps running; the next server finds it again.`,
		Example: `  gpubroker server stop
  GPUBROKER_STATE_DIR=/tmp/gb gpubroker server stop`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirFlag
			if dir == "" {
				var err error
				if dir, err = stateDir(os.Getenv); err != nil {
					return err
				}
			}
			return env.stopServer(cmd.Context(), dir)
		},
	}
	cmd.Flags().StringVar(&dirFlag, "state-dir", "", "state `DIR` (default: as for server)")
	return cmd
}

func (env *Env) stopServer(ctx context.Context, dir string) error {
	p, err := readStateFile(dir, pidFile)
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(p)
	u, _ := readStateFile(dir, urlFile)
	// A pid file whose server does not answer is stale (the server was
	// killed): its pid may belong to another process by now.
	if pid <= 0 || u == "" || !healthy(ctx, u) {
		return fmt.Errorf("no local gpubroker server runs for %s", dir)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping server pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Fprintf(env.Stdout, "stopped the gpubroker server at %s (pid %d)\n", u, pid)
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("server pid %d did not stop within 30s; see %s", pid, filepath.Join(dir, logFile))
}

// parseSize reads a byte count: a whole number, optionally followed by
// KiB, MiB or GiB (K, M, G, KB, MB and GB mean the same binary units).
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGiB")
	unit := s[len(num):]
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30}[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size; give bytes or e.g. 512MiB, 1GiB, or 0 for no cap", s)
	}
	return n * mult, nil
}
