"""JupyterHub side of DLW: the admin YAML turned into KubeSpawner profiles (``kube``), the notebook
RBAC (``rbac``), deploy manifests and Helm values (``deploy``), and the one-machine hub (``local``).

Nothing here is imported by ``dlw`` at start-up; the hub config and ``dlw admin``/``dlw hub`` import it.
"""
