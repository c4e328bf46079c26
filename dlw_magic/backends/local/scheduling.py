"""The local start decision: who gets the GPUs next, whom to preempt, and why a job still waits.

Pure functions over the job records, so the rules read in one place and are tested without processes;
``Store.try_start`` calls :func:`decide` inside its ``BEGIN IMMEDIATE`` transaction.

Rules: queued jobs go by priority (high first), then submission time. GPU jobs start strictly in that
order (a big job is never starved by small ones behind it); jobs that need no GPU never wait. The first
GPU job that does not fit may preempt running ``preemptible`` jobs of strictly lower priority: the
fewest needed, lowest priority first (among equals the most recently started, which loses least work).

The GPU inventory is NVML's (narrowed by ``CUDA_VISIBLE_DEVICES``), or ``DLW_FAKE_GPUS=N`` (indices
0..N-1) on machines without them: tests, and trying the queue on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Queued:
    id: str
    name: str
    need: int  # GPUs for the whole job
    priority: int


@dataclass
class Running:
    id: str
    name: str
    priority: int
    preemptible: bool
    gpus: list[int]
    started: float
    preempt_by: str | None = None  # already asked to make way for this job


@dataclass
class Decision:
    start: list[int] | None = None  # GPU indices when the job may start now
    victims: list[str] = field(default_factory=list)  # ids of running jobs to preempt now
    preemptor: str | None = None  # the asking job's name, when it preempts
    wait: str | None = None  # why the job still waits (one sentence), when it does


def inventory() -> list[int]:
    """GPU indices local jobs may use."""
    from ... import settings
    from ...gpus import visible_gpu_indices

    fake = settings.current().fake_gpus
    if fake is not None:
        return list(range(fake))
    return visible_gpu_indices()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _holders(held: list[tuple[str, list[int]]]) -> str:
    held = [(name, gpus) for name, gpus in held if gpus]
    if not held:
        return "no job"
    return ", ".join(f"{name} (GPU {','.join(map(str, gpus))})" for name, gpus in held)


def pick_victims(need: int, free: int, priority: int, running: list[Running]) -> list[Running] | None:
    """The fewest preemptible jobs below ``priority`` whose GPUs, with ``free``, make ``need``; None if none do."""
    candidates = sorted(
        (r for r in running if r.preemptible and r.priority < priority and r.gpus and r.preempt_by is None),
        key=lambda r: (r.priority, -r.started),
    )
    chosen: list[Running] = []
    have = free
    for r in candidates:
        if have >= need:
            break
        chosen.append(r)
        have += len(r.gpus)
    if have < need:
        return None
    # Greedy by priority may take a small job that a bigger one, taken later, made unnecessary.
    for r in sorted(chosen, key=lambda r: (-r.priority, len(r.gpus))):
        if have - len(r.gpus) >= need:
            chosen.remove(r)
            have -= len(r.gpus)
    return chosen


def decide(job_id: str, queued: list[Queued], running: list[Running], gpus: list[int]) -> Decision:
    """What ``job_id`` does now; ``queued`` is in queue order (priority, then submission time)."""
    used = {i for r in running for i in r.gpus}
    free = [i for i in gpus if i not in used]
    gpu_jobs = [q for q in queued if q.need]
    head: Queued | None = None  # the first GPU job that does not fit: the ones behind it wait
    held = [(r.name, r.gpus) for r in running]  # and the queued jobs ahead that take GPUs now
    for q in queued:
        if q.need and (head is not None or q.need > len(free)):
            head = head or q
            take = None
        else:
            take, free = free[:q.need], free[q.need:]
            held.append((q.name, take))
        if q.id != job_id:
            continue
        if take is not None:
            return Decision(start=take)
        place = f"{_ordinal(gpu_jobs.index(q) + 1)} of {len(gpu_jobs)} in the GPU queue"
        if head is not None and head is not q:
            return Decision(wait=f"waits behind {head.name} (priority {head.priority}) for GPUs; {place}")
        leaving = [r for r in running if r.preempt_by is not None]
        coming = len(free) + sum(len(r.gpus) for r in leaving)
        wait = f"needs {q.need} GPU(s), {len(free)} free; held by {_holders(held)}; {place}"
        decision = Decision(wait=wait)
        if coming < q.need:
            victims = pick_victims(q.need, coming, q.priority, running)
            if victims:
                decision.victims = [v.id for v in victims]
                decision.preemptor = q.name
                leaving += victims
        if leaving:
            decision.wait = wait + f"; preempting {', '.join(r.name for r in leaving)}"
        return decision
    return Decision()  # not queued (cancelled, or already decided)
