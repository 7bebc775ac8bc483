"""Shared test configuration: pytester for plugin and suite tests.

The heavy modules are imported once here, before any pytester run: pytester restores
``sys.modules`` after each in-process run, and re-importing cryptography's OpenSSL bindings
inside a later run breaks them ("Algorithm must be a registered hash algorithm") besides
costing about 1.5 s per run.
"""

import hypothesis  # noqa: F401
import pytest
import refasterisk
import sslyze  # noqa: F401

import amicheck.capture  # noqa: F401
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
import amicheck.tlsaudit  # noqa: F401

pytest_plugins = ["pytester"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the reference Asterisk servers this run started, once, on the controller."""
    if (
        not hasattr(session.config, "workerinput")
        and session.config.getoption("--asterisk-keep") is False
    ):
        refasterisk.stop_started()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--asterisk-keep",
        action="store_true",
        help="leave the reference Asterisk servers running after the run",
    )
