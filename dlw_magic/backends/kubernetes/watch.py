"""Follow a job by watching the API server, not by polling it.

Polling a job once a second costs every follower four to five requests a second (the job object under each
engine's kind, its pods, sometimes events); a hub of hundreds of users following jobs loads the API server
with that. A watch is one long request that the server answers with changes as they happen: after one
list, a follower costs the server nothing until something changes, plus one request per watch timeout.

``JobWatch`` keeps the job object and its pods current from two watches (list, then watch from the list's
resourceVersion with bookmarks; list again on 410 Gone). When the server does not support watch for a
kind, ``unsupported`` turns true and the caller goes back to polling.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch

from .api import CONNECT_SECONDS, Api, _matches, coordinates

WATCH_SECONDS = 300  # the server ends each watch after this long (plus jitter); it resumes from the last version
RETRY_SECONDS = 2.0
# What a server without watch for a kind answers: not allowed, not implemented, not understood.
UNSUPPORTED = {400, 405, 406, 415, 501}


def watch_seconds(silence: float) -> int:
    """How long the server is asked to keep one watch open: about ``WATCH_SECONDS`` (spread, so that many
    followers do not renew at once), and always well under ``silence``. A healthy watch then never stays
    silent that long (the server ends it first), and one that does is half-open (the server, a proxy or a
    NAT went away without closing it): the read fails and the watch resumes from a new list."""
    spread = WATCH_SECONDS + random.randint(0, WATCH_SECONDS // 5)  # noqa: S311 - spread, not secrets
    return max(1, min(spread, int(silence * 3 / 4)))


class NotAWatch(Exception):
    """The server answered a watch with something other than a stream of events."""


class ObjectWatch:
    """The objects of one kind in a namespace that match ``selector`` (and ``name``), kept current by a watch."""

    def __init__(
        self, api: Api, kind: tuple[str, str], namespace: str, selector: dict[str, str],
        changed: threading.Condition, name: str | None = None,
    ) -> None:
        self.api, self.kind, self.namespace, self.selector, self.name = api, kind, namespace, selector, name
        self.changed = changed
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = ""
        self.unsupported = False
        self._stop = threading.Event()
        self._watch = Watch()
        self._thread: threading.Thread | None = None
        group, version, plural = coordinates(kind)
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        self._path = f"{base}/namespaces/{namespace}/{plural}"

    def _query(self) -> list[tuple[str, Any]]:
        query: list[tuple[str, Any]] = [("labelSelector", ",".join(f"{k}={v}" for k, v in self.selector.items()))]
        if self.name:
            query.append(("fieldSelector", f"metadata.name={self.name}"))
        return query

    def _wanted(self, obj: dict[str, Any]) -> bool:
        # Filtered here too: some servers (and the test emulator) ignore selectors.
        meta = obj.get("metadata") or {}
        return _matches(obj, self.selector) and (self.name is None or meta.get("name") == self.name)

    def start(self) -> None:
        """List once (so the first answer is complete), then watch from there on a thread."""
        self._list()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"dlw-watch-{self.kind[1]}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()

    def _list(self) -> None:
        data = self.api.call("GET", self._path, query=self._query()) or {}
        self.version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        with self.changed:
            self.objects = {o["metadata"]["name"]: o for o in data.get("items") or [] if self._wanted(o)}
            self.changed.notify_all()

    def _open(self, **kwargs: Any) -> Any:
        """One watch request; ``Watch.stream`` reads its lines (and stops it by closing the socket)."""
        seconds = kwargs.get("timeout_seconds") or watch_seconds(self.api.silence)
        query = [*self._query(), ("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", seconds)]
        if kwargs.get("resource_version"):
            query.append(("resourceVersion", kwargs["resource_version"]))
        client = self.api.client
        resp = client.call_api(*client.param_serialize(
            method="GET", resource_path=self._path, query_params=query,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        ), _request_timeout=(CONNECT_SECONDS, self.api.silence))
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException(http_resp=resp)
        return resp.response  # the urllib3 response: streamed line by line

    def _apply(self, event: Any) -> None:
        if not isinstance(event, dict) or "type" not in event or not isinstance(event.get("object"), dict):
            raise NotAWatch(str(event)[:200])
        obj = event["object"]
        meta = obj.get("metadata") or {}
        self.version = str(meta.get("resourceVersion") or self.version)
        if event["type"] == "BOOKMARK" or not self._wanted(obj):
            return
        with self.changed:
            if event["type"] == "DELETED":
                self.objects.pop(str(meta.get("name")), None)
            else:
                self.objects[meta["name"]] = obj
            self.changed.notify_all()

    def _run(self) -> None:
        gone = False
        while not self._stop.is_set():
            try:
                timeout = watch_seconds(self.api.silence)
                for event in self._watch.stream(self._open, resource_version=self.version, timeout_seconds=timeout):
                    self._apply(event)
                    gone = False
                    if self._stop.is_set():
                        return
            except ApiException as err:
                if self._stop.is_set():
                    return
                if err.status in UNSUPPORTED:
                    return self._give_up()
                if err.status == 410:  # our version is too old for the server: start over from a fresh list
                    if gone and self._stop.wait(RETRY_SECONDS):  # again at once: do not hammer the server
                        return
                    gone = True
                    self._relist()
                else:
                    self._stop.wait(RETRY_SECONDS)
            except NotAWatch:
                return self._give_up()
            except Exception:  # noqa: BLE001 - a dropped connection: wait, then resume from the last version
                if self._stop.wait(RETRY_SECONDS):
                    return
                self._relist()

    def _relist(self) -> None:
        try:
            self._list()
        except Exception:  # noqa: BLE001 - the server is away; the next round tries again
            self._stop.wait(RETRY_SECONDS)

    def _give_up(self) -> None:
        with self.changed:
            self.unsupported = True
            self.changed.notify_all()


class JobWatch:
    """A job object (by name) and its pods (by job id), kept current by two watches."""

    def __init__(
        self, api: Api, namespace: str, kind: tuple[str, str], name: str,
        job_selector: dict[str, str], pod_selector: dict[str, str],
    ) -> None:
        self.changed = threading.Condition()
        self.job = ObjectWatch(api, kind, namespace, job_selector, self.changed, name=name)
        self.pods = ObjectWatch(api, ("v1", "Pod"), namespace, pod_selector, self.changed)
        self.name = name

    def __enter__(self) -> JobWatch:
        try:
            self.job.start()
            self.pods.start()
        except ApiException:  # the first lists failed: let the caller's polling find out why
            self.job.unsupported = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.job.stop()
        self.pods.stop()

    @property
    def unsupported(self) -> bool:
        return self.job.unsupported or self.pods.unsupported

    def current(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(job object or None once deleted, its pods) as last seen."""
        with self.changed:
            return self.job.objects.get(self.name), list(self.pods.objects.values())

    def poller(
        self, finished: Callable[[dict[str, Any], list[dict[str, Any]]], bool],
        fallback: Callable[[], tuple[list[dict[str, Any]], bool]],
    ) -> Callable[[], tuple[list[dict[str, Any]], bool]]:
        """A ``poll`` for ``logs.follow_logs`` that answers from the watches (``fallback`` once they cannot)."""

        def poll() -> tuple[list[dict[str, Any]], bool]:
            if self.unsupported:
                return fallback()
            job, pods = self.current()
            return pods, job is None or finished(job, pods)  # None: deleted (cancelled, TTL)

        return poll
