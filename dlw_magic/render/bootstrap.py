# Runs first in every job pod (shipped inline as `python -c`, so any image with Python runs it):
# copy the read-only snapshot into a writable folder, derive this pod's rank from the variable the
# engine's controller sets, then run the entrypoint, or torchrun for several processes per pod.
import os
import shutil
import sys

e = os.environ
snapshot, code = e.get("DLW_SNAPSHOT_DIR", "/dlw/snapshot"), e.get("DLW_CODE_DIR", "/dlw/code")
if os.path.isdir(snapshot):
    # Entry by entry, not copytree(snapshot, code): the code folder is the pod's emptyDir (root's, mode
    # 0777), whose mode and times a non-root image user may not set, as copytree does last.
    os.makedirs(code, exist_ok=True)
    for name in os.listdir(snapshot):
        if name.startswith(".."):  # a ConfigMap volume's own ..data links
            continue
        src, dst = os.path.join(snapshot, name), os.path.join(code, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("..*"))
        else:
            shutil.copy2(src, dst)
os.makedirs(e["DLW_OUTPUT_DIR"], exist_ok=True)
if e.get("DLW_CHECKPOINT_DIR"):  # the same folder in every attempt (see render/pod.py)
    os.makedirs(e["DLW_CHECKPOINT_DIR"], exist_ok=True)
os.chdir(code)
found = [e[k] for k in e.get("DLW_NODE_RANK_FROM", "").split(",") if e.get(k)]
node = int(found[0] if found else 0) + int(e.get("DLW_NODE_RANK_OFFSET", "0"))
nodes, procs = int(e["DLW_WORKERS"]), int(e["DLW_PROCS_PER_WORKER"])
argv = sys.argv[1:]
e["NODE_RANK"] = str(node)
for k in ("MASTER_ADDR", "MASTER_PORT"):  # Kubeflow Trainer sets only the PET_* (torchrun) names
    if not e.get(k) and e.get("PET_" + k):
        e[k] = e["PET_" + k]


# --- GPU sampler -------------------------------------------------------------------------------------
# When the pod has GPUs (DLW_GPU_SAMPLE_SECONDS), a forked child reports their use every N seconds
# (dlw_magic/gpu_sampler.py, the local runner's sampler too) as tagged metrics lines on stdout
# ("#dlw-metrics [step, time, {"gpu.util": %, "gpu.mem_mib": MiB}]"), so the pod's log carries them to
# `dlw status`, and in the output folder's metrics/gpu-rank-<N>.jsonl, read there where the home is shared.
# It outlives the exec below and stops once the entrypoint (its parent) has exited.
from dlw_magic.gpu_sampler import append_line, nvml_reader, sample_gpus  # noqa: E402 - render/pod.py inlines it


def report_gpus(parent, every):
    import time

    read = nvml_reader(e.get("DLW_NVML_STANDIN"))  # tests: a JSON stand-in for NVML
    if read is None:
        print("dlw: no NVML (libnvidia-ml.so.1) in this pod: its GPU use is not reported", file=sys.stderr)
        return
    folder = os.path.join(e["DLW_OUTPUT_DIR"], "metrics")
    os.makedirs(folder, exist_ok=True)  # the output folder exists (above): this one can be made too
    kept = os.path.join(folder, f"gpu-rank-{node}.jsonl")

    def write(_rank, line):
        os.write(1, ("#dlw-metrics " + line).encode())  # one write under PIPE_BUF: never split by the job's output
        append_line(kept, line)

    def stop(seconds):
        wake = time.monotonic() + seconds
        while os.getppid() == parent and time.monotonic() < wake:
            time.sleep(min(0.5, seconds))
        return os.getppid() != parent

    sample_gpus(read, {node: None}, every, write, stop)


if e.get("DLW_GPU_SAMPLE_SECONDS"):
    parent = os.getpid()
    if os.fork() == 0:
        try:
            report_gpus(parent, float(e["DLW_GPU_SAMPLE_SECONDS"]))
        finally:
            os._exit(0)
