#!/usr/bin/env bash
# The project's bench command: the figures in docs/benchmarks.md come from
# here. Runs each goal benchmark several times on one core and prints the
# lines go test prints (take the median; the machines are shared and noisy,
# so compare ratios measured in one run).
#
#   scripts/bench.sh              # all
#   scripts/bench.sh engine       # one area: engine, sim, trace, cli, logs, throughput
#
# throughput (issue 5) needs the CI engines, started and sourced:
#   scripts/engines/slurm-up.sh && . /tmp/slurm-ci/env.sh; scripts/engines/k8s-up.sh
# (a benchmark whose engine is down is skipped). It runs the issue's sizes
# (GPUBROKER_BENCH_FULL=1), each path three times, order alternating
# (TPUT_ITER=3), and takes 30-60 minutes. The broker's cluster queues one
# pool's worth of work ahead (queue_ahead); TPUT_QUEUE_AHEAD=0 turns that off.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
area=${1:-all}

run() { echo "== $*"; GOMAXPROCS=1 go test -run '^$' "$@" | grep -E '^(Benchmark|cpu:|ok|FAIL)'; }

case "$area" in all | engine)
  run -bench 'ScheduleRound' -benchtime=3x -count="$count" ./internal/engine/
  run -bench 'PlacementScaling' -benchtime=20x -count="$count" ./internal/engine/
esac
case "$area" in all | sim)
  # The simulator runs one policy per core when given several; one policy
  # here, so GOMAXPROCS=1 is fair.
  run -bench 'Simulate' -benchtime=1x -count="$count" ./internal/sim/
esac
case "$area" in all | trace)
  run -bench 'Read' -benchtime=3x -count="$count" ./internal/trace/
esac
case "$area" in all | cli)
  run -bench 'Plan' -benchtime=20x -count="$count" ./internal/cli/
esac
case "$area" in all | logs)
  run -bench 'Tail' -benchtime=5x -count="$count" ./internal/backend/
esac
case "$area" in all | throughput)
  # Both cores, unlike the rest: the broker is concurrent and the engines
  # are other processes. Each benchmark measures both paths in one run;
  # its log lines carry the machine's load.
  echo "== throughput (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  GPUBROKER_BENCH_FULL=1 go test -run '^$' -bench 'Throughput' -benchtime="${TPUT_ITER:-3}x" -count=1 \
    -timeout 120m ./internal/e2e/ | grep --line-buffered -E '^(Benchmark|cpu:|ok|FAIL)|throughput_.*(load|commands run)'
esac
