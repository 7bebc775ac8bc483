"""Which Asterisk the simulator speaks: 13 (what UCM firmware is built on, the default) or 22.

A client author can test against either. The profile chooses: ``[settings] dialect`` when
the profile has that key, else the banner's AMI version (``Asterisk Call Manager/11.0.0`` is
Asterisk 22; 2.x is 13). What the 22 dialect changes, each as Asterisk 22.10 does it:
Command answers ``Response: Success`` + ``Message: Command output follows`` + one ``Output:``
header per line (no ``--END COMMAND--``) and the wider ``core show channels`` columns;
CoreStatus adds CoreProcessedCalls; queue member snapshots add LastPause/LoginTime and
Wrapuptime (QueueParams ServicelevelPerf2), QueueMemberPause has no trailing Reason; the
``Queues`` action does not exist; UpdateConfig refuses a file that does not exist with
``File requires escalated privileges``; Filter's error texts are 22's.
"""

from __future__ import annotations

import re
from functools import lru_cache

from amicheck.profile import Profile

__all__ = ["DIALECTS", "dialect_of"]

DIALECTS = ("13", "22")
_AMI_VERSION = re.compile(r"Asterisk Call Manager/(\d+)\.")


@lru_cache(maxsize=64)
def _from(configured: str, banner: str) -> str:
    if configured in DIALECTS:
        return configured
    m = _AMI_VERSION.match(banner)
    return "22" if m and int(m.group(1)) >= 11 else "13"


def dialect_of(profile: Profile) -> str:
    """"13" or "22" for ``profile`` (see the module docstring)."""
    configured = profile.settings.dialect
    return _from(configured, profile.settings.banner)
