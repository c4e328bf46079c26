# The Zero to JupyterHub hub image plus DLW, so the chart's hub.extraConfig can run
# dlw_magic.hub.kube.configure (see docs/deploy.md). Builds from a clean checkout; from the repository root:
#
#   docker build -f deploy/hub.Dockerfile --build-arg HUB_IMAGE=<hub image:tag of your chart version> \
#       -t <your registry>/dlw-hub:0.1.0 .
#
# HUB_IMAGE: `helm show values jupyterhub/jupyterhub | grep -A3 '^hub:' ` names the chart's own hub image.
# The hub needs no lab extension: HATCH_BUILD_NO_HOOKS skips its node build (jlpm), which this image lacks.
ARG HUB_IMAGE
FROM ${HUB_IMAGE}
USER root
COPY pyproject.toml README.md /tmp/dlw/
COPY dlw_magic /tmp/dlw/dlw_magic
COPY hub_config/workspace.yaml /tmp/dlw/hub_config/workspace.yaml
COPY examples/digits_ddp.ipynb /tmp/dlw/examples/digits_ddp.ipynb
COPY jupyter-config /tmp/dlw/jupyter-config
COPY images/templates /tmp/dlw/images/templates
COPY labextension/install.json /tmp/dlw/labextension/install.json
RUN HATCH_BUILD_NO_HOOKS=true python3 -m pip install --no-cache-dir "/tmp/dlw[hub,kubernetes]" && rm -rf /tmp/dlw \
 && python3 -c "import dlw_magic.hub.kube"
USER 1000
