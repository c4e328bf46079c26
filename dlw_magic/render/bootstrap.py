# Runs first in every job pod (shipped inline as `python -c`, so any image with Python runs it):
# copy the read-only snapshot into a writable folder, derive this pod's rank from the variable the
# engine's controller sets, then exec the entrypoint, or torchrun for several processes per pod.
import os
import shutil
import sys

e = os.environ
snapshot, code = e.get("DLW_SNAPSHOT_DIR", "/dlw/snapshot"), e.get("DLW_CODE_DIR", "/dlw/code")
if os.path.isdir(snapshot):
    shutil.copytree(snapshot, code, dirs_exist_ok=True, ignore=shutil.ignore_patterns("..*"))
os.makedirs(e["DLW_OUTPUT_DIR"], exist_ok=True)
os.chdir(code)
found = [e[k] for k in e.get("DLW_NODE_RANK_FROM", "").split(",") if e.get(k)]
node = int(found[0] if found else 0) + int(e.get("DLW_NODE_RANK_OFFSET", "0"))
nodes, procs = int(e["DLW_WORKERS"]), int(e["DLW_PROCS_PER_WORKER"])
argv = sys.argv[1:]
e["NODE_RANK"] = str(node)
for k in ("MASTER_ADDR", "MASTER_PORT"):  # Kubeflow Trainer sets only the PET_* (torchrun) names
    if not e.get(k) and e.get("PET_" + k):
        e[k] = e["PET_" + k]
if procs == 1:
    e.update(RANK=str(node), WORLD_SIZE=str(nodes), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    os.execvp(argv[0], argv)
os.execvp("torchrun", [
    "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={procs}", f"--node-rank={node}",
    f"--master-addr={e.get('MASTER_ADDR', 'localhost')}", f"--master-port={e.get('MASTER_PORT', '29500')}",
    *argv[1:],  # drop "python": torchrun takes the script (or -m module) itself
])
