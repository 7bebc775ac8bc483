"""Bridge and parking actions: Bridge, BridgeList/Info/Destroy/Kick, the bridge
technologies, Park, ParkedCalls and Parkinglots (Asterisk 13.38 texts and shapes)."""

from __future__ import annotations

from amicheck.sim.actions.base import (
    ActionContext,
    Handler,
    RequestLike,
    ack,
    channel_or_error,
    err,
    required,
    scan_int,
    send_list,
)
from amicheck.sim.pbx import Bridge

__all__ = ["HANDLERS"]


def _bridge(ctx: ActionContext, req: RequestLike) -> None:
    names = required(ctx, req, "Channel1", "Channel2",
                     text="Missing channel parameter in request")
    if names is None:
        return None
    a_name, b_name = names
    pbx = ctx.pbx
    a = pbx.find_channel(a_name)
    if a is None:
        return err(ctx, f"Channel1 does not exist: {a_name}")
    b = pbx.find_channel(b_name)
    if b is None:
        return err(ctx, f"Channel2 does not exist: {b_name}")
    if a is b:
        return err(ctx, "Unable to bridge channel to itself")
    ack(ctx, "Channels have been bridged")
    pbx.bridge(a, b)
    return None


def _bridgelist(ctx: ActionContext, req: RequestLike) -> None:
    want = req.header("BridgeType")
    pbx = ctx.pbx
    send_list(ctx, "Bridge listing will follow", "BridgeListComplete", [
        ("BridgeListItem", pbx.bridge_snapshot(br)) for br in pbx.bridges.values()
        if not want or br.bridge_type == want
    ], id_first=True)


def _bridge_or_error(ctx: ActionContext, req: RequestLike) -> Bridge | None:
    uid = req.header("BridgeUniqueid")
    if not uid:
        err(ctx, "BridgeUniqueid must be provided")
        return None
    br = ctx.pbx.bridges.get(uid)
    if br is None:
        err(ctx, f"Bridge {uid} not found")
    return br


def _bridgeinfo(ctx: ActionContext, req: RequestLike) -> None:
    bridge = _bridge_or_error(ctx, req)
    pbx = ctx.pbx
    if bridge is None:
        return None
    send_list(ctx, "Bridge channel listing will follow", "BridgeInfoComplete", [
        ("BridgeInfoChannel", pbx.snapshot(pbx.channels[n]))
        for n in bridge.channels if n in pbx.channels
    ], pbx.bridge_snapshot(bridge), id_first=True)
    return None


def _bridgedestroy(ctx: ActionContext, req: RequestLike) -> None:
    bridge = _bridge_or_error(ctx, req)
    if bridge is None:
        return None
    pbx = ctx.pbx
    ack(ctx, "Bridge has been destroyed")
    pbx.destroy_bridge(bridge)
    return None


def _bridgekick(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    uid = req.header("BridgeUniqueid")
    if not name:
        return err(ctx, "Channel must be provided")
    pbx = ctx.pbx
    ch = pbx.find_channel(name)
    if uid:
        if uid not in pbx.bridges:
            return err(ctx, "Bridge not found")
        if ch is None or ch.bridge != uid:
            return err(ctx, "Channel kick from bridge failed")
    else:
        if ch is None:
            return err(ctx, "Channel does not exist")
        if ch.bridge is None:
            return err(ctx, "Channel is not in a bridge")
    ack(ctx, "Channel has been kicked")
    if ch is not None:
        pbx.kick(ch)
    return None


_BRIDGE_TECHS = (("holding_bridge", "Holding", "50"), ("native_rtp", "Native", "90"),
                 ("simple_bridge", "1to1Mix", "50"), ("softmix", "MultiMix", "10"))


def _bridgetechlist(ctx: ActionContext, req: RequestLike) -> None:
    send_list(ctx, "Bridge technology listing will follow", "BridgeTechnologyListComplete", [
        ("BridgeTechnologyListItem", [("BridgeTechnology", name), ("BridgeType", btype),
                                      ("BridgePriority", prio), ("BridgeSuspended", "No")])
        for name, btype, prio in _BRIDGE_TECHS
    ], id_first=True)


def _bridgetech_suspend(suspend: bool) -> Handler:
    def handler(ctx: ActionContext, req: RequestLike) -> None:
        tech = req.header("BridgeTechnology")
        if not tech:
            return err(ctx, "BridgeTechnology must be provided")
        if tech not in {t for t, _, _ in _BRIDGE_TECHS}:
            return err(ctx, f"Technology {tech} not found")
        ack(ctx, "Suspended bridge technology" if suspend else "Unsuspended bridge technology")
        return None
    return handler


def _park(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    timeout = req.header("Timeout")
    if not name:
        return err(ctx, "Channel not specified")
    secs = 45.0
    if timeout:
        parsed = scan_int(timeout)
        if parsed is None:
            return err(ctx, "Invalid Timeout value.")
        secs = parsed / 1000
    ch = channel_or_error(ctx, name, "Channel does not exist")
    if ch is None:
        return None
    ack(ctx, "Park successful")
    ctx.pbx.park(ch, secs)
    return None


def _parkedcalls(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    calls = [("ParkedCall", pbx.parked_fields(space, pbx.channels[name]))
             for space, name in sorted(pbx.parked.items()) if name in pbx.channels]
    send_list(ctx, "Parked calls will follow", "ParkedCallsComplete", calls,
              [("Total", str(len(calls)))])


def _parkinglots(ctx: ActionContext, req: RequestLike) -> None:
    send_list(ctx, "Parking lots will follow", "ParkinglotsComplete", [
        ("Parkinglot", [("Name", "default"), ("StartSpace", "701"), ("StopSpace", "720"),
                        ("Timeout", "45")]),
    ])


HANDLERS: dict[str, Handler] = {
    "bridge": _bridge,
    "bridgelist": _bridgelist,
    "bridgeinfo": _bridgeinfo,
    "bridgedestroy": _bridgedestroy,
    "bridgekick": _bridgekick,
    "bridgetechnologylist": _bridgetechlist,
    "bridgetechnologysuspend": _bridgetech_suspend(True),
    "bridgetechnologyunsuspend": _bridgetech_suspend(False),
    "park": _park,
    "parkedcalls": _parkedcalls,
    "parkinglots": _parkinglots,
}
