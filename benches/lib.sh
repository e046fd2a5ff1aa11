# Shell helpers shared by the benchmarks that run the real `serve` against a
# dedicated local control plane (benches/load.sh, recommender.sh, ledger.sh,
# soak.sh) and the exit trap they share.
# Callers set: bench (their name, for messages), governor (the binary), out
# (the output directory), KUBECONFIG; certs (default $out/certs) is where
# serve finds tls.crt and tls.key.
# shellcheck shell=bash disable=SC2154

say() { echo "${bench:-bench}: $*" >&2; }
die() { say "$*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve_pid="" https_port="" admin_port=""
# Helper processes (peers, a demand server, churn, a second replica) that the
# exit trap stops with serve and the control plane.
bench_pids=()

# On any exit: stop the helpers, serve and the control plane; on failure, say
# where the logs are. Benches with a control plane set cluster and cluster_dir
# before sourcing.
bench_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  ((${#bench_pids[@]})) && { kill "${bench_pids[@]}" 2>/dev/null || true; }
  stop_serve || true
  [[ ${cluster:-} ]] && { "$cluster" down --dir "$cluster_dir" >/dev/null 2>&1 || true; }
  ((status == 0)) || say "failed (exit $status); logs in $out${cluster:+ and $cluster_dir}"
  exit "$status"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics"; }

# metric NAME [LABEL_FILTER]: the sum of a metric's samples (0 if none).
metric() {
  metrics | awk -v name="$1" -v filter="${2:-}" '
    $1 == name || index($1, name "{") == 1 { if (filter == "" || index($1, filter)) s += $2 }
    END { printf "%.6f\n", s }'
}

rss_mib() { # pid field: VmRSS or VmHWM in MiB
  awk -v f="$2:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

cpu_seconds() { # pid: user + system CPU seconds so far, all threads
  # Fields resume after the command name's ')'; utime, stime are 12, 13 there.
  sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($12 + $13) / hz}'
}

# start_serve LABEL WORKLOADS [serve flags...] [-- wrapper...]: starts serve
# (wrapped, e.g. `taskset -c 0`) and waits until its cache holds WORKLOADS
# Deployments.
start_serve() {
  local label=$1 workloads=$2 flags=() wrapper=()
  shift 2
  while (($#)) && [[ $1 != -- ]]; do flags+=("$1"); shift; done
  (($#)) && shift && wrapper=("$@")
  https_port=$(free_port) admin_port=$(free_port)
  "${wrapper[@]}" "$governor" serve --addr "127.0.0.1:$https_port" --admin-addr "127.0.0.1:$admin_port" \
    --tls-cert "${certs:-$out/certs}/tls.crt" --tls-key "${certs:-$out/certs}/tls.key" \
    --kubeconfig "$KUBECONFIG" --lease-namespace default --identity "bench-$label" \
    --log-format json "${flags[@]}" >>"$out/serve-$label.log" 2>&1 &
  serve_pid=$!
  local started=$SECONDS
  until [[ $(curl -s --max-time 2 "http://127.0.0.1:$admin_port/readyz") == ok ]] &&
    metrics | grep -q "^scale_governor_cache_workloads{kind=\"deployments\"} $workloads\$"; do
    kill -0 "$serve_pid" 2>/dev/null || { tail -n 20 "$out/serve-$label.log" >&2; die "serve exited"; }
    ((SECONDS - started < 180)) || die "serve not ready with $workloads Deployments after 180 s"
    sleep 0.5
  done
  say "serve ($label, pid $serve_pid) ready with $workloads Deployments in $((SECONDS - started)) s"
}

# stop_serve: SIGTERM, then SIGKILL after 25 s; fails if it had to kill.
stop_serve() {
  [[ $serve_pid ]] || return 0
  local pid=$serve_pid status=0
  serve_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  # serve drains for at most 20 s, then releases its Lease.
  for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -KILL "$pid" 2>/dev/null; then
    say "serve (pid $pid) did not stop within 25 s of SIGTERM; killed"
    status=1
  fi
  wait "$pid" 2>/dev/null || true
  return "$status"
}

# hold_lease HOLDER: another replica holds the governor's Lease for an hour.
hold_lease() {
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
  "$KUBECTL" apply -f - >/dev/null <<YAML
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: scale-governor-leader, namespace: default}
spec: {holderIdentity: $1, leaseDurationSeconds: 3600, acquireTime: "$now", renewTime: "$now"}
YAML
}

machine_line() {
  echo "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
}

# The commit the binary was built from, read by build: a report written an
# hour later must not name a commit made in between.
built_from=""

build_line() {
  echo "$(rustc --version), release profile; commit ${built_from:-$(git rev-parse --short HEAD)}"
}

# build: the release scale-governor and the benchmark tool (benches/load),
# whose path goes in `load`.
build() {
  say "building"
  built_from="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates || echo ' with uncommitted changes')"
  cargo build --release --locked --bin scale-governor
  load=$(bench_exe load)
  [[ -x $load ]] || die "could not find the benchmark tool (benches/load)"
}

# bench_exe NAME: builds the bench target NAME and prints its executable.
# Cargo lists every artifact it builds for it (the binary too, in an order
# that varies), so the bench's own is picked by its target name.
bench_exe() {
  cargo bench --locked --bench "$1" --no-run --message-format=json |
    grep -F "\"kind\":[\"bench\"]" | grep -F "\"name\":\"$1\"" |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
}

# cluster_up: a fresh dedicated control plane in $cluster_dir with only the
# namespace controller, so Deployments stay Deployments, and no pod
# components (--no-pods: no scheduler, kwok or metrics-server), so the
# figures stay comparable with the runs before the cluster had them; its env
# sourced.
cluster_up() {
  "$cluster" down --dir "$cluster_dir" >/dev/null 2>&1 || true
  # --watch-pid: even a kill -9 of the benchmark stops the control plane.
  CLUSTER_KCM_CONTROLLERS=namespace-controller "$cluster" up --no-pods --dir "$cluster_dir" --watch-pid $$ >/dev/null
  # shellcheck disable=SC1091 # written by cluster.sh up
  source "$cluster_dir/env"
  export KUBECONFIG
}
