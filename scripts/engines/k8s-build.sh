#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes),
# etcd (go.etcd.io/etcd/server/v3) and kwok (sigs.k8s.io/kwok) from the Go module proxy.
# Only missing binaries are built. Cold build on 2 cores: ~6-7 min; ~0 s when cached.
#   K8S_CI_VERSION       kubernetes version        (default 1.37.2; staging modules = v0.<minor>.<patch>)
#   K8S_CI_ETCD_VERSION  etcd version              (default 3.6.16)
#   K8S_CI_KWOK_VERSION  kwok version              (default 0.8.0)
#   K8S_CI_CACHE         tools modules + binaries  (default ${XDG_CACHE_HOME:-$HOME/.cache}/gpubroker-k8s)
#   K8S_CI_ETCD_BIN      if set, etcd is not built (k8s-up.sh uses that binary)
#   K8S_CI_BIN           where binaries go         (default $K8S_CI_CACHE/bin-<k8s>-<etcd>-<kwok>)
# Prints the bin dir on the last line.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
KV=${K8S_CI_VERSION:-1.37.2}
EV=${K8S_CI_ETCD_VERSION:-3.6.16}
WV=${K8S_CI_KWOK_VERSION:-0.8.0}
CACHE=${K8S_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpubroker-k8s}
BIN=${K8S_CI_BIN:-$CACHE/bin-$KV-$EV-$WV}
STAGING_V=v0.${KV#*.}   # 1.37.2 -> v0.37.2
mkdir -p "$BIN" "$CACHE"
log() { echo "[k8s-build] $*" >&2; }
need() { for b in "$@"; do [ -x "$BIN/$b" ] || return 0; done; return 1; }
t0=$(date +%s)

# --- kube-apiserver / kube-controller-manager / kube-scheduler ---------------------------------
if need kube-apiserver kube-controller-manager kube-scheduler; then
  M=$CACHE/mod-k8s-$KV
  mkdir -p "$M"
  if [ ! -f "$M/.ok" ]; then
    (cd "$M" && printf 'module k8scitools\n\ngo 1.26.0\n' >go.mod)
    KGOMOD=$(cd "$M" && go mod download -json "k8s.io/kubernetes@v$KV" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$KGOMOD" ] || { log "cannot download k8s.io/kubernetes@v$KV"; exit 1; }
    {
      printf 'module k8scitools\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$KV"
      # k8s.io/kubernetes replaces its staging modules with ./staging/...; point them at the published tags instead
      awk -v v="$STAGING_V" '$2=="=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " v}' "$KGOMOD"
      printf ')\n'
    } >"$M/go.mod"
    (cd "$M" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$KV" "k8s.io/kubernetes/cmd/kube-controller-manager@v$KV" "k8s.io/kubernetes/cmd/kube-scheduler@v$KV" >/dev/null 2>&1) ||
      { (cd "$M" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$KV"); exit 1; }
    touch "$M/.ok"
  fi
  MINOR=${KV#*.}; MINOR=${MINOR%%.*}
  LDF="-s -w -X k8s.io/component-base/version.gitVersion=v$KV -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=v$KV"
  log "building kube-apiserver kube-controller-manager kube-scheduler v$KV"
  (cd "$M" && go build -trimpath -ldflags "$LDF" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
fi

# --- etcd ----------------------------------------------------------------------------------------
if [ -z "${K8S_CI_ETCD_BIN:-}" ] && need etcd; then
  M=$CACHE/mod-etcd-$EV
  mkdir -p "$M"
  # go install pkg@version refuses etcd (its go.mod has replace directives), so use a tools module
  (cd "$M" && { [ -f go.mod ] || printf 'module etcdcitools\n\ngo 1.26.0\n' >go.mod; } &&
    go get -tool "go.etcd.io/etcd/server/v3@v$EV" >/dev/null 2>&1 &&
    log "building etcd v$EV" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
fi

# --- kwok ----------------------------------------------------------------------------------------
if need kwok; then
  log "building kwok v$WV"
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$WV"
fi

log "done in $(($(date +%s) - t0)) s"
echo "$BIN"
