# shellcheck shell=bash
# shellcheck disable=SC2154 # $bin, $pki, $keda_bin and the ports: up's locals
# KEDA for the local control plane: its operator and its metrics adapter (built
# by build-keda.sh) run as local processes, as the rest of the control plane
# does, with KEDA's CRDs applied and the adapter registered as the cluster's
# one `v1beta1.external.metrics.k8s.io` APIService. Sourced by cluster.sh for
# `up --with keda`; uses its helpers (spawn, api, create, wait_for, kubeconfig,
# free_port) and its variables ($dir, $pki, $bin).
#
# Each runs under an identity of its own, not system:masters, so the
# governor's ledger, Events and `status` name them:
# - the operator as the user `keda-operator`, bound to the ClusterRole and
#   Role of KEDA's config/rbac/role.yaml;
# - the adapter as `keda-metrics-apiserver`: read ScaledObjects, delegate
#   authentication and authorization, read the apiserver's client CAs.
# The operator's gRPC metrics service and the adapter talk over mutual TLS
# with one certificate (ca.crt, tls.crt, tls.key in <pki>/keda), which the
# adapter also serves to the aggregator.

keda_ns=keda
keda_apiservice=v1beta1.external.metrics.k8s.io

# The adapter's grants besides delegated authentication: it lists the
# ScaledObjects whose metrics it serves and asks the operator for the values.
keda_rbac() {
  cat "$keda_bin/rbac.yaml"
  cat <<EOF
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: keda-operator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: keda-operator}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-operator, namespace: $keda_ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: keda-operator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: keda-operator}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: keda-metrics-apiserver}
rules:
- apiGroups: [keda.sh]
  resources: [scaledobjects, scaledjobs, triggerauthentications, clustertriggerauthentications]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-metrics-apiserver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: keda-metrics-apiserver}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: keda-metrics-apiserver}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-metrics-apiserver-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: keda-metrics-apiserver}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: keda-metrics-apiserver-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: keda-metrics-apiserver}]
EOF
}

keda_kubectl() { "$bin/kubectl" --kubeconfig="$pki/admin.kubeconfig" "$@"; }

# Applies the CRDs, the namespace and the RBAC, then starts the operator and
# the adapter.
start_keda() {
  kubeconfig "$pki/admin.kubeconfig" admin admin
  kubeconfig "$pki/keda-operator.kubeconfig" keda-operator keda-operator
  kubeconfig "$pki/keda-adapter.kubeconfig" keda-metrics-apiserver keda-adapter
  keda_kubectl apply --server-side -f "$keda_bin/crds" >/dev/null
  keda_kubectl create namespace "$keda_ns" >/dev/null
  keda_rbac | keda_kubectl apply -f - >/dev/null
  keda_kubectl wait --for=condition=Established --timeout=60s -f "$keda_bin/crds" >/dev/null
  # Out of the cluster, the namespaces come from the environment.
  # shellcheck disable=SC2086
  WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=$keda_ns POD_NAMESPACE=$keda_ns \
    spawn keda-operator "$keda_bin/keda-operator" --kubeconfig="$pki/keda-operator.kubeconfig" \
    --metrics-bind-address=0 --health-probe-bind-address="127.0.0.1:$keda_health_port" \
    --metrics-service-bind-address="127.0.0.1:$keda_grpc_port" \
    --cert-dir="$pki/keda" --ca-dir="$pki/keda" \
    --enable-webhook-patching=false --enable-apiservice-patching=false \
    ${CLUSTER_KEDA_OPERATOR_ARGS:-}
  # --lister-kubeconfig is what its own clients use; without it the adapter
  # looks for an in-cluster configuration. --port is its plain /metrics.
  # shellcheck disable=SC2086
  WATCH_NAMESPACE="" KEDA_CLUSTER_OBJECT_NAMESPACE=$keda_ns POD_NAMESPACE=$keda_ns \
    spawn keda-adapter "$keda_bin/keda-adapter" --kubeconfig="$pki/keda-adapter.kubeconfig" \
    --lister-kubeconfig="$pki/keda-adapter.kubeconfig" \
    --authentication-kubeconfig="$pki/keda-adapter.kubeconfig" \
    --authorization-kubeconfig="$pki/keda-adapter.kubeconfig" \
    --secure-port="$keda_adapter_port" --bind-address=127.0.0.1 --cert-dir="$pki/keda" \
    --tls-cert-file="$pki/keda/tls.crt" --tls-private-key-file="$pki/keda/tls.key" \
    --metrics-service-address="127.0.0.1:$keda_grpc_port" --port="$keda_metrics_port" \
    ${CLUSTER_KEDA_ADAPTER_ARGS:-}
}

# Waits until the operator is ready and the adapter is registered and
# Available, so an HPA on one of KEDA's metrics reads it at once.
wait_keda() {
  wait_for "keda-operator /readyz" keda-operator 60 \
    curl -fsS --max-time 2 "http://127.0.0.1:$keda_health_port/readyz"
  wait_for "keda-adapter /readyz" keda-adapter 60 \
    curl -fsS --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$keda_adapter_port/readyz"
  # The aggregator dials localhost:<port> for an ExternalName Service and
  # checks this name in the adapter's certificate.
  create "/api/v1/namespaces/$keda_ns/services" <<EOF
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $keda_ns}
spec: {type: ExternalName, externalName: localhost}
EOF
  create /apis/apiregistration.k8s.io/v1/apiservices <<EOF
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: $keda_apiservice
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {name: keda-metrics-apiserver, namespace: $keda_ns, port: $keda_adapter_port}
  caBundle: $(base64 -w0 <"$pki/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
  wait_for "APIService $keda_apiservice Available" keda-adapter 60 keda_api_available
}

keda_api_available() {
  apiserver_get "/apis/apiregistration.k8s.io/v1/apiservices/$keda_apiservice?pretty=0" |
    grep '"type":"Available","status":"True"' >/dev/null
}

# Before the adapter stops: an APIService whose server is gone breaks
# discovery for every client.
unregister_keda() {
  api DELETE "/apis/apiregistration.k8s.io/v1/apiservices/$keda_apiservice" >/dev/null 2>&1 || true
}
