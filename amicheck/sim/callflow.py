"""Call flows of the simulated PBX that span channels: Dial of a Local channel into a
bridge (with the variables app_dial sets: DIALSTATUS, DIALEDPEERNAME/NUMBER, the timing), a
bridge dissolving when one party hangs up, the end of a dialplan thread, and Asterisk 22's
DeviceStateChange events for Local devices.

Each follows what the fidelity harness records from Asterisk 13.38 and 22.10 (see
tests/fidelity.py: originate-dial-bridge, redirect-live, originate-local-wait) and the code
it comes from (apps/app_dial.c, main/bridge.c, main/pbx.c ``__ast_pbx_run``,
main/core_local.c ``local_devicestate``, res/res_manager_devicestate.c). Kept out of
:mod:`amicheck.sim.pbx` for size; it works on the PBX's own state and event helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amicheck.sim.pbx import Bridge, Channel, Pbx

__all__ = ["dial", "dissolve", "pbx_ended", "local_devstate", "set_duration"]

_CALL = ("call",)
#: ast_softhangup(chan, AST_SOFTHANGUP_APPUNLOAD): the flag, not a Q.850 cause, is what
#: SoftHangupRequest's Cause shows when a dialplan thread ends
_APPUNLOAD = 16
#: bridge_dissolve: a cause <= 0 becomes AST_CAUSE_NORMAL_CLEARING
_NORMAL_CLEARING = 16
#: what dial_exec_full resets on the caller before it dials (stale results of an earlier Dial)
_DIAL_RESET = (
    "DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
    "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS",
)  # fmt: skip
_PRES_ALLOWED = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


def set_duration(pbx: Pbx, ch: Channel, name: str, seconds: float) -> None:
    """set_duration_var: ``NAME`` in whole seconds and ``NAME_MS`` in milliseconds."""
    ms = max(int(seconds * 1000), 0)
    pbx.set_var(ch, name, str(ms // 1000))
    pbx.set_var(ch, f"{name}_MS", str(ms))


def dial(pbx: Pbx, caller: Channel, data: str) -> bool:
    """Dial(``Local/EXT@CTX``) from ``caller`` (an originated channel running Dial):
    the Local pair, DialBegin, and when its ``;2`` half answers, DialEnd and a basic
    bridge (callee enters first, as ast_bridge_call imparts it) that dissolves when a
    party hangs up. False when the model cannot dial ``data`` (only Local/ is dialled)."""
    target = data.split(",", 1)[0].split("&", 1)[0]
    tech, _, rest = target.partition("/")
    if tech.lower() != "local":
        return False
    exten, _, ctx = rest.partition("@")
    ctx = ctx.split("/", 1)[0] or "default"
    if pbx.find_exten(ctx, exten) is None:
        return False
    for name in _DIAL_RESET:
        pbx.set_var(caller, name, "")
    started = pbx.now()
    number = f"{exten}@{ctx}"
    base = f"Local/{exten}@{ctx}"
    seq = f"{pbx._local_seq:08x}"
    pbx._local_seq += 1
    one = pbx._new_channel(f"{base}-{seq};1", 0, ctx, exten, linkedid=caller.linkedid)
    two = pbx._new_channel(f"{base}-{seq};2", 4, ctx, exten, linkedid=caller.linkedid)
    one.peer, two.peer = two, one
    one.local_base = two.local_base = base
    # app_dial: the callee's caller id is the caller's, or the caller's exten without one;
    # it inherits the caller's extension; the Local core hands ;1's caller id to ;2 as
    # connected line
    pbx._chan_event("Newchannel", one)
    pbx._chan_event("Newchannel", two)
    pbx.set_var(one, "DIALEDPEERNUMBER", number)
    one.cid_num = caller.cid_num or caller.exten
    one.cid_name = caller.cid_name
    one.exten = caller.exten
    one.application, one.appdata = "AppDial", "(Outgoing Line)"
    pbx._newexten(one, one.exten, "AppDial", "(Outgoing Line)")
    pbx._chan_event("NewCallerid", one, _PRES_ALLOWED)
    # local_call hands ;1's variables and caller id (as connected line) to ;2
    pbx.set_var(two, "DIALEDPEERNUMBER", number)
    two.conn_num, two.conn_name = one.cid_num, one.cid_name
    pbx._chan_event("NewConnectedLine", two)
    pbx.emit("LocalBridge", _CALL, [
        *pbx.snapshot(one, "LocalOne"), *pbx.snapshot(two, "LocalTwo"),
        ("Context", ctx), ("Exten", exten), ("LocalOptimization", "Yes"),
    ])
    pbx.emit("DialBegin", _CALL, [*pbx.snapshot(caller), *pbx.snapshot(one, "Dest"),
                                  ("DialString", f"{exten}@{ctx}")])

    def answered() -> None:
        if not one.alive or not caller.alive:
            return
        one.state = 6
        pbx._newstate(one)
        pbx.set_var(caller, "DIALSTATUS", "ANSWER")
        pbx.set_var(caller, "DIALEDPEERNAME", one.name)
        pbx.set_var(caller, "DIALEDPEERNUMBER", number)
        one.exten = ""  # wait_for_answer clears the answered peer's exten and dialcontext
        pbx.emit("DialEnd", _CALL, [*pbx.snapshot(caller), *pbx.snapshot(one, "Dest"),
                                    ("DialStatus", "ANSWER")])
        pbx._newexten(one, "", "AppDial", "(Outgoing Line)")  # its cleared exten, published
        answered_at = pbx.now()

        def bridge_over() -> None:  # dial_exec_full after the bridge: its timing, again ANSWER
            set_duration(pbx, caller, "ANSWEREDTIME", pbx.now() - answered_at)
            set_duration(pbx, caller, "DIALEDTIME", pbx.now() - started)
            pbx.set_var(caller, "DIALSTATUS", "ANSWER")

        caller.after_bridge = bridge_over
        pbx.bridge(one, caller).dissolve_hangup = True

    two.on_answer = answered
    pbx._run(two, ctx, exten, 1)
    return True


def dissolve(pbx: Pbx, br: Bridge, cause: int) -> None:
    """A party of a dissolve-on-hangup bridge hung up with ``cause``: every other party
    leaves and hangs up with it (bridge_dissolve; a Dial's caller and callee end)."""
    c = cause if cause > 0 else _NORMAL_CLEARING
    for name in list(br.channels):
        ch = pbx.channels.get(name)
        if ch is None:
            continue
        pbx._leave_bridge(ch)
        pbx._hangup(ch, c, request=False)


def pbx_ended(pbx: Pbx, ch: Channel, context: str, exten: str, priority: int) -> None:
    """``ch``'s dialplan thread ended at a location that does not exist (a Redirect to a
    missing extension, or the end of its extension): ast_softhangup(APPUNLOAD) and
    ast_hangup with the channel's cause, which nothing set (0). The other half of a Local
    pair gets the hangup queued with that cause. 13 publishes the SoftHangupRequest with
    the new location; 22 with its last snapshot (the goto publishes none), the Hangup with
    the new one."""
    if not ch.alive:
        return
    peer = ch.peer if ch.peer is not None and ch.peer.alive else None

    def goto() -> None:
        ch.context, ch.exten, ch.priority = context, exten, priority

    if pbx.dialect == "13":
        goto()
    pbx._chan_event("SoftHangupRequest", ch, ("Cause", str(_APPUNLOAD)))
    goto()
    pbx._hangup_event(ch, 0)
    if peer is not None:
        pbx.queued_hangup(peer, 0)
        pbx._hangup_event(peer, 0)
    pbx._after_hangup(ch, peer)


def local_devstate(pbx: Pbx, ch: Channel) -> None:
    """22 loads res_manager_devicestate: a Local half's state change (ast_setstate) or
    its end (the channel destructor) publishes the device's state, uncached, so each one
    is a DeviceStateChange: INUSE while a pair of the device lives, else NOT_INUSE (or
    INVALID when the extension does not exist). 13 (the UCM's) emits none for Local."""
    base = ch.local_base
    if pbx.dialect == "13" or base is None:
        return
    if any(c.local_base == base and c.alive for c in pbx.channels.values()):
        state = "INUSE"
    else:
        exten, _, ctx = base[len("Local/"):].partition("@")
        state = "NOT_INUSE" if pbx.find_exten(ctx, exten) is not None else "INVALID"
    pbx.emit("DeviceStateChange", _CALL, [("Device", base), ("State", state)])
