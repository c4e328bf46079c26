# The Zero to JupyterHub hub image plus DLW, so the chart's hub.extraConfig can run
# dlw_magic.hub.kube.configure (see docs/deploy.md). Build from the repository root:
#
#   docker build -f deploy/hub.Dockerfile --build-arg HUB_IMAGE=<hub image:tag of your chart version> \
#       -t <your registry>/dlw-hub:0.1.0 .
#
# HUB_IMAGE: `helm show values jupyterhub/jupyterhub | grep -A3 '^hub:' ` names the chart's own hub image.
ARG HUB_IMAGE
FROM ${HUB_IMAGE}
USER root
COPY . /tmp/dlw
RUN python3 -m pip install --no-cache-dir "/tmp/dlw[hub,kubernetes]" && rm -rf /tmp/dlw
USER 1000
