#!/usr/bin/env bash
# Build the cluster tests' Go binaries from the Go module proxy, once, into a cache outside the repository.
#
# Each folder tests/cluster/<component>/ with a go.mod is one pinned wrapper module; its file `packages`
# lists the main packages to build (one a line, "." for the folder's own main.go) and `ldflags`, if
# present, the linker flags (versions stamped); `overlay.sh`, if present, writes a `go build -overlay` file
# into the folder it is given (for a one-line change an upstream main needs to run here: it says which and
# why; nothing of upstream is committed). The output folder is named after a hash of the module's
# go.mod, go.sum, Go sources and the Go version, so a changed pin builds anew and an unchanged one is
# reused. Prints "<component> <folder>" per component on stdout; progress goes to stderr.
#
# Usage: tests/cluster/build.sh [COMPONENT...]
#   default: what the suite runs: the control plane, kwok, the training-operator (its own main.go over
#   upstream's packages), Kueue (upstream's main, one line changed by overlay.sh), Volcano
#   (vc-controller-manager, vc-scheduler) and `trainer` (Kubeflow Trainer's and JobSet's upstream mains, one
#   wrapper module). Each is a separate Kubernetes client tree, minutes apiece on 2 cores (docs/kubernetes.md
#   has the figures).
# Env:   DLW_CLUSTER_CACHE (default ~/.cache/dlw-cluster); GOFLAGS etc. as usual.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${DLW_CLUSTER_CACHE:-$HOME/.cache/dlw-cluster}"
mkdir -p "$cache"
if ! command -v go >/dev/null; then
  echo "tests/cluster/build.sh: no Go toolchain on PATH (the cluster tests build Kubernetes from Go modules)" >&2
  exit 3
fi
goversion="$(go env GOVERSION)"

components=("$@")
if [ ${#components[@]} -eq 0 ]; then
  components=(kube kwok training-operator kueue volcano trainer)
fi

for name in "${components[@]}"; do
  dir="$here/$name"
  [ -f "$dir/go.mod" ] || { echo "tests/cluster/build.sh: no component $name" >&2; exit 2; }
  key="$( (cat "$dir"/go.mod "$dir"/go.sum "$dir"/packages "$dir"/ldflags "$dir"/overlay.sh 2>/dev/null; cat "$dir"/*.go 2>/dev/null; \
           echo "$goversion") | sha256sum | cut -c1-12)"
  out="$cache/$name-$key"
  if [ ! -f "$out/.built" ]; then
    echo "building $name ($goversion; first time only, several minutes on 2 cores)..." >&2
    start=$(date +%s)
    mkdir -p "$out"
    ldflags="$(cat "$dir/ldflags" 2>/dev/null || true)"
    overlay=()
    if [ -f "$dir/overlay.sh" ]; then
      mkdir -p "$out/overlay"
      (cd "$dir" && GOFLAGS="${GOFLAGS:-} -mod=mod" bash overlay.sh "$out/overlay")
      overlay=(-overlay "$out/overlay/overlay.json")
    fi
    # -mod=mod: the wrapper's go.sum pins every module; nothing is vendored or committed besides it.
    (cd "$dir" && while read -r pkg; do
        [ -n "$pkg" ] || continue
        GOFLAGS="${GOFLAGS:-} -mod=mod" go build "${overlay[@]}" -trimpath -ldflags "-s -w $ldflags" -o "$out/" "$pkg"
      done <packages)
    echo "$(( $(date +%s) - start ))" >"$out/.built"
    echo "built $name in $(cat "$out/.built") s -> $out" >&2
  fi
  echo "$name $out"
done
