"""Following a job on Kubernetes: by watch (no polling of the API server), restarted pods included, and
back to polling on servers that cannot watch. Against kmock's emulator, as in test_k8s_backend."""

from __future__ import annotations

import threading
import time

import kmock
import pytest
import test_k8s_backend as _k8s
from test_k8s_backend import JOB, VOLCANO, running, submit

from dlw_magic.backends.kubernetes import KubernetesBackend

env, kube, backend, script = _k8s.env, _k8s.kube, _k8s.backend, _k8s.script  # shared fixtures


def _gets(kube, suffix: str) -> int:
    """Plain GETs (lists and reads, not watches) whose path ends with ``suffix``."""
    return sum(1 for r in list(kube.emulator)
               if str(r.method.value).upper() == "GET" and r.url.path.endswith(suffix)
               and r.url.query.get("watch") != "true")


def _watches(kube, suffix: str) -> int:
    return sum(1 for r in list(kube.emulator) if r.url.path.endswith(suffix) and r.url.query.get("watch") == "true")


def _finish_later(kube, kind, name: str = "demo", after: float = 1.5) -> None:
    def finish() -> None:
        time.sleep(after)
        kube.set_status(kind, name, {"active": 0, "conditions": [{"type": "Complete", "status": "True"}]})

    threading.Thread(target=finish, daemon=True).start()


def _two_ranks(kube, backend, script) -> None:
    submit(backend, script, workers=2)
    job = kube.get(JOB, "demo")
    for rank in range(2):
        name = f"demo-{rank}-p"
        kube.add_pod(job, name, running(), annotations={"batch.kubernetes.io/job-completion-index": str(rank)})
        kube.set_log(name, f"rank {rank} hello\n")
    kube.set_status(JOB, "demo", {"active": 2})


def test_follow_watches_instead_of_polling(backend, kube, script):
    _two_ranks(kube, backend, script)
    lists_before = _gets(kube, "/pods")
    _finish_later(kube, JOB)
    chunks = list(backend.logs("demo", follow=True))
    assert sorted(c.text for c in chunks) == ["rank 0 hello\n", "rank 1 hello\n"]
    # One list of the pods and one watch each, however long the job ran: nothing polled meanwhile.
    assert _gets(kube, "/pods") - lists_before == 1
    assert _watches(kube, "/pods") == 1 and _watches(kube, "/jobs") == 1


def test_polling_is_still_there_for_servers_without_watch(kube, script):
    polling = KubernetesBackend(kubeconfig=str(kube.kubeconfig), watch=False)
    _two_ranks(kube, polling, script)
    _finish_later(kube, JOB)
    assert sorted(c.text for c in polling.logs("demo", follow=True)) == ["rank 0 hello\n", "rank 1 hello\n"]
    assert _watches(kube, "/pods") == 0 and _gets(kube, "/pods") >= 2  # polled until the job finished


def test_a_server_that_refuses_watch_is_polled(backend, kube, script):
    kube.emulator["watch", kmock.resource("v1/pods")] << kmock.KubernetesError(
        status=405, reason="MethodNotAllowed", message="watch is not supported")
    _two_ranks(kube, backend, script)
    _finish_later(kube, JOB)
    assert sorted(c.text for c in backend.logs("demo", follow=True)) == ["rank 0 hello\n", "rank 1 hello\n"]
    assert _gets(kube, "/pods") >= 3  # the first list, then polls


@pytest.mark.parametrize("watch", [True, False])
def test_follow_picks_up_a_pod_restarted_under_the_same_name(kube, script, watch):
    """Volcano and the training-operator recreate a failed rank's pod with the same name and a new UID."""
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), watch=watch)
    submit(backend, script, engine="volcano")
    job = kube.get(VOLCANO, "demo")
    kube.add_pod(job, "demo-master-0", {"phase": "Failed"}, annotations={"volcano.sh/task-spec": "master"})
    kube._call("PATCH", kube.path(("v1", "Pod"), "demo-master-0"), {"metadata": {"uid": "uid-1"}},
               content_type="application/merge-patch+json")
    kube.set_log("demo-master-0", "first attempt\n")
    kube.set_status(VOLCANO, "demo", {"state": {"phase": "Restarting"}})
    chunks = backend.logs("demo", follow=True)
    assert next(chunks).text == "first attempt\n"
    kube._call("DELETE", kube.path(("v1", "Pod"), "demo-master-0"))
    kube.set_log("demo-master-0", "second attempt\n")
    kube.add_pod(job, "demo-master-0", running(), annotations={"volcano.sh/task-spec": "master"})
    kube._call("PATCH", kube.path(("v1", "Pod"), "demo-master-0"), {"metadata": {"uid": "uid-2"}},
               content_type="application/merge-patch+json")
    second = next(chunks)
    assert (second.rank, second.text, second.offset) == (0, "second attempt\n", len("second attempt\n"))
    kube.set_status(VOLCANO, "demo", {"state": {"phase": "Completed"}})
    assert list(chunks) == []  # and the follow ends with the job


def test_follow_ends_when_the_job_is_deleted(backend, kube, script):
    _two_ranks(kube, backend, script)

    def delete() -> None:
        time.sleep(1.0)
        kube._call("DELETE", kube.path(JOB, "demo"))

    threading.Thread(target=delete, daemon=True).start()
    assert len(list(backend.logs("demo", follow=True))) == 2


def test_a_watch_too_old_for_the_server_lists_again(backend, kube, script):
    """410 Gone: the resourceVersion is older than the server keeps; list afresh, then watch again."""
    answered = []

    def gone(request):
        answered.append(request)
        if len(answered) > 1:
            return None  # from the second watch on, the emulator's own watch answers
        return (b'{"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", '
                b'"code": 410, "reason": "Expired", "message": "too old resource version: 1 (42)"}}\n')

    kube.emulator["watch", kmock.resource("v1/pods")] << gone
    _two_ranks(kube, backend, script)
    lists_before = _gets(kube, "/pods")
    _finish_later(kube, JOB)
    assert sorted(c.text for c in backend.logs("demo", follow=True)) == ["rank 0 hello\n", "rank 1 hello\n"]
    assert _gets(kube, "/pods") - lists_before == 2  # the first list, and one more after the 410
    assert _watches(kube, "/pods") == 2
