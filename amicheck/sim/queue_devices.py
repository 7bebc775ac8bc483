"""The device states app_queue publishes for a queue (Asterisk 22's res_manager_devicestate
shows them as DeviceStateChange; 13 loads no such module): ``Queue:Q`` (RINGING while a caller
waits), ``Queue:Q_pause_IFACE`` per member, ``Queue:Q_avail``. app_queue sets them
AST_DEVSTATE_CACHABLE, so only a change of state is an event (fidelity script
queue-pause-devstate). Not modelled: update_status's ``Queue:Q_avail`` on a member's device
change. Kept out of :mod:`amicheck.sim.queue_app` for size.
"""

from __future__ import annotations

import weakref

from amicheck.sim.pbx import Pbx, Queue, QueueMember

__all__ = ["devstate", "pause_changed"]

_CALL = ("call",)
#: per PBX, the cached state of each queue device (a new Pbx.queues dict starts afresh)
_CACHE: weakref.WeakKeyDictionary[Pbx, tuple[dict[str, Queue], dict[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def devstate(pbx: Pbx, device: str, state: str) -> None:
    """Publish ``device``'s ``state`` in the 22 dialect if it changed."""
    if pbx.dialect == "13":
        return
    held = _CACHE.get(pbx)
    if held is None or held[0] is not pbx.queues:
        held = _CACHE[pbx] = (pbx.queues, {})
    cache = held[1]
    if cache.get(device) == state:
        return
    cache[device] = state
    pbx.emit("DeviceStateChange", _CALL, [("Device", device), ("State", state)])


def pause_changed(pbx: Pbx, q: Queue, m: QueueMember) -> None:
    """set_queue_member_pause's device states, before its QueueMemberPause: the member's
    pause device, then the queue's availability as it now stands."""
    devstate(pbx, f"Queue:{q.name}_pause_{m.interface}", "INUSE" if m.paused else "NOT_INUSE")
    if _available(pbx, m):
        devstate(pbx, f"Queue:{q.name}_avail", "NOT_INUSE")
    elif not any(_available(pbx, o) for o in q.members):
        devstate(pbx, f"Queue:{q.name}_avail", "INUSE")


def _available(pbx: Pbx, m: QueueMember) -> bool:
    """is_member_available: not paused, and idle, or busy with ringinuse on."""
    status = pbx.member_status(m)
    return not m.paused and (status in (0, 1) or (m.ringinuse and status in (2, 3, 6, 7)))
