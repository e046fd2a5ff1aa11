#!/usr/bin/env bash
# Runs a real, local Kubernetes control plane: etcd, kube-apiserver and
# kube-controller-manager built by build.sh, and by default what runs pods:
# kube-scheduler, kwok with one fake Node (pods go Running, then Ready after a
# start-up delay, and are removed when deleted) and metrics-server (resource
# metrics, `kubectl top`). No Docker, no kubelet, no containers.
#
#   cluster.sh up     [--dir D] [--watch-pid P] [--no-pods] [--with keda]   start (errors if already running)
#   cluster.sh down   [--dir D]                                             stop and remove state, keep logs
#   cluster.sh status [--dir D]                                             exit 0 only when healthy
#
# D defaults to target/cluster; a relative D is taken from the repo root.
# With --watch-pid P the cluster tears itself down once process P exits, so a
# crashed or killed test binary never leaves daemons behind. --no-pods (or
# CLUSTER_PODS=0) starts only etcd, kube-apiserver and kube-controller-manager.
# --with keda (or CLUSTER_WITH=keda) also builds (build-keda.sh, cached) and
# starts KEDA's operator and metrics adapter (keda.sh); the adapter then owns
# the cluster's one external.metrics.k8s.io APIService.
#
# Extra flags for debugging: CLUSTER_ETCD_ARGS, CLUSTER_APISERVER_ARGS,
# CLUSTER_KCM_ARGS, CLUSTER_SCHEDULER_ARGS, CLUSTER_KWOK_ARGS,
# CLUSTER_METRICS_SERVER_ARGS (word-split). CLUSTER_ADVERTISE_ADDRESS overrides
# the default-route address. CLUSTER_KCM_CONTROLLERS overrides the controller
# list. CLUSTER_POD_READY_DELAY_MS (3000) is the default start-up delay between
# Running and Ready; a pod's annotation pod-ready.stage.kwok.x-k8s.io/delay
# ("10s") overrides it.
# -E: the ERR trap that tears a failed `up` down also fires in functions.
set -Eeuo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
root=$(cd "$(dirname "$self")/../.." && pwd)
readonly self root

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { [[ ${quiet:-} ]] || echo "cluster.sh: $*" >&2; }

usage() {
  sed -n '8,19p' "$self" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cmd=${1:-}; [[ $cmd ]] || usage; shift
dir=$root/target/cluster watch_pid="" quiet="" pods=${CLUSTER_PODS:-1} with=${CLUSTER_WITH:-}
while (($#)); do
  case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    --watch-pid) watch_pid=${2:?--watch-pid needs a value}; shift 2 ;;
    --watch-pid=*) watch_pid=${1#--watch-pid=}; shift ;;
    --quiet) quiet=1; shift ;;
    --no-pods) pods=0; shift ;;
    --with) with=${2:?--with needs a value}; shift 2 ;;
    --with=*) with=${1#--with=}; shift ;;
    *) usage ;;
  esac
