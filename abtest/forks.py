"""What a forked worker must not share with its parent: one registry, run in each child.

``abtest serve`` builds the app once, in the server's master, and the server
forks its workers from it (:mod:`abtest.server`: granian's workers, or
gunicorn's with ``preload_app``).  Connections, random streams, locks and
threads made before the fork belong to the parent: a worker talking on its
parent's socket would read its siblings' replies, and one drawing from its
parent's random stream would repeat their choices.  Objects holding such state
register here; ``_after_fork()`` runs on each of them in every child.

The hook is installed with ``os.register_at_fork`` when the first object
registers, not at import.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["reset_after_fork", "process_alive"]

#: Objects whose ``_after_fork()`` runs in each forked child, while they live.
_owners: weakref.WeakSet = weakref.WeakSet()
_installed = False
_lock = threading.Lock()


def reset_after_fork(owner) -> None:
    """Have ``owner._after_fork()`` run in every child this process forks, while ``owner`` lives."""
    global _installed
    with _lock:
        if not _installed:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _installed = True
        _owners.add(owner)


def _after_fork_in_child() -> None:
    for owner in list(_owners):
        owner._after_fork()


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (someone else's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
