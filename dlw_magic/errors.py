"""One exception type for every error a user can fix.

Faces (CLI, magics, REST handlers) print ``str(err)`` as one line and exit non-zero; they never show a
traceback for a DLWError.
"""

from __future__ import annotations


class DLWError(Exception):
    """An error the user can act on; its message is one line naming the file, field or job."""


class NotFound(DLWError):
    """A job, notebook or file that does not exist."""


class Conflict(DLWError):
    """A name already taken, or a state change that is not allowed (cancel a finished job)."""


class DiskFull(DLWError):
    """The disk DLW writes to (its data folder, a snapshot) has no space left."""


class Unavailable(DLWError):
    """The backend cannot be reached for now (a restarting API server, a dropped connection): worth trying
    again, unlike the other errors."""
