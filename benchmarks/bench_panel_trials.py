"""(lab) The Jobs panel and the Experiments panel stay responsive with a 500-trial sweep.

Runs the lab extension's real DOM code (``labextension/lib``, compiled by ``jlpm build:lib``) in Debian's
Chromium and times, for one experiment of 500 trials and, in the same run, of 50 (the baseline):

- Jobs panel (``JobsList``): first render of the list (the sweep as one collapsed group row among 20 other
  jobs), opening the group (500 trial rows under it), and a poll update where 10% of the trials changed
  state, with the group open;
- Experiments panel (``ExperimentView``): first render of the results table (windowed: the rows in view),
  overlay chart (50 points a trial, every trial) and scatter, and a poll update where 10% of the trials
  changed.

Each time includes the layout it causes. Goal: every update under 50 ms (one frame at 20 fps) at 500.
"""

from __future__ import annotations

import argparse

from _common import report
from _lab_page import lab_page

PAGE = """<!doctype html><html><head><link rel="stylesheet" href="/style.css">
<style>#host{width:360px;height:800px;display:flex;flex-direction:column}
#host>*{flex:1 1 auto;overflow:auto}</style></head><body><div id="host"></div></body></html>"""

BENCH_JS = r"""
import { JobsList } from '/lib/jobslist.js';
import { ExperimentView } from '/lib/experimentview.js';

const host = () => { const h = document.getElementById('host'); h.replaceChildren(); return h; };
const layout = el => el.getBoundingClientRect().height + el.scrollHeight;
const median = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const STATES = ['Succeeded', 'Running', 'Waiting', 'Failed'];
const state = (i, poll) => STATES[(i + (i % 10 === poll % 10 ? poll : 0)) % 4];
const trialName = i => `sweep-${String(i).padStart(3, '0')}`;

function jobs(n, poll) {
  const job = (name, i, experiment) => ({
    name, user: 'u', state: experiment && state(i, poll) === 'Waiting' ? 'Queued' : state(i, poll),
    backend: 'local', engine: 'job', workers: 1, world_size: 1, gpus: 0, created: 0, started: 1000 + i,
    finished: null, duration: null, exit_code: null, reason: null, message: null, output_dir: null,
    output_path: null, queue: null, priority: 0, experiment});
  const others = Array.from({length: 20}, (_, i) => job(`job-${i}`, i, null));
  return [...others.slice(0, 10), ...Array.from({length: n}, (_, i) => job(trialName(i), i, 'sweep')),
          ...others.slice(10)];
}

function experiment(n, poll) {
  return {name: 'sweep', state: 'Running', metric: 'accuracy', goal: 'max', best: trialName(7), parallel: 4,
    trials: Array.from({length: n}, (_, i) => {
      const s = state(i, poll);
      const curve = s === 'Waiting' ? [] : Array.from({length: 50}, (_, k) => [k, (i % 17) / 17 + k / 100]);
      return {index: i, name: trialName(i), parameters: {lr: 0.001 * (1 + i % 20), batch: 32 << (i % 3)},
        state: s, best: curve.length ? curve[49][1] : null, last: curve.length ? curve[49][1] : null,
        step: curve.length ? 49 : null, duration: 60 + i, curve};
    })};
}

window.benchJobs = async (n, repeat) => {
  const firsts = [], opens = [], polls = [];
  let rows = 0, ok = false;
  for (let r = 0; r < repeat; r++) {
    const list = new JobsList({onAction: () => {}, now: () => 2000});
    host().appendChild(list.node);
    let t0 = performance.now();
    list.setJobs(jobs(n, 0));
    list.setExperiments([{name: 'sweep', state: 'Running', best: trialName(7)}]);
    list.render(); layout(list.node);
    firsts.push(performance.now() - t0);
    t0 = performance.now();
    list.toggleGroup('sweep', true); list.render(); layout(list.node);
    opens.push(performance.now() - t0);
    for (let p = 1; p <= 10; p++) {
      t0 = performance.now();
      list.setJobs(jobs(n, p)); list.render(); layout(list.node);
      polls.push(performance.now() - t0);
      await new Promise(res => setTimeout(res, 0));
    }
    ok = list.node.querySelector('.dlw-JobGroup[data-experiment="sweep"]') !== null &&
      list.node.querySelector('.dlw-JobRow.dlw-mod-trial') !== null;
    rows = list.node.querySelectorAll('.dlw-JobRow, .dlw-JobGroup').length;
    list.dispose();
  }
  return {first: median(firsts), open: median(opens), poll: median(polls), pollMax: Math.max(...polls), rows, ok};
};

window.benchExperiment = async (n, repeat) => {
  const firsts = [], polls = [];
  let rows = 0;
  for (let r = 0; r < repeat; r++) {
    const view = new ExperimentView({});
    host().appendChild(view.node);
    let t0 = performance.now();
    view.update(experiment(n, 0)); layout(view.node);
    firsts.push(performance.now() - t0);
    for (let p = 1; p <= 10; p++) {
      t0 = performance.now();
      view.update(experiment(n, p)); layout(view.node);
      polls.push(performance.now() - t0);
      await new Promise(res => setTimeout(res, 0));
    }
    rows = view.node.querySelectorAll('tr[data-trial]').length;
  }
  return {first: median(firsts), poll: median(polls), pollMax: Math.max(...polls), rows};
};
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--baseline-trials", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (the median is kept)")
    args, _ = parser.parse_known_args()
    with lab_page(PAGE, BENCH_JS, "window.benchExperiment !== undefined", ("jobslist.js", "experimentview.js")) as page:
        page.evaluate("([n, r]) => window.benchJobs(n, r)", [args.baseline_trials, 1])  # warm-up (JIT)
        sizes = (args.trials, args.baseline_trials)
        jobs = {n: page.evaluate("([n, r]) => window.benchJobs(n, r)", [n, args.repeat]) for n in sizes}
        exps = {n: page.evaluate("([n, r]) => window.benchExperiment(n, r)", [n, args.repeat]) for n in sizes}
    big, small = jobs[args.trials], jobs[args.baseline_trials]
    assert big["ok"] and small["ok"], "the group row or its trial rows did not render"
    report(
        "jobs_panel_grouped_trials", trials=args.trials, first_render_ms=big["first"], open_group_ms=big["open"],
        poll_update_ms=big["poll"], poll_update_max_ms=big["pollMax"], dom_rows=big["rows"],
        baseline_trials=args.baseline_trials, baseline_first_render_ms=small["first"],
        baseline_open_group_ms=small["open"], baseline_poll_update_ms=small["poll"],
        baseline_poll_update_max_ms=small["pollMax"], baseline_dom_rows=small["rows"],
        poll_ratio=big["poll"] / max(small["poll"], 1e-6), goal_poll_under_50ms=big["pollMax"] < 50,
    )
    big, small = exps[args.trials], exps[args.baseline_trials]
    assert 0 < big["rows"] <= args.trials and 0 < small["rows"] <= args.baseline_trials, (big, small)
    report(
        "experiments_panel_trials", trials=args.trials, first_render_ms=big["first"], poll_update_ms=big["poll"],
        poll_update_max_ms=big["pollMax"], table_rows_in_dom=big["rows"],
        baseline_trials=args.baseline_trials, baseline_first_render_ms=small["first"],
        baseline_poll_update_ms=small["poll"], baseline_poll_update_max_ms=small["pollMax"],
        poll_ratio=big["poll"] / max(small["poll"], 1e-6), goal_poll_under_50ms=big["pollMax"] < 50,
    )


if __name__ == "__main__":
    main()
