"""JupyterHub config for a cluster: KubeSpawner driven by the admin YAML.

The admin YAML comes from ``DLW_WORKSPACE_CONFIG`` (default: the workspace.yaml beside this file, or the
copy shipped in the package). With the Zero to JupyterHub chart this file is not needed: the values from
``dlw admin render --helm-values`` run the same ``configure(c)`` as ``hub.extraConfig``.

    DLW_WORKSPACE_CONFIG=/etc/dlw/workspace.yaml jupyterhub -f hub_config/jupyterhub_config.py

Everything a profile means (image, GPUs, node selector, volumes, env, service account, namespace) is in
``dlw_magic.hub.kube``; choose the authenticator here or in your own config that loads this one.
"""

import os

from dlw_magic.hub.kube import configure

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# DLW_HUB_CULL=0 when the deployment already runs jupyterhub-idle-culler (z2jh's cull.enabled).
configure(c, os.environ.get("DLW_WORKSPACE_CONFIG") or None, cull=os.environ.get("DLW_HUB_CULL", "1") != "0")
