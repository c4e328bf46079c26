"""(lab) The jobs panel with 1,000 jobs and the log viewer with 100,000 lines stay responsive.

Runs the lab extension's real DOM code (``labextension/lib``, compiled by ``jlpm build:lib``) in
Debian's Chromium and compares, in the same run:

- jobs panel: the virtualized list vs a naive list rendering every row (first render, a poll that
  changes 10% of the jobs, scrolling; DOM size);
- log viewer: 100,000 lines arriving in 1,000 stream batches, drawn virtualized once per frame vs one
  DOM element per line; the worst main-thread stall (how long a click would wait) is the goal metric;
- server: the SSE pump merging 100,000 one-line chunks into few events vs one event per line.

Goal: panel poll and log stall under 50 ms (one frame at 20 fps) with the virtualized versions.
"""

from __future__ import annotations

import json
import sys
import time

from _common import report
from _lab_page import ROOT, lab_page

JOBS = 1000
LINES = 100_000
BATCH = 100

PAGE = """<!doctype html><html><head><link rel="stylesheet" href="/style.css">
<style>#host{width:360px;height:800px;display:flex;flex-direction:column}
#host>*{flex:1 1 auto}</style></head><body><div id="host"></div></body></html>"""

BENCH_JS = r"""
import { JobsList } from '/lib/jobslist.js';
import { LogView } from '/lib/logview.js';

const frame = () => new Promise(r => requestAnimationFrame(() => r()));
const tick = () => new Promise(r => setTimeout(r, 0));
const host = () => { const h = document.getElementById('host'); h.replaceChildren(); return h; };
const layout = el => el.getBoundingClientRect().height + el.scrollHeight;

function jobs(n, poll) {
  const states = ['Running', 'Queued', 'Succeeded', 'Failed', 'Cancelled'];
  return Array.from({length: n}, (_, i) => ({
    name: `job-${i}`, user: 'u', state: states[(i + (i % 10 === 0 ? poll : 0)) % 5], backend: 'local',
    engine: 'job', workers: 1 + (i % 4), world_size: 1 + (i % 4), gpus: i % 3, created: 0,
    started: 1000 + i, finished: null, duration: null, exit_code: null, reason: null,
    message: null, output_dir: null, output_path: null, queue: null, priority: 0}));
}

// Longest gap between 5 ms timer ticks while fn runs: how long input would have waited.
async function stalls(fn) {
  let last = performance.now(), worst = 0, on = true;
  const probe = () => { const now = performance.now(); worst = Math.max(worst, now - last); last = now;
                        if (on) setTimeout(probe, 5); };
  setTimeout(probe, 5);
  const t0 = performance.now();
  await fn();
  const total = performance.now() - t0;
  on = false;
  await new Promise(r => setTimeout(r, 20));
  return {total, worst};
}

window.benchJobs = async (virtualize) => {
  const list = new JobsList({virtualize, onAction: () => {}, now: () => 2000});
  host().appendChild(list.node);
  let t0 = performance.now();
  list.setJobs(jobs(JOBS_N, 0)); list.render(); layout(list.node);
  const first = performance.now() - t0;
  const polls = [];
  for (let p = 1; p <= 20; p++) {
    t0 = performance.now();
    list.setJobs(jobs(JOBS_N, p)); list.render(); layout(list.node);
    polls.push(performance.now() - t0);
    await tick();
  }
  const scrolls = [];
  for (let s = 0; s < 50; s++) {
    t0 = performance.now();
    list.node.scrollTop = (s * 997) % (JOBS_N * 60); list.render(); layout(list.node);
    scrolls.push(performance.now() - t0);
  }
  const nodes = list.node.querySelectorAll('*').length;
  const ok = list.node.querySelector('.dlw-JobRow') !== null;
  list.dispose();
  const mean = a => a.reduce((x, y) => x + y, 0) / a.length;
  return {first, pollMean: mean(polls), pollMax: Math.max(...polls), scrollMean: mean(scrolls), nodes, ok};
};

window.benchLogs = async (virtualize, budgetMs) => {
  const view = new LogView({virtualize});
  host().appendChild(view.node);
  let sent = 0;
  const {total, worst} = await stalls(async () => {
    for (let b = 0; b < LINES_N / BATCH_N; b++) {
      let chunk = '';
      for (let i = 0; i < BATCH_N; i++) { chunk += `step ${sent} loss 0.${(sent * 7919) % 100000} acc 0.97\n`; sent++; }
      view.append(chunk);
      await tick();  // the next stream read
      if (performance.now() - t0 > budgetMs) break;
    }
    await frame(); await frame();
    layout(view.node);
  });
  // Jump to the middle (what a user scrolling back does).
  let t1 = performance.now();
  view.follow = false; view.node.scrollTop = view.node.scrollHeight / 2;
  if (virtualize) view.render();
  layout(view.node);
  const jump = performance.now() - t1;
  const text = view.node.textContent;
  const nodes = view.node.querySelectorAll('*').length;
  const lastShown = virtualize ? view.buffer.line(view.lineCount - 1) : view.node.lastChild.textContent;
  view.dispose();
  return {total, worst, jump, nodes, lines: sent, lastShown, hasText: text.length > 0};
};
const t0 = performance.now();
""".replace("JOBS_N", str(JOBS)).replace("LINES_N", str(LINES)).replace("BATCH_N", str(BATCH))


