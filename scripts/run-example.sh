#!/usr/bin/env bash
# The main job on the embedded default: install DLW with the example's dependencies and train the
# digits example with 2 distributed workers on the local runner, streaming its logs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[lab,examples]"
dlw train examples/digits_ddp.ipynb --workers 2 --follow "$@"
