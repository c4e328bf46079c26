# Sourced by run-example.sh and test.sh: the project's own virtualenv (.venv), created once and reused.
# Usage: source scripts/env.sh EXTRAS   (pip extras, e.g. "lab,examples" or "test")
# Nothing outside the checkout changes: Python packages go into .venv, npm packages into labextension/
# and hub_config/node_modules, and the lab extension is linked into .venv (what `jupyter labextension
# list` reads), not into the system Python or ~/.local.
set -euo pipefail
DLW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DLW_VENV="$DLW_ROOT/.venv"
extras="${1:-lab}"
step() { echo "scripts/env.sh: $*" >&2; }

if [ ! -x "$DLW_VENV/bin/python" ]; then
  # Popen(process_group=) in the local runner: the oldest Python pyproject.toml claims.
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "scripts/env.sh: DLW needs Python 3.11 or newer as python3 (found: $(python3 --version 2>&1))" >&2
    return 1 2>/dev/null || exit 1
  fi
  step "creating the virtualenv .venv..."
  python3 -m venv "$DLW_VENV"
  "$DLW_VENV/bin/python" -m pip install -q --upgrade pip
fi
export PATH="$DLW_VENV/bin:$PATH" VIRTUAL_ENV="$DLW_VENV"
# npm trusts only Node's bundled CAs; behind a TLS-inspecting proxy (whose CA the system store has) a cold
# npm cache cannot reach the registry without the system's store as well.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

# pip runs again only when pyproject.toml or the extras change (a stamp per extras set).
stamp="$DLW_VENV/.dlw-installed-${extras//,/-}"
want="$(sha256sum "$DLW_ROOT/pyproject.toml" | cut -c1-64)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing Python packages into .venv ($extras; first time: several minutes)..."
  # The lab's own build hook is optional in editable mode; the extension is built explicitly below.
  # Explicit failure: `set -e` does not apply when the caller sources this file inside `&&`.
  if ! HATCH_JUPYTER_BUILDER_SKIP_NPM=1 python -m pip install -q -e "$DLW_ROOT[$extras]"; then
    echo "scripts/env.sh: pip install -e '.[$extras]' failed (see above)" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "$want" >"$stamp"
fi

# The JupyterLab extension (jlpm ships with JupyterLab): rebuilt when its sources are newer than the bundle.
built="$DLW_ROOT/dlw_magic/labextension/package.json"
if [ ! -f "$built" ] || [ -n "$(find "$DLW_ROOT/labextension/src" "$DLW_ROOT/labextension/style" \
    "$DLW_ROOT/labextension/schema" "$DLW_ROOT/labextension/package.json" -newer "$built" -print -quit)" ]; then
  step "building the JupyterLab extension (npm packages, then webpack; first time: a few minutes)..."
  (cd "$DLW_ROOT/labextension" && jlpm install --immutable >/dev/null && jlpm build:prod >/dev/null)
fi
# Link the built bundle into the venv's labextensions folder (once: a symlink follows later rebuilds).
if [ ! -L "$DLW_VENV/share/jupyter/labextensions/dlw-labextension" ]; then
  (cd "$DLW_ROOT" && jupyter labextension develop --overwrite . >/dev/null 2>&1)
fi

# configurable-http-proxy for the local JupyterHub (`dlw hub`), pinned in hub_config/package-lock.json.
if [ ! -x "$DLW_ROOT/hub_config/node_modules/.bin/configurable-http-proxy" ]; then
  step "installing configurable-http-proxy for dlw hub (npm, under a minute)..."
  npm ci --prefix "$DLW_ROOT/hub_config" --no-audit --no-fund >/dev/null
fi
