"""Fixtures of the compliance suites (the plugin's ``ami_*`` fixtures are the base).

``ami_temp_user`` gives a check a user the profile lacks without the check reaching into the
simulator; ``ami_sources`` says from where the harness may log in, so that no check logs in
as a user whose Permitted IP(s) exclude the harness (issue 9's false alarm).
"""

from __future__ import annotations

import itertools
import secrets as _secrets
from collections.abc import Callable, Iterable, Iterator

import pytest

from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.plugin import Target
from amicheck.profile import User
from amicheck.redaction import register_derived

from ._support import Sources, TempUserFactory

#: Where a temporary user may log in from by default (the harness's own loopback address).
LOCAL_ONLY = ("127.0.0.1/255.255.255.255",)
_serial = itertools.count(1)


@pytest.fixture
def ami_temp_user(ami_target: Target) -> Iterator[TempUserFactory]:
    """Factory ``(username=None, *, privileges=("all",), permitted=LOCAL_ONLY, secret=None)``
    -> :class:`User`, added to the simulator for this test and removed at teardown.

    Against a real target it skips with the reason: amicheck never provisions users on a
    device. The secret (random unless given) is registered for redaction.
    """
    sim = ami_target.sim
    added: list[str] = []

    def make(
        username: str | None = None,
        *,
        privileges: Iterable[str] = ("all",),
        permitted: Iterable[str] = LOCAL_ONLY,
        secret: str | None = None,
    ) -> User:
        if sim is None:
            pytest.skip(f"needs a temporary AMI user, which amicheck adds only on the embedded "
                        f"simulator (target is {ami_target})")
        name = username or f"amitemp{next(_serial):03d}"
        password = secret if secret is not None else f"Tmp-{_secrets.token_hex(8)}1"
        register_derived(password)
        user = User(name, password, tuple(permitted), tuple(privileges))
        sim.add_user(user)
        added.append(name)
        return user

    yield make
    if sim is not None:
        for name in reversed(added):
            try:
                sim.remove_user(name)
            except KeyError:
                pass  # the test removed it itself


@pytest.fixture
def ami_sources(ami_target: Target, ami_connect: Callable[..., AmiClient]) -> Sources:
    """This machine's address as the target sees it, and the outside source (if any)."""
    try:
        client = ami_connect()
    except AmiCheckError as exc:
        pytest.fail(f"cannot connect to the AMI port: {exc}")
    local = str(client.local[0])
    client.close()
    return Sources(local, ami_target.outside_source)
