"""The REST API under load and hostile input: 200 concurrent submissions (no error, no duplicate, no
lost job), generated request bodies (never a 500), references that try to leave the server root or
the secrets folder, and logs read in pages instead of one huge answer."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from fuzzing import SPEC_FIELDS, TIMEOUT, nested, yaml_text
from hypothesis import example, given
from hypothesis import strategies as st
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # a real Jupyter server per test

pytestmark = [pytest.mark.timeout(max(300, TIMEOUT)), pytest.mark.usefixtures("dlw_home")]

SUBMIT_KEYS = ["notebook", "spec", "name", "workers", "gpus", "gpuType", "processesPerWorker", "engine", "queue",
               "priority", "image", "timeout", "parameters", "volumes", "x"]


@pytest.fixture
def post(jp_fetch, jp_asyncio_loop):
    """POST a body (any JSON or raw text) to an API path; returns (status, parsed answer)."""

    async def one(path: str, body: object) -> tuple[int, dict]:
        # Raw text goes as bytes, lone surrogates included: a client can send any bytes.
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else json.dumps(body)
        try:
            # Generous client timeouts: tornado's client counts the time a request waits in its own queue.
            r = await jp_fetch("dlw/api", path, method="POST", body=data, request_timeout=240, connect_timeout=240)
        except HTTPClientError as err:
            return err.code, json.loads(err.response.body) if err.response and err.response.body else {}
        return r.code, json.loads(r.body)

    def call(path: str, body: object) -> tuple[int, dict]:
        return jp_asyncio_loop.run_until_complete(one(path, body))

    call.many = lambda path, bodies: jp_asyncio_loop.run_until_complete(  # type: ignore[attr-defined]
        asyncio.gather(*(one(path, b) for b in bodies)))
    return call


@pytest.fixture
def get(jp_fetch, jp_asyncio_loop):
    def call(path: str, **params: str) -> dict:
        r = jp_asyncio_loop.run_until_complete(jp_fetch("dlw/api", path, params=params))
        return json.loads(r.body)

    return call


def wait_all_finished(get, count: int, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = get("jobs")["jobs"]
        if len(jobs) >= count and all(j["state"] in ("Succeeded", "Failed", "Cancelled") for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"{sum(j['state'] in ('Queued', 'Running') for j in jobs)} jobs still active")
        time.sleep(0.5)


def test_200_concurrent_submissions_no_error_no_duplicate_none_lost(post, get, jp_root_dir):
    (jp_root_dir / "noop.py").write_text("pass\n")
    bodies = [{"spec": f"name: c-{i:03d}\nsource: {{script: noop.py}}\n"} for i in range(200)]
    answers = post.many("jobs", bodies)
    errors = [(code, a) for code, a in answers if code != 201]
    assert errors == [], errors[:3]
    names = [a["name"] for _, a in answers]
    assert sorted(names) == sorted(f"c-{i:03d}" for i in range(200))
    # The same 200 names again, at once: every one a 409, none a 500, nothing new.
    again = post.many("jobs", bodies[:50])
    assert {code for code, _ in again} == {409}
    jobs = wait_all_finished(get, 200)
    assert len(jobs) == 200 and len({j["name"] for j in jobs}) == 200
    assert {j["state"] for j in jobs} == {"Succeeded"}, [j for j in jobs if j["state"] != "Succeeded"][:2]


request_bodies = st.one_of(
    st.dictionaries(st.sampled_from(SUBMIT_KEYS), nested(8), max_size=4),
    st.builds(lambda text, extra: {"spec": text, **extra}, yaml_text,
              st.dictionaries(st.sampled_from(SUBMIT_KEYS[2:]), nested(4), max_size=2)),
    st.builds(lambda fields: {"spec": json.dumps({"name": "fz", "source": {"script": "noop.py"}, **fields})},
              st.dictionaries(st.sampled_from(SPEC_FIELDS), nested(6), max_size=3)),
    nested(10),
    st.text(max_size=40),
)


@given(body=request_bodies)
@example(body={"spec": '{"name": "fz", "source": {"script": "noop.py"}, "resources": true}'})  # was a 500
@example(body={"spec": "name: fz\nsource: {script: noop.py}\nparameters: [1]\n", "parameters": {"a": 1}})
def test_any_submit_body_is_answered_without_a_server_error(body, post, jp_root_dir):
    (jp_root_dir / "noop.py").write_text("pass\n")
    try:
        json.dumps(body, allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError):
        body = json.dumps(body)  # NaN and lone surrogates as JSON escapes, as a client could send them
    code, answer = post("jobs", body)
    assert code in (201, 400, 403, 404, 409), (code, answer)
    if code != 201:
        assert isinstance(answer["message"], str) and "\n" not in answer["message"], answer


def test_hostile_references_are_refused_over_rest(post, jp_root_dir, tmp_path):
    (jp_root_dir / "noop.py").write_text("pass\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("not yours\n")
    (jp_root_dir / "data").symlink_to(outside)
    cases = [
        ("name: s1\nsource: {script: noop.py}\nsecrets: [{env: H, secret: ../../../../etc, key: hostname}]\n",
         "secrets[0].secret"),
        ("name: s2\nsource: {script: noop.py, files: [data]}\n", "outside"),
        ("name: s3\nsource: {script: noop.py, files: [data/*]}\n", "outside"),
        ("name: s4\nsource: {script: noop.py, files: [../x]}\n", "source.files"),
        ("a: &a [*a]\n", "aliases"),
    ]
    for spec, fragment in cases:
        code, answer = post("jobs", {"spec": spec})
        assert code in (400, 403) and fragment in answer["message"], (spec, code, answer)
    code, answer = post("jobs", '{"spec": ' + "[" * 100000 + "]" * 100000 + "}")
    assert code == 400


def test_logs_come_in_pages(post, get, jp_root_dir):
    (jp_root_dir / "big.py").write_text("for i in range(60000):\n    print(f'line {i:06d} ' + 'x' * 40)\n")
    code, _ = post("jobs", {"spec": "name: big\nsource: {script: big.py}\n"})
    assert code == 201
    wait_all_finished(get, 1, timeout=120)
    size = Path(get("jobs/big")["output_dir"]).parent.joinpath("logs", "rank-0.log").stat().st_size
    text, offset, pages = "", 0, 0
    while True:
        page = get("jobs/big/logs", rank="0", offset=str(offset), limit="100000")
        pages += 1
        text += "".join(c["text"] for c in page["chunks"])
        assert sum(len(c["text"]) for c in page["chunks"]) <= 100000 + (1 << 20)
        if not page["more"]:
            break
        offset = page["next"]["0"]
    assert len(text) == size and text.endswith("line 059999 " + "x" * 40 + "\n")
    first = get("jobs/big/logs", rank="0", limit="1000")
    assert first["more"] is True and first["chunks"]  # one chunk at least, never the whole log


def test_inputs_that_were_500s_are_answered(post, get, jp_fetch, jp_asyncio_loop, jp_root_dir):
    """Parameter defaults JSON cannot hold (a set, bytes, complex, ...), a log offset beyond int64, a symlink
    loop in files: a 201 or a 400 with one line, never a 500."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "s = {2, 1}\nb = b'x'\nc = 1j\ne = ...\n",
         "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": "print(s)", "outputs": [], "execution_count": None}]}
    (jp_root_dir / "odd.ipynb").write_text(json.dumps(nb))
    r = jp_asyncio_loop.run_until_complete(jp_fetch("dlw/api", "parameters", params={"path": "odd.ipynb"}))
    assert json.loads(r.body)["parameters"] == {"s": [1, 2]}
    code, answer = post("jobs", {"notebook": "odd.ipynb", "name": "odd"})
    assert code == 201, answer
    (jp_root_dir / "loop-a").symlink_to("loop-b")
    (jp_root_dir / "loop-b").symlink_to("loop-a")
    (jp_root_dir / "noop.py").write_text("pass\n")
    code, answer = post("jobs", {"spec": "name: loop\nsource: {script: noop.py, files: [loop-a]}\n"})
    assert code == 400 and "symlink loop" in answer["message"], answer
    for offset in (str(1 << 63), str(1 << 64), "9" * 40):
        with pytest.raises(HTTPClientError) as info:
            jp_asyncio_loop.run_until_complete(jp_fetch("dlw/api", "jobs/odd/logs", params={"rank": "0",
                                                                                             "offset": offset}))
        assert info.value.code == 400, offset