# --- end of GPU sampler --------------------------------------------------------------------------------

if procs == 1:
    e.update(RANK=str(node), WORLD_SIZE=str(nodes), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    cmd = argv
else:
    cmd = [
        "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={procs}", f"--node-rank={node}",
        f"--master-addr={e.get('MASTER_ADDR', 'localhost')}", f"--master-port={e.get('MASTER_PORT', '29500')}",
        *argv[1:],  # drop "python": torchrun takes the script (or -m module) itself
    ]

# --- log tee ------------------------------------------------------------------------------------------
# Keep the rank's output on the job's output volume as well (.dlw-logs/<job id>/rank-<N>.log), so that
# `dlw logs` still shows it once the pod is gone (every attempt of the rank in turn). A child runs the
# command with stdout and stderr on pipes; this process copies both to its own stdout/stderr and to the
# file, passes on every signal it gets (it may be PID 1) and exits with the child's status (128 + signal
# when killed, as a shell reports it).
import contextlib  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

# A runaway log must not fill the volume: past the cap (DLW_LOG_MAX_BYTES, as for local jobs) the copy
# says where it stopped and the pod's own log keeps the rest.
try:
    LOG_MAX = max(int(e.get("DLW_LOG_MAX_BYTES") or 1 << 30), 1)
except ValueError:
    LOG_MAX = 1 << 30
try:
    log_dir = os.path.join(e["DLW_OUTPUT_DIR"], ".dlw-logs", e.get("DLW_JOB_ID") or "job")
    os.makedirs(log_dir, exist_ok=True)
    # Appended: a pod the job's controller made again (a retry, a preemption) keeps what earlier ones said.
    log = open(os.path.join(log_dir, f"rank-{node}.log"), "ab")  # noqa: SIM115 - lives as long as the process
    if log.tell():
        log.write(b"\n--- dlw: next attempt (pod %s) ---\n" % e.get("HOSTNAME", "?").encode())
except OSError:
    os.execvp(cmd[0], cmd)  # nowhere to keep it: run as before
child: list[int] = []
pending: list[int] = []  # signals that came before the child existed


def forward(sig, _frame):
    if not child:
        pending.append(sig)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(child[0], sig)


SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
for sig in SIGNALS:
    signal.signal(sig, forward)
pipes = [os.pipe(), os.pipe()]
pid = os.fork()
if pid == 0:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    for target, (r, w) in enumerate(pipes, start=1):
        os.dup2(w, target)
        os.close(r)
        os.close(w)
    os.execvp(cmd[0], cmd)
child.append(pid)
for early in pending:
    forward(early, None)
lock = threading.Lock()
written = [log.tell()]  # the cap holds for the file, all attempts together


def keep(data):
    with lock:
        if written[0] < LOG_MAX:
            room = LOG_MAX - written[0]
            try:
                log.write(data[:room])
                if len(data) > room:
                    log.write(b"\n[dlw: rank %d's kept log reached %d bytes (DLW_LOG_MAX_BYTES); the rest is only in "
                              b"the pod's log]\n" % (node, LOG_MAX))
                log.flush()
            except OSError:
                pass
            written[0] += len(data)


def copy(src, dst):
    pending = b""  # the file gets whole lines, so stdout's and stderr's lines do not cut into each other
    while True:
        data = os.read(src, 65536)
        if not data:
            if pending:
                keep(pending)
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(dst, view):]
        except OSError:
            pass  # nobody reads the container's stream any more: the file still gets it
        pending += data
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1 or (len(pending) if len(pending) > 65536 else 0)
        if cut:
            keep(pending[:cut])
            pending = pending[cut:]


copiers = []
for target, (r, w) in enumerate(pipes, start=1):
    os.close(w)
    copiers.append(threading.Thread(target=copy, args=(r, target), daemon=True))
    copiers[-1].start()
status = os.waitpid(pid, 0)[1]
for t in copiers:
    t.join(5)  # a daemon the command left behind may hold the pipe open: do not wait for it forever
sys.exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
