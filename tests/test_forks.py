"""The fork-reset registry: hooked on first use, run in every forked child."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from abtest import forks


def test_importing_the_app_registers_no_fork_hook():
    # Nothing happens at import: the hook is installed by the first object
    # that needs it (a store's counting connections, say).
    check = (
        "import abtest, abtest.service, abtest.web, abtest.forks as forks; print(forks._installed)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False"]


class Owner:
    def __init__(self):
        self.forked = False
        forks.reset_after_fork(self)

    def _after_fork(self):
        self.forked = True


def test_a_registered_owner_is_reset_in_the_child_only():
    owner = Owner()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, b"1" if owner.forked else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    assert not owner.forked


def test_the_registry_does_not_keep_an_owner_alive():
    owner = Owner()
    assert owner in set(forks._owners)
    del owner
    gc.collect()
    assert not any(isinstance(found, Owner) for found in forks._owners)
