"""Kubernetes-safe names derived from user names (namespaces, claim names, hostPath sub-directories)."""

from __future__ import annotations

import hashlib
import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def safe_name(user: str, max_len: int = 40) -> str:
    """``alice`` -> ``alice``; ``Alice.Smith@x.org`` -> ``alice-smith-x-org-3f2a9c1d``.

    Names that are already DNS-1123 labels are kept, so admins recognise them; anything else is
    slugged and suffixed with a hash of the original, so two different users never share a name.
    """
    if not user:
        raise ValueError("empty user name")
    if len(user) <= max_len and _LABEL.match(user):
        return user
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", user.lower()).strip("-")
    slug = slug[: max(max_len - len(digest) - 1, 1)].strip("-") or "u"
    return f"{slug}-{digest}"
