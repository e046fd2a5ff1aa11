//go:build tools

// Package tools keeps the control-plane commands in the module graph.
// kubectl is built too so tests and the demo never depend on whatever
// version (if any) is on PATH. kube-scheduler is built by build-pods.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
