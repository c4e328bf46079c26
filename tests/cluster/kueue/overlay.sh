#!/usr/bin/env bash
# Kueue v0.17.0's main reads its metrics serving certificate from a fixed /etc/kueue/metrics/certs when
# its internal certificate management is off (which it must be here: on, it serves its webhooks for a
# Service name that this control plane, without kube-proxy, cannot route to). The suite builds it with
# that one path read from $KUEUE_METRICS_CERT_DIR instead (the suite's PKI); everything else is upstream.
# Writes the changed main.go and $1/overlay.json for `go build -overlay`, which places that file as the
# package ./kueue of this wrapper module (`packages`); Go refuses overlays of files in the module cache.
set -euo pipefail
go mod download sigs.k8s.io/kueue  # on a cold module cache `go list -m` has no folder to name yet
src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)/cmd/kueue/main.go"
[ -f "$src" ] || { echo "kueue/overlay.sh: no $src" >&2; exit 1; }
sed 's|metricsCertPath := "/etc/kueue/metrics/certs"|metricsCertPath := os.Getenv("KUEUE_METRICS_CERT_DIR")|' \
  "$src" >"$1/main.go"
grep -q KUEUE_METRICS_CERT_DIR "$1/main.go" || { echo "kueue/overlay.sh: the metrics path line changed upstream" >&2; exit 1; }
printf '{"Replace": {"%s": "%s"}}\n' "$PWD/kueue/main.go" "$1/main.go" >"$1/overlay.json"
