"""The two notebooks of the preemption tests (kube-scheduler's and Kueue's): a low-priority one that saves a
checkpoint every step and resumes from the last, and a high-priority one. Each holds at a gate file in its
output folder until the test lets it go on, so no timing decides the order of events."""

from __future__ import annotations

STEPS = 12  # the low job's steps, one checkpoint each
GATE = "go"  # a file in a job's output folder that lets it go on (the test writes it through alice's home)
LOW_CELLS = [
    "import os, time\nfrom dlw_magic import checkpoint",
    # The resume pattern of docs/job-library.md: load the last checkpoint, continue after its step. The
    # first attempt holds at step 5 until the test has seen it preempted, so no timing decides the run.
    "state = checkpoint.load()\n"
    "start = state['step'] + 1 if state else 0\n"
    "print(f'resumed from step {start}' if state else 'starting at step 0', flush=True)\n"
    f"gate = os.path.join(os.environ['DLW_OUTPUT_DIR'], {GATE!r})\n"
    f"for step in range(start, {STEPS}):\n"
    "    while step >= 5 and not os.path.exists(gate):\n"
    "        time.sleep(0.2)\n"
    "    time.sleep(0.2)\n"
    "    checkpoint.save({'step': step})\n"
    "    print(f'step {step} saved', flush=True)\n"
    "print('low done', flush=True)",
]
HIGH_CELLS = [
    "import os, time\n"
    "print('high running on GPUs', os.environ.get('NVIDIA_VISIBLE_DEVICES'), flush=True)\n"
    f"gate = os.path.join(os.environ['DLW_OUTPUT_DIR'], {GATE!r})\n"
    "deadline = time.monotonic() + 300\n"
    "while not os.path.exists(gate) and time.monotonic() < deadline:\n"
    "    time.sleep(0.2)\n"
    "print('high done', flush=True)",
]
