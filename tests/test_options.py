"""One options model: the CLI flags, the REST fields and the TypeScript types all come from JobOptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlw_magic import core
from dlw_magic.cli import build_parser, job_options
from dlw_magic.errors import DLWError
from dlw_magic.failure import exception_line
from dlw_magic.options import TS_FILE, JobOptions, parse_options, typescript

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_typescript_types_are_current():
    checked_in = (ROOT / TS_FILE).read_text()
    assert checked_in == typescript(), f"{TS_FILE} is stale: python -m dlw_magic.options --typescript {TS_FILE}"


def test_the_submit_request_type_is_the_generated_one():
    types_ts = (ROOT / "labextension/src/types.ts").read_text()
    assert "interface ISubmitRequest extends IJobOptions" in types_ts
    generated = (ROOT / TS_FILE).read_text()
    for field in ("gpuType", "image", "timeout", "retries", "build", "volumes", "processesPerWorker"):
        assert f"  {field}?:" in generated


def test_every_option_is_a_cli_flag_and_reaches_the_spec(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    argv = ["train", str(script), "--name", "all-opts", "--workers", "2", "--procs-per-worker", "2",
            "--gpus", "1", "--gpu-type", "A100", "--engine", "volcano", "--queue", "q", "--priority", "7",
            "--image", "img:1", "--build", "--timeout", "30m", "--retries", "3", "--volume", "data", "-p", "a=1",
            "--preemptible",
            "--file", "data/*.csv", "--tag", "baseline", "--tag", "v2"]
    options = job_options(build_parser().parse_args(argv))
    assert set(options.model_fields_set) == set(JobOptions.model_fields)
    spec = core.build_spec(script, options=options)
    assert (spec.name, spec.workers, spec.processes_per_worker) == ("all-opts", 2, 2)
    assert (spec.resources.gpus, spec.resources.gpu_type) == (1, "A100")
    assert (spec.engine, spec.queue, spec.priority, spec.image) == ("volcano", "q", 7, "img:1")
    assert (spec.build.enabled, spec.timeout, spec.retries) == (True, 1800, 3)
    assert [v.name for v in spec.volumes] == ["data"]
    assert spec.parameters == {"a": 1}
    assert spec.source.files == ["data/*.csv"]
    assert spec.preemptible is True
    assert spec.tags == ["baseline", "v2"]


def test_options_override_a_yaml_spec_key_by_key(tmp_path):
    (tmp_path / "nb.py").write_text("print(1)\n")
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text("name: base\nsource: {script: nb.py}\nresources: {gpus: 2, cpu: '4'}\nworkers: 3\n")
    spec = core.build_spec(spec_file, options=parse_options({"gpuType": "H100"}))
    assert (spec.resources.gpus, spec.resources.cpu, spec.resources.gpu_type) == (2, "4", "H100")
    assert spec.workers == 3
    assert spec.source.workdir == str(tmp_path)  # a YAML file's paths mean its own folder


def test_inline_spec_paths_mean_the_base_dir(tmp_path):
    spec = core.build_spec(spec_text="name: x\nsource: {script: t.py, workdir: sub}\n", base_dir=tmp_path)
    assert spec.source.workdir == str((tmp_path / "sub").resolve())


@pytest.mark.parametrize(("data", "message"), [
    ({"workers": "2"}, "workers: expected an integer, got '2'"),
    ({"build": "yes"}, "build: expected true or false, got 'yes'"),
    ({"volumes": ["ok", ""]}, "volumes[1]: expected a volume name"),
    ({"colour": "red"}, "colour: unknown field (expected one of name, workers,"),
])
def test_bad_options_are_one_line_naming_the_field(data, message):
    with pytest.raises(DLWError) as err:
        parse_options(data)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_blank_options_keep_the_specs_values():
    assert parse_options({"name": "", "queue": None}).spec_overrides() == {}


@pytest.mark.parametrize(("log", "line"), [
    ("step 1\nTraceback (most recent call last):\n  File \"main.py\", line 3\nValueError: bad shard\n",
     "ValueError: bad shard"),
    ("torch.cuda.OutOfMemoryError: CUDA out of memory.\n--- dlw: attempt 2 ---\nKeyboardInterrupt\n",
     "KeyboardInterrupt"),
    ("all good\nexiting with 4\n", None),
])
def test_the_failing_ranks_exception_line(log, line):
    assert exception_line(log) == line


def test_settings_read_the_environment_in_one_place():
    from dlw_magic.settings import from_env

    s = from_env({"DLW_KUBECONFIG": "/k", "DLW_USER": "ada", "DLW_BUILD_TIMEOUT": "60"})
    assert (s.default_backend, s.user, s.build_timeout) == ("kubernetes", "ada", 60)
    s = from_env({"JUPYTERHUB_USER": "bob", "DLW_USER": "ada", "DLW_BACKEND": "local", "KUBERNETES_SERVICE_HOST": "x"})
    assert (s.default_backend, s.user) == ("local", "bob")