done
[[ $pods == [01] ]] || die "CLUSTER_PODS must be 0 or 1, not '$pods'"
case $with in "") keda=0 ;; keda) keda=1 ;; *) die "--with knows only keda, not '$with'" ;; esac
[[ $dir == /* ]] || dir=$root/$dir
dir=$(realpath -m "$dir")
# `down` deletes files in $dir; refuse directories that hold other things.
case $dir in / | "$root" | "$HOME" | "$root/target") die "refusing --dir $dir" ;; esac
pki=$dir/pki

# --- process bookkeeping -----------------------------------------------------
# Every daemon's command line contains $dir, which guards against killing an
# unrelated process that reused a pid from a stale pid file.
ours() { # pid
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $cmdline == *"$dir/"* || $cmdline == *"$dir "* ]]
}

pid_of() { if [[ -f $dir/$1.pid ]]; then cat "$dir/$1.pid"; fi; }

# In start order; `down` stops them in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server keda-operator keda-adapter)
# shellcheck source=tests/controlplane/keda.sh
source "$(dirname "$self")/keda.sh"

running_components() {
  local c
  for c in "${components[@]}"; do
    if ours "$(pid_of "$c")"; then echo "$c"; fi
  done
}

# Starts a daemon in its own session so a Ctrl-C aimed at `cargo test` or make
# reaches only the watcher, which then tears down in order. stdio goes to the
# log because Rust's Command::output() would otherwise wait on our pipes.
spawn() { # name, argv...
  local name=$1; shift
  setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  echo $! >"$dir/$name.pid"
}

terminate() { # timeout seconds, component...: SIGTERM, then SIGKILL
  local timeout=$1 c pid pids=()
  local deadline=$((SECONDS + timeout))
  shift
  for c in "$@"; do
    pid=$(pid_of "$c")
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); fi
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do
    # `ours`, not `kill -0`: a zombie child of this shell counts as gone.
    while ours "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if ours "$pid"; then
      say "pid $pid ignored SIGTERM for ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

stop() {
  # An APIService whose server is gone breaks discovery, and with it kubectl
  # and namespace deletion, for every client: unregister it first.
  [[ ${apiserver_port:-} ]] || apiserver_port=$(sed -n 's/^APISERVER_PORT=//p' "$dir/env" 2>/dev/null || true)
  if ours "$(pid_of metrics-server)"; then
    api DELETE /apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io >/dev/null 2>&1 || true
  fi
  if ours "$(pid_of keda-adapter)"; then unregister_keda; fi
  # KEDA and the pod components before the apiserver, so none of them spends
  # its shutdown retrying a vanished apiserver.
  terminate 10 keda-adapter keda-operator
  terminate 10 metrics-server kwok kube-scheduler
  # etcd last: an apiserver that loses etcd first hangs until SIGKILL
  # instead of exiting in ~3s.
  terminate 15 kube-controller-manager kube-apiserver
  terminate 10 etcd
  # The watcher may be the process running this very `down`; spare it.
  local pid c; pid=$(pid_of watcher)
  if [[ $pid != "$$" ]] && ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  rm -rf "$dir/etcd-data" "$pki" "$dir/kubeconfig" "$dir/env" "$dir/kube-scheduler.yaml" "$dir/kwok.yaml"
  for c in "${components[@]}" watcher; do rm -f "$dir/$c.pid"; done
}

# --- helpers for `up` --------------------------------------------------------
used_ports=" "
free_port() {
  # Below the ephemeral range (32768+ on Linux) so outgoing connections never
  # collide with a port picked here.
  local p tries=0
  while ((tries++ < 200)); do
    p=$((20000 + RANDOM % 12000))
    [[ $used_ports == *" $p "* ]] && continue
    if [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then
      used_ports+="$p "; echo "$p"; return
    fi
  done
  die "no free TCP port found"
}

advertise_address() {
  # The address is only published in the `kubernetes` Endpoints, which nothing
  # here dials, but it must not be loopback: the apiserver then logs an error
  # every 10s and never writes those Endpoints. Without the flag it needs a
  # default route. Any other address works, even one not on this host.
  if [[ ${CLUSTER_ADVERTISE_ADDRESS:-} ]]; then echo "$CLUSTER_ADVERTISE_ADDRESS"; return; fi
  local a
  a=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}')
  [[ $a ]] || a=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}')
  echo "${a:-192.0.2.1}" # TEST-NET-1 when the host has no usable address
}

gen_certs() { # control-plane | pods | keda
  mkdir -p "$pki"
  local cnf=$pki/openssl.cnf
  cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[signing]
database = $ENV::CA_DB/index.txt
serial = $ENV::CA_DB/serial
new_certs_dir = $ENV::CA_DB
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = optional
organizationName = optional
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = $ENV::SAN
[peer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
authorityKeyIdentifier = keyid
subjectAltName = $ENV::SAN
EOF
  export SAN="" CA_DB=$pki/ca-db
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null; }
  # Every certificate is valid from 10 minutes ago, so a process whose
  # clock is minutes behind (the clock-skew tests run one 3 minutes slow)
  # still accepts the apiserver's. openssl 3.0's req and x509 cannot set
  # notBefore; `openssl ca -startdate` can.
  local start db=$pki/ca-db
  start=$(date -u -d '-10 minutes' +%Y%m%d%H%M%SZ)
  mkdir -p "$db"
  sign() { # name, subject, extensions, signer (a CA name, or "self")
    : >"$db/index.txt"
    openssl rand -hex 8 >"$db/serial"
    local signer=(-selfsign -keyfile "$pki/$1.key")
    [[ $4 != self ]] && signer=(-cert "$pki/$4.crt" -keyfile "$pki/$4.key")
    openssl req -new -key "$pki/$1.key" -subj "$2" -config "$cnf" -out "$pki/$1.csr" 2>/dev/null
    openssl ca -batch -config "$cnf" -name signing "${signer[@]}" -in "$pki/$1.csr" \
      -startdate "$start" -days 3650 -md sha256 -notext -preserveDN \
      -extfile "$cnf" -extensions "$3" -outdir "$db" -out "$pki/$1.crt" 2>/dev/null
    rm -f "$pki/$1.csr"
  }
  ca() { # name, CN
    key "$1"
    sign "$1" "/CN=$2" ca self
  }
  leaf() { # name, ca, subject, extensions
    key "$1"
    sign "$1" "$3" "$4" "$2"
  }
  if [[ $1 == pods ]]; then
    leaf kube-scheduler client-ca "/O=system:masters/CN=system:kube-scheduler" client
    leaf kwok client-ca "/O=system:masters/CN=kwok" client
    leaf metrics-server-client client-ca "/O=system:masters/CN=system:metrics-server" client
    # The aggregator checks the name of the APIService's Service.
    SAN="DNS:metrics-server.kube-system.svc,IP:127.0.0.1"
    leaf metrics-server ca /CN=metrics-server server
    return
  fi
  if [[ $1 == keda ]]; then
    # Neither in system:masters: they get KEDA's own RBAC (keda.sh).
    leaf keda-operator client-ca /CN=keda-operator client
    leaf keda-adapter client-ca /CN=keda-metrics-apiserver client
    # One certificate for both ends of their mutual TLS, which the adapter
    # also serves to the aggregator (it checks the Service's name).
    SAN="DNS:keda-metrics-apiserver.keda.svc,DNS:keda-operator.keda.svc,DNS:localhost,IP:127.0.0.1"
    leaf keda ca /CN=keda peer
    mkdir -p "$pki/keda"
    cp "$pki/ca.crt" "$pki/keda/ca.crt"
    cp "$pki/keda.crt" "$pki/keda/tls.crt"
    cp "$pki/keda.key" "$pki/keda/tls.key"
    return
  fi
  ca ca scale-governor-test-serving-ca
  SAN="IP:127.0.0.1,DNS:localhost,IP:$advertise,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  leaf apiserver ca /CN=kube-apiserver server
  ca client-ca scale-governor-test-client-ca
  leaf admin client-ca "/O=system:masters/CN=admin" client
  # The controller manager runs every controller under its own identity
  # (no --use-service-account-credentials), so it needs more than the
  # bootstrap system:kube-controller-manager role grants.
  leaf kcm client-ca "/O=system:masters/CN=system:kube-controller-manager" client
  ca front-proxy-ca scale-governor-test-front-proxy-ca
  leaf front-proxy-client front-proxy-ca /CN=front-proxy-client client
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # path, user, cert name
  local b64="base64 -w0"
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: scale-governor-test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$pki/$3.crt")
    client-key-data: $($b64 <"$pki/$3.key")
contexts:
- name: scale-governor-test
  context: {cluster: scale-governor-test, user: $2}
current-context: scale-governor-test
EOF
  chmod 600 "$1"
}

wait_for() { # what, component, timeout seconds, command...
  local what=$1 component=$2 timeout=$3 deadline=$((SECONDS + $3)); shift 3
  until "$@" >/dev/null 2>&1; do
    if ! ours "$(pid_of "$component")"; then
      echo "cluster.sh: $component exited during startup; last log lines:" >&2
      tail -n 25 "$dir/$component.log" >&2 || true
      return 1
    fi
    ((SECONDS < deadline)) || { echo "cluster.sh: timed out after ${timeout}s waiting for $what (log: $dir/$component.log)" >&2; return 1; }
    sleep 0.2
  done
}

api() { # method, path, curl args...
  local method=$1 path=$2
  shift 2
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    -X "$method" "https://127.0.0.1:$apiserver_port$path" "$@"
}
apiserver_get() { api GET "$1" --max-time 2; }
create() { api POST "$1" -H "Content-Type: application/yaml" --data-binary @- >/dev/null; } # path; YAML on stdin

# --- the pod components (helpers of `up`, which declares the ports) ---------
node=kwok-node
ready_delay_ms=${CLUSTER_POD_READY_DELAY_MS:-3000}

# Starts kube-scheduler, metrics-server and kwok, and creates the fake Node.
start_pods() {
  [[ $ready_delay_ms =~ ^[0-9]+$ ]] || die "CLUSTER_POD_READY_DELAY_MS must be a number of milliseconds, not '$ready_delay_ms'"
  kubeconfig "$pki/kube-scheduler.kubeconfig" system:kube-scheduler kube-scheduler
  kubeconfig "$pki/kwok.kubeconfig" kwok kwok
  kubeconfig "$pki/metrics-server.kubeconfig" system:metrics-server metrics-server-client
  cat >"$dir/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $pki/kube-scheduler.kubeconfig
leaderElection:
  leaderElect: false
EOF
  # shellcheck disable=SC2086
  spawn kube-scheduler "$pod_bin/kube-scheduler" --config="$dir/kube-scheduler.yaml" \
    --secure-port="$scheduler_port" --bind-address=127.0.0.1 --cert-dir="$pki/kube-scheduler" \
    --authentication-kubeconfig="$pki/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$pki/kube-scheduler.kubeconfig" \
    ${CLUSTER_SCHEDULER_ARGS:-}
  # It scrapes kwok's kubelet endpoint (a self-signed certificate) every 10 s,
  # the shortest resolution it accepts.
  # shellcheck disable=SC2086
  spawn metrics-server "$pod_bin/metrics-server" --kubeconfig="$pki/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$pki/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$pki/metrics-server.kubeconfig" \
    --secure-port="$metrics_server_port" --bind-address=127.0.0.1 \
    --tls-cert-file="$pki/metrics-server.crt" --tls-private-key-file="$pki/metrics-server.key" \
    --kubelet-insecure-tls --kubelet-use-node-status-port --kubelet-preferred-address-types=InternalIP \
    --metric-resolution=10s --kubelet-request-timeout=5s \
    ${CLUSTER_METRICS_SERVER_ARGS:-}

  # The admission plugin TaintNodesByCondition gives every new Node the
  # not-ready taint, and only the node-lifecycle controller (not run here)
  # would lift it: take it off, so plain pods schedule.
  create /api/v1/nodes <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {kubernetes.io/hostname: $node, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
  annotations:
    kwok.x-k8s.io/node: fake
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/$node/metrics/resource
EOF
  api PATCH "/api/v1/nodes/$node" -H "Content-Type: application/merge-patch+json" \
    --data '{"spec":{"taints":null}}' >/dev/null
  # What kwok plays (tests/controlplane/kwok/: the stages of the Node and of
  # pods, the resource metrics and usage) is its configuration file rather
  # than objects of its CRDs: nothing to create and wait for, and only these
  # stages (a Node or Pod stage in the file replaces kwok's built-in ones).
  local f
  for f in "$(dirname "$self")"/kwok/*.yaml; do
    echo ---
    sed "s/POD_READY_DELAY_MS/$ready_delay_ms/" "$f"
  done >"$dir/kwok.yaml"
  # Pod IPs come from 10.244.0.0/16, apart from the Service range.
  # shellcheck disable=SC2086
  spawn kwok "$pod_bin/kwok" --kubeconfig="$pki/kwok.kubeconfig" --config="$dir/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --manage-nodes-with-label-selector= --manage-single-node= \
    --cidr=10.244.0.1/16 --node-ip=127.0.0.1 \
    --node-port="$kwok_port" --server-address="127.0.0.1:$kwok_port" \
    ${CLUSTER_KWOK_ARGS:-}
}

# Waits until pods can run and `kubectl top` can answer: the scheduler ready,
# the Node Ready, metrics-server registered as metrics.k8s.io and Available.
wait_pods() {
  wait_for "kube-scheduler /readyz" kube-scheduler 60 \
    curl -fsSk --max-time 2 "https://127.0.0.1:$scheduler_port/readyz"
  wait_for "Node $node Ready" kwok 30 node_ready
  # The kube-system namespace may appear just after /readyz.
  wait_for "the metrics-server Service" kube-apiserver 30 create_metrics_service
  wait_for "metrics-server /livez" metrics-server 60 \
    curl -fsS --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$metrics_server_port/livez"
  create /apis/apiregistration.k8s.io/v1/apiservices <<EOF
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: $metrics_server_port}
  caBundle: $(base64 -w0 <"$pki/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
  wait_for "APIService v1beta1.metrics.k8s.io Available" metrics-server 60 metrics_api_available
}

# ?pretty=0: the apiserver indents JSON for curl. grep reads it all: with -q
# it could exit early and fail curl with SIGPIPE.
node_ready() {
  apiserver_get "/api/v1/nodes/$node?pretty=0" | grep '"type":"Ready","status":"True"' >/dev/null
}

# The aggregator dials localhost:<APIService port> for an ExternalName
# Service (aggregator routing is off), and checks this name in the
# certificate.
create_metrics_service() {
  create /api/v1/namespaces/kube-system/services <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec: {type: ExternalName, externalName: localhost}
EOF
}

metrics_api_available() {
  apiserver_get "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io?pretty=0" |
    grep '"type":"Available","status":"True"' >/dev/null
}

# A port found free can be taken by another process before the daemon binds
# it (the tests start clusters side by side): a daemon that failed on that
# is stopped and started again on other ports; any other failure ends `up`.
port_taken() { # component
  local tries_var=${1//-/_}_tries
  printf -v "$tries_var" '%s' $((${!tries_var:-0} + 1))
  if ! grep -q "address already in use" "$dir/$1.log" 2>/dev/null || ((${!tries_var} >= 3)); then
    false # the ERR trap tears down
  fi
  say "$1's port was taken by another process; starting it on another"
  terminate 5 "$1"
  if [[ $1 == etcd ]]; then rm -rf "$dir/etcd-data"; fi
  : >"$dir/$1.log"
}

start_etcd() {
  # shellcheck disable=SC2086 # the CLUSTER_*_ARGS are meant to be word-split
  spawn etcd "$bin/etcd" --name=scale-governor-test --data-dir="$dir/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="scale-governor-test=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync=true --log-level=warn ${CLUSTER_ETCD_ARGS:-}
}

start_apiserver() {
  # shellcheck disable=SC2086
  spawn kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --secure-port="$apiserver_port" --bind-address=127.0.0.1 --advertise-address="$advertise" \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount --client-ca-file="$pki/client-ca.crt" \
    --service-account-issuer="https://127.0.0.1:$apiserver_port/" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    ${CLUSTER_APISERVER_ARGS:-}
}

up() {
  mkdir -p "$dir"
  # Held only while starting (daemons get 9>&-): a concurrent `up` fails fast.
  exec 9>"$dir/.lock"
  flock -n 9 || die "another 'up' is already starting a cluster in $dir"
  local running
  running=$(running_components | tr '\n' ' ')
  local stop_cmd="tests/controlplane/cluster.sh down --dir ${dir#"$root"/}"
  [[ $dir != "$root/target/cluster" ]] || stop_cmd="make cluster-down"
  [[ -z $running ]] || die "a cluster is already running in $dir (${running% }); stop it first: $stop_cmd"
  if [[ -f $dir/env || -d $dir/etcd-data ]]; then say "removing stale state in $dir"; fi
  stop
  rm -f "$dir"/*.log

  local start=$SECONDS bin dirs pod_bin="" keda_bin=""
  # shellcheck disable=SC2046 # no argument, or --no-pods
  dirs=$("$(dirname "$self")/build.sh" $( ((pods)) || echo --no-pods)) || exit
  bin=$(sed -n 1p <<<"$dirs") pod_bin=$(sed -n 2p <<<"$dirs")
  if ((keda)); then keda_bin=$("$(dirname "$self")/build-keda.sh") || exit; fi
  say "binaries in $bin${pod_bin:+ and $pod_bin}${keda_bin:+ and $keda_bin}"
  advertise=$(advertise_address)
  trap 'echo "cluster.sh: startup failed, tearing down" >&2; stop; exit 1' ERR
  # The daemons live in their own sessions, so an interrupted `up` must
  # clean up itself.
  trap 'echo "cluster.sh: interrupted, tearing down" >&2; stop; exit 130' INT TERM

  if [[ $watch_pid ]]; then
    kill -0 "$watch_pid" 2>/dev/null || die "--watch-pid $watch_pid is not running"
    # Started before the daemons so a caller that dies mid-startup is covered.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down --quiet --dir "$3"' \
      cluster-watcher "$watch_pid" "$self" "$dir" </dev/null >>"$dir/watcher.log" 2>&1 9>&- &
    echo $! >"$dir/watcher.pid"
  fi

  local etcd_port etcd_peer_port apiserver_port kcm_port scheduler_port="" kwok_port="" metrics_server_port=""
  etcd_port=$(free_port); etcd_peer_port=$(free_port)
  apiserver_port=$(free_port); kcm_port=$(free_port)
  if ((pods)); then scheduler_port=$(free_port) kwok_port=$(free_port) metrics_server_port=$(free_port); fi
  local keda_health_port="" keda_grpc_port="" keda_adapter_port="" keda_metrics_port=""
  if ((keda)); then
    keda_health_port=$(free_port) keda_grpc_port=$(free_port)
    keda_adapter_port=$(free_port) keda_metrics_port=$(free_port)
  fi

  # etcd needs no certificates: it starts while they are made.
  start_etcd
  gen_certs control-plane
  # The pod components' and KEDA's certificates are made while the
  # apiserver starts (one after the other: they share the CA's database).
  local more_certs=""
  if ((pods || keda)); then
    (
      trap - ERR
      if ((pods)); then gen_certs pods; fi
      if ((keda)); then gen_certs keda; fi
    ) &
    more_certs=$!
  fi
  until wait_for "etcd /health" etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health"; do
    port_taken etcd
    etcd_port=$(free_port); etcd_peer_port=$(free_port)
    start_etcd
  done

  start_apiserver
  until wait_for "kube-apiserver /readyz" kube-apiserver 120 apiserver_get /readyz; do
    port_taken kube-apiserver
    apiserver_port=$(free_port)
    start_apiserver
  done

  kubeconfig "$pki/kcm.kubeconfig" system:kube-controller-manager kcm
  # namespace-controller is on so a deleted test namespace really goes away
  # in a cluster shared by several test binaries.
  # shellcheck disable=SC2086
  spawn kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$pki/kcm.kubeconfig" --leader-elect=false \
    --secure-port="$kcm_port" --bind-address=127.0.0.1 --cert-dir="$pki/kcm" \
    --controllers="${CLUSTER_KCM_CONTROLLERS:-deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,namespace-controller}" \
    --horizontal-pod-autoscaler-sync-period=1s --kube-api-content-type=application/json \
    ${CLUSTER_KCM_ARGS:-}
  if [[ $more_certs ]]; then wait "$more_certs"; fi
  if ((pods)); then start_pods; fi
  if ((keda)); then start_keda; fi
  wait_for "kube-controller-manager /healthz" kube-controller-manager 60 \
    curl -fsSk --max-time 2 "https://127.0.0.1:$kcm_port/healthz"
  if ((pods)); then wait_pods; fi
  if ((keda)); then wait_keda; fi

  # Written last: its presence means "ready", which the Rust harness relies on.
  kubeconfig "$dir/kubeconfig.tmp" admin admin
  mv "$dir/kubeconfig.tmp" "$dir/kubeconfig"
  cat >"$dir/env.tmp" <<EOF
CLUSTER_DIR=$dir
KUBECONFIG=$dir/kubeconfig
BIN_DIR=$bin
K8S_VERSION=$("$bin/kube-apiserver" --version | awk '{print $2}')
ETCD_VERSION=${bin##*-etcd-}
KUBECTL=$bin/kubectl
APISERVER_URL=https://127.0.0.1:$apiserver_port
APISERVER_PORT=$apiserver_port
ETCD_PORT=$etcd_port
ETCD_PEER_PORT=$etcd_peer_port
KCM_PORT=$kcm_port
ADVERTISE_ADDRESS=$advertise
ETCD_PID=$(pid_of etcd)
APISERVER_PID=$(pid_of kube-apiserver)
KCM_PID=$(pid_of kube-controller-manager)
WATCHER_PID=$(pid_of watcher)
WATCH_PID=$watch_pid
PODS=$pods
EOF
  if ((pods)); then
    cat "$pod_bin/versions" >>"$dir/env.tmp"
    cat >>"$dir/env.tmp" <<EOF
POD_BIN_DIR=$pod_bin
NODE=$node
POD_READY_DELAY_MS=$ready_delay_ms
SCHEDULER_PORT=$scheduler_port
KWOK_PORT=$kwok_port
METRICS_SERVER_PORT=$metrics_server_port
SCHEDULER_PID=$(pid_of kube-scheduler)
KWOK_PID=$(pid_of kwok)
METRICS_SERVER_PID=$(pid_of metrics-server)
EOF
  fi
  echo "KEDA=$keda" >>"$dir/env.tmp"
  if ((keda)); then
    cat "$keda_bin/versions" >>"$dir/env.tmp"
    cat >>"$dir/env.tmp" <<EOF
KEDA_BIN_DIR=$keda_bin
KEDA_OPERATOR_HEALTH_PORT=$keda_health_port
KEDA_GRPC_PORT=$keda_grpc_port
KEDA_ADAPTER_PORT=$keda_adapter_port
KEDA_ADAPTER_METRICS_PORT=$keda_metrics_port
KEDA_OPERATOR_PID=$(pid_of keda-operator)
KEDA_ADAPTER_PID=$(pid_of keda-adapter)
EOF
  fi
  echo "STARTUP_SECONDS=$((SECONDS - start))" >>"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  trap - ERR INT TERM
  say "ready in $((SECONDS - start))s: apiserver https://127.0.0.1:$apiserver_port${watch_pid:+, torn down when pid $watch_pid exits}"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

down() {
  if [[ ! -f $dir/env && ! -d $dir/etcd-data && ! -f $dir/watcher.pid && ! -f $dir/etcd.pid ]]; then
    say "no cluster in $dir"; return
  fi
  local running; running=$(running_components | tr '\n' ' ')
  stop
  if [[ $running ]]; then say "stopped ${running% } in $dir (logs kept)"; else say "no cluster running in $dir; state removed"; fi
}

status() {
  [[ -f $dir/env ]] || { echo "cluster.sh: no cluster in $dir"; return 1; }
  local apiserver_port c ok=0 version
  env_value() { sed -n "s/^$1=//p" "$dir/env"; }
  apiserver_port=$(env_value APISERVER_PORT) node=$(env_value NODE)
  grep -E '^(KUBECONFIG|APISERVER_URL|BIN_DIR|POD_BIN_DIR|KEDA_BIN_DIR|WATCH_PID)=' "$dir/env"
  local list=(etcd kube-apiserver kube-controller-manager)
  [[ $(env_value PODS) == 1 ]] && list+=(kube-scheduler kwok metrics-server)
  [[ $(env_value KEDA) == 1 ]] && list+=(keda-operator keda-adapter)
  for c in "${list[@]}"; do
    case $c in
      etcd) version=$(env_value ETCD_VERSION) ;;
      kwok) version=$(env_value KWOK_VERSION) ;;
      metrics-server) version=$(env_value METRICS_SERVER_VERSION) ;;
      keda-*) version=$(env_value KEDA_VERSION) ;;
      *) version=$(env_value K8S_VERSION) ;;
    esac
    if ours "$(pid_of "$c")"; then
      echo "$c ${version:-?}: running (pid $(pid_of "$c"))"
    else
      echo "$c ${version:-?}: NOT RUNNING"; ok=1
    fi
  done
  if apiserver_get /readyz >/dev/null 2>&1; then echo "readyz: ok"; else echo "readyz: FAILING"; ok=1; fi
  if [[ $(env_value PODS) == 1 ]]; then
    if node_ready 2>/dev/null; then echo "node $node: Ready"; else echo "node $node: NOT READY"; ok=1; fi
    if metrics_api_available 2>/dev/null; then
      echo "metrics.k8s.io: Available"
    else
      echo "metrics.k8s.io: NOT AVAILABLE"; ok=1
    fi
  else
    echo "pods: not run (--no-pods); no scheduler, kwok or metrics-server"
  fi
  if [[ $(env_value KEDA) == 1 ]]; then
    if keda_api_available 2>/dev/null; then
      echo "external.metrics.k8s.io (KEDA): Available"
    else
      echo "external.metrics.k8s.io (KEDA): NOT AVAILABLE"; ok=1
    fi
  fi
  return $ok
}

case $cmd in
  up) up ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