def browser_benchmarks() -> None:
    with lab_page(PAGE, BENCH_JS, "window.benchLogs !== undefined", ("jobslist.js",)) as page:

        results = {mode: page.evaluate("v => window.benchJobs(v)", mode == "virtual") for mode in ("virtual", "naive")}
        for mode, r in results.items():
            assert r["ok"], f"jobs {mode}: no row rendered"
        v, n = results["virtual"], results["naive"]
        report(
            "panel_1000_jobs", jobs=JOBS,
            first_render_ms=v["first"], poll_update_ms=v["pollMean"], poll_update_max_ms=v["pollMax"],
            scroll_ms=v["scrollMean"], dom_nodes=v["nodes"],
            baseline_first_render_ms=n["first"], baseline_poll_update_ms=n["pollMean"],
            baseline_poll_update_max_ms=n["pollMax"], baseline_scroll_ms=n["scrollMean"], baseline_dom_nodes=n["nodes"],
            speedup_poll=n["pollMean"] / max(v["pollMean"], 1e-6),
            goal_poll_under_50ms=v["pollMax"] < 50,
        )

        logs = {mode: page.evaluate("([v, budget]) => window.benchLogs(v, budget)", [mode == "virtual", 180_000])
                for mode in ("virtual", "naive")}
        v, n = logs["virtual"], logs["naive"]
        assert v["lastShown"] == f"step {LINES - 1} loss 0.{((LINES - 1) * 7919) % 100000} acc 0.97", v["lastShown"]
        report(
            "log_viewer_100k_lines", lines=v["lines"], batch_lines=BATCH,
            total_ms=v["total"], worst_stall_ms=v["worst"], jump_to_middle_ms=v["jump"], dom_nodes=v["nodes"],
            baseline="one DOM element per line",
            baseline_lines=n["lines"], baseline_total_ms=n["total"], baseline_worst_stall_ms=n["worst"],
            baseline_jump_to_middle_ms=n["jump"], baseline_dom_nodes=n["nodes"],
            stall_ratio=n["worst"] / max(v["worst"], 1e-6),
            goal_stall_under_50ms=v["worst"] < 50,
        )


def server_batching() -> None:
    """The SSE pump vs one event per chunk, for 100,000 one-line chunks already waiting."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from dlw_magic.backends import LogChunk
    from dlw_magic.server.logstream import LogPump

    chunks = []
    offset = 0
    for i in range(LINES):
        text = f"step {i} loss 0.{(i * 7919) % 100000} acc 0.97\n"
        offset += len(text)
        chunks.append(LogChunk(rank=0, text=text, offset=offset))

    def encode(c: LogChunk) -> str:
        return f"id: 0:{c.offset}\nevent: log\ndata: {json.dumps({'rank': 0, 'text': c.text, 'offset': c.offset})}\n\n"

    async def pumped() -> tuple[int, int]:
        pump = LogPump(lambda: iter(chunks), asyncio.get_running_loop())
        pump.start()
        events = size = 0
        while (batch := await pump.next_batch(5.0, 256 * 1024)) is not None:
            for c in batch:
                events += 1
                size += len(encode(c))
        return events, size

    start = time.perf_counter()
    events, size = asyncio.run(pumped())
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    per_line_size = sum(len(encode(c)) for c in chunks)
    per_line_s = time.perf_counter() - start
    report(
        "log_stream_server_100k_lines", lines=LINES, events=events, bytes=size, seconds=batched_s,
        baseline="one SSE event per line", baseline_events=LINES, baseline_bytes=per_line_size,
        baseline_seconds=per_line_s, event_reduction=LINES / max(events, 1),
    )


if __name__ == "__main__":
    server_batching()
    browser_benchmarks()
