#!/usr/bin/env bash
# Install everything the tests need on a fresh machine (run as root) and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Chromium for the browser tests, git for provenance tests.
if ! command -v chromium >/dev/null || ! command -v git >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium git >/dev/null
fi

# Python packages (torch is pinned to the CPU build in pyproject.toml).
python -m pip install -q -e ".[test]"

# npm packages: the JupyterLab extension, built into dlw_magic/labextension/ (jlpm ships with JupyterLab).
(cd labextension && jlpm install --immutable >/dev/null && jlpm build:prod >/dev/null)
jupyter server extension enable --sys-prefix dlw_magic >/dev/null 2>&1 || true
# configurable-http-proxy for the local JupyterHub (`dlw hub`), pinned in hub_config/package-lock.json.
npm ci --prefix hub_config --no-audit --no-fund >/dev/null

ruff check .
(cd labextension && jlpm lint:check && jlpm test --silent)

python -m pytest -q -p no:cacheprovider "$@"
