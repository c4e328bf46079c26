#!/usr/bin/env bash
# Build DLW's images with buildah on a local Debian base, no container registry needed (docs/images.md).
#
#   scripts/images.sh [base|notebook|train-base|hub|all|gpu]...   (default: all = base notebook train-base hub)
#
# base        a Debian minbase (debootstrap, from this machine's Debian mirror), cached as a tarball under
#             $DLW_IMAGE_CACHE (~/.cache/dlw/images) and imported into buildah's storage as $DLW_BASE_IMAGE
# notebook    images/notebook/Dockerfile without PyTorch; its node stage: a trixie base + Debian's nodejs 20
# train-base  images/train-base/Dockerfile without PyTorch
# hub         images/hub-standin (JupyterHub 5, standing in for z2jh's hub image), then deploy/hub.Dockerfile
# gpu         notebook-gpu: the notebook image with PyTorch (CUDA wheels from PyPI): GBs, not part of `all`
#
# The same Dockerfiles build FROM the public images (nvidia/cuda, node, the chart's hub) on a real CI; here
# only the build arguments differ. Storage driver vfs and chroot isolation: what runs in an unprivileged
# container sandbox (podman run is refused here). Layers are cached (--layers): a rebuild with nothing
# changed takes seconds. Prints one JSON line per image: {"image", "seconds", "bytes"}.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
CACHE="${DLW_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dlw/images}"
SUITE="${DLW_DEBIAN_SUITE:-bookworm}"
BASE="${DLW_BASE_IMAGE:-localhost/dlw/debian:$SUITE}"
# The notebook's node stage: JupyterLab 4.5's extension builder wants node >= 20.19, which Debian ships
# from trixie on (bookworm's is 18), so that stage builds FROM a trixie base with Debian's nodejs.
NODE_SUITE="${DLW_NODE_SUITE:-trixie}"
NODE_BASE="localhost/dlw/debian:$NODE_SUITE"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -1)"
TORCH_VERSION="${TORCH_VERSION:-$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -1)}"

need() { command -v "$1" >/dev/null || { echo "scripts/images.sh: $1 is not installed (apt-get install $2)" >&2; exit 3; }; }

# This machine's Debian mirror: the first deb.sources URI / sources.list line serving the main archive.
mirror() {
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\(\S*\/debian\/\?\)$/\1/p' | head -1)"
  [ -n "$uri" ] || uri="$(sed -n 's/^deb \(\[[^]]*\] \)\?\(\S*\/debian\/\?\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

report() {  # image, seconds: one JSON line (size in bytes from podman, which reads the same storage)
  local size
  size="$(podman image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo null)"
  printf '{"image": "%s", "seconds": %s, "bytes": %s}\n' "$1" "$2" "$size"
}

base() {  # [suite [image]]: the Debian base, made once and cached
  local SUITE="${1:-$SUITE}" BASE="${2:-$BASE}"
  need debootstrap debootstrap
  exists "$BASE" && { report "$BASE" 0; return; }
  local tarball="$CACHE/debian-$SUITE-minbase.tar" start=$SECONDS
  mkdir -p "$CACHE"
  if [ ! -f "$tarball" ]; then
    local rootfs="$CACHE/rootfs.$$" url
    url="$(mirror)"
    echo "debootstrap $SUITE from $url (log: $CACHE/debootstrap-$SUITE.log)" >&2
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$url" >"$CACHE/debootstrap-$SUITE.log" 2>&1 \
      || { echo "debootstrap failed: see $CACHE/debootstrap-$SUITE.log" >&2; rm -rf "$rootfs"; exit 1; }
    # What the official debian:*-slim images carry: security updates, no recommends, no apt caches.
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
      "$url" "$SUITE" "$url" "$SUITE" "$SUITE" >"$rootfs/etc/apt/sources.list"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90dlw"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/dev/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  local ctr
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$tarball" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$ctr"
  # This machine's own CA certificates (an egress proxy's, a company's): RUN steps reach PyPI and npm
  # through the same network. Kept in /usr/local/share/ca-certificates, they survive the images'
  # `apt-get install ca-certificates`; pip and node read the bundle through these variables.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    buildah copy --quiet "$ctr" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
    buildah copy --quiet "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
    buildah config --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
      --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$ctr"
  fi
  buildah commit --quiet --rm "$ctr" "$BASE" >/dev/null
  report "$BASE" $((SECONDS - start))
}

build() {  # tag, Dockerfile, build args...
  local tag="$1" file="$2" start=$SECONDS log
  shift 2
  log="$CACHE/build-$(basename "${tag%%:*}").log"
  echo "building $tag (log: $log)" >&2
  (cd "$ROOT" && buildah bud --layers --isolation chroot -f "$file" -t "$tag" "$@" . >"$log" 2>&1) \
    || { tail -20 "$log" >&2; echo "scripts/images.sh: $tag failed: see $log" >&2; exit 1; }
  report "$tag" $((SECONDS - start))
}

need buildah buildah
mkdir -p "$CACHE"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
for target in "${targets[@]}"; do
  case "$target" in
    base) base; base "$NODE_SUITE" "$NODE_BASE" ;;
    notebook) exists "$BASE" || base >/dev/null
      exists "$NODE_BASE" || base "$NODE_SUITE" "$NODE_BASE" >/dev/null
      build "localhost/dlw/notebook:$VERSION" images/notebook/Dockerfile --build-arg BASE_IMAGE="$BASE" \
        --build-arg NODE_IMAGE="$NODE_BASE" --build-arg TORCH_VERSION= ;;
    gpu) exists "$BASE" || base >/dev/null
      exists "$NODE_BASE" || base "$NODE_SUITE" "$NODE_BASE" >/dev/null
      build "localhost/dlw/notebook-gpu:$VERSION" images/notebook/Dockerfile --build-arg BASE_IMAGE="$BASE" \
        --build-arg NODE_IMAGE="$NODE_BASE" --build-arg TORCH_VERSION="$TORCH_VERSION" ;;
    train-base) exists "$BASE" || base >/dev/null
      build "localhost/dlw/train-base:$VERSION" images/train-base/Dockerfile --build-arg BASE_IMAGE="$BASE" \
        --build-arg TORCH_VERSION= ;;
    hub) exists "$BASE" || base >/dev/null
      build localhost/dlw/hub-standin:5 images/hub-standin/Dockerfile --build-arg BASE_IMAGE="$BASE"
      build "localhost/dlw/hub:$VERSION" deploy/hub.Dockerfile --build-arg HUB_IMAGE=localhost/dlw/hub-standin:5 ;;
    all) "$0" base notebook train-base hub ;;
    *) echo "scripts/images.sh: unknown target $target (base, notebook, train-base, hub, gpu, all)" >&2; exit 2 ;;
  esac
done
