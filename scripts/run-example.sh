#!/usr/bin/env bash
# The main job on the embedded default: set up the project's virtualenv (.venv: DLW, JupyterLab with the
# DLW extension, the example's dependencies) and train the digits example with 2 distributed workers on
# the local runner, streaming its logs. Afterwards: `source .venv/bin/activate`, then `dlw`, `jupyter lab`.
set -euo pipefail
source "$(dirname "$0")/env.sh" lab,hub,examples
cd "$DLW_ROOT"
dlw train examples/digits_ddp.ipynb --workers 2 --follow "$@"
