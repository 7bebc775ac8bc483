"""AMI action handlers of the simulated UCM: what each action answers, Asterisk 13's way.

The session core (server.py/session.py) frames input, handles Login/Logoff/Challenge/Events
and checks the write privilege; every other action lands here through :func:`dispatch`.
Each handler answers exactly as Asterisk 13.38 does in ../shared/conformance/ (reply text,
header order, ActionID placement, event lists), except where the UCM guide says otherwise:

- ``Queues`` answers as an event list (the guide), not as 13.x raw CLI text:
  ``Response: Success`` + ``EventList: start`` + ``Message: Queues will follow``, then per
  queue ``Event: QueueStatus`` (the fields of QueueStatus's ``QueueParams`` item), per member
  ``Event: QueueMemberStatus`` (the fields of the broadcast QueueMemberStatus event: Queue,
  MemberName, Interface, StateInterface, ...), and ``Event: QueuesComplete`` with
  ``EventList: Complete`` and ``ListItems``. Every item carries the ActionID last.
- ListCommands lists only what the user may run (``privileges.may_run``), ``(Priv: ...)``
  from the UCM table (Bridge* need ``call``), unless a fault says otherwise.
- GetConfig refuses paths outside the config directory (``File requires escalated
  privileges``, the post-2022 text) unless the ``getconfig-traversal`` fault is on.

Handlers never do I/O and never sleep; ``ctx.reply`` queues a message to the session and
the PBX (``ctx.pbx``) emits events and schedules delays through the core.
"""

from __future__ import annotations

from amicheck.errors import AmiCheckError
from amicheck.privileges import may_run, privilege_header
from amicheck.sim import replies
from amicheck.sim.actions import bridges, calls, config, queues, system
from amicheck.sim.actions.base import ActionContext, Handler, RequestLike, aid, err
from amicheck.sim.actions.dialect import dialect_of
from amicheck.sim.actions.system import ASTERISK_VERSION

__all__ = [
    "ActionContext",
    "Handler",
    "HANDLERS",
    "SYNOPSIS",
    "HandlerError",
    "RequestLike",
    "dispatch",
    "ASTERISK_VERSION",
]


class HandlerError(AmiCheckError):
    """A handler raised: a simulator bug, collected by the core and re-raised at teardown."""

    def __init__(self, action: str, cause: BaseException) -> None:
        super().__init__(f"simulator handler for {action!r} raised "
                         f"{type(cause).__name__}: {cause}")
        self.action = action
        self.cause = cause


# --- the UCM's action list (ListCommands) ----------------------------------------------------

#: Action name -> synopsis, as Asterisk 13.38 lists them (06-listcommands recording), plus
#: the parking and agent actions a UCM loads. Login/Logoff/Challenge/Events are the core's.
SYNOPSIS: dict[str, str] = {
    "AbsoluteTimeout": "Set absolute timeout.",
    "AgentLogoff": "Sets an agent as no longer logged in.",
    "Agents": "Lists agents and their status.",
    "AOCMessage": "Generate an Advice of Charge message on a channel.",
    "Atxfer": "Attended transfer.",
    "BlindTransfer": "Blind transfer channel(s) to the given destination",
    "Bridge": "Bridge two channels already in the PBX.",
    "BridgeDestroy": "Destroy a bridge.",
    "BridgeInfo": "Get information about a bridge.",
    "BridgeKick": "Kick a channel from a bridge.",
    "BridgeList": "Get a list of bridges in the system.",
    "BridgeTechnologyList": "List available bridging technologies and their statuses.",
    "BridgeTechnologySuspend": "Suspend a bridging technology.",
    "BridgeTechnologyUnsuspend": "Unsuspend a bridging technology.",
    "CancelAtxfer": "Cancel an attended transfer.",
    "Challenge": "Generate Challenge for MD5 Auth.",
    "Command": "Execute Asterisk CLI Command.",
    "CoreSettings": "Show PBX core settings (version etc).",
    "CoreShowChannels": "List currently active channels.",
    "CoreStatus": "Show PBX core status variables.",
    "CreateConfig": "Creates an empty file in the configuration directory.",
    "DataGet": "Retrieve the data api tree.",
    "DBDel": "Delete DB entry.",
    "DBDelTree": "Delete DB Tree.",
    "DBGet": "Get DB Entry.",
    "DBPut": "Put DB entry.",
    "DialplanExtensionAdd": "Add an extension to the dialplan",
    "DialplanExtensionRemove": "Remove an extension from the dialplan",
    "Events": "Control Event Flow.",
    "ExtensionState": "Check Extension Status.",
    "ExtensionStateList": "List the current known extension states.",
    "Filter": "Dynamically add filters for the current manager session.",
    "GetConfig": "Retrieve configuration.",
    "GetConfigJSON": "Retrieve configuration (JSON format).",
    "Getvar": "Gets a channel variable or function value.",
    "Hangup": "Hangup channel.",
    "ListCategories": "List categories in configuration file.",
    "ListCommands": "List available manager commands.",
    "LocalOptimizeAway": "Optimize away a local channel when possible.",
    "LoggerRotate": "Reload and rotate the Asterisk logger.",
    "Login": "Login Manager.",
    "Logoff": "Logoff Manager.",
    "MailboxCount": "Check Mailbox Message Count.",
    "MailboxStatus": "Check mailbox.",
    "MessageSend": "Send an out of call message to an endpoint.",
    "ModuleCheck": "Check if module is loaded.",
    "ModuleLoad": "Module management.",
    "Originate": "Originate a call.",
    "Park": "Park a channel.",
    "ParkedCalls": "List parked calls.",
    "Parkinglots": "Get a list of parking lots",
    "Ping": "Keepalive command.",
    "PresenceState": "Check Presence State",
    "QueueAdd": "Add interface to queue.",
    "QueueLog": "Adds custom entry in queue_log.",
    "QueueMemberRingInUse": "Set the ringinuse value for a queue member.",
    "QueuePause": "Makes a queue member temporarily unavailable.",
    "QueuePenalty": "Set the penalty for a queue member.",
    "QueueReload": "Reload a queue, queues, or any sub-section of a queue or queues.",
    "QueueRemove": "Remove interface from queue.",
    "QueueReset": "Reset queue statistics.",
    "QueueRule": "Queue Rules.",
    "Queues": "Queues.",
    "QueueStatus": "Show queue status.",
    "QueueSummary": "Show queue summary.",
    "Redirect": "Redirect (transfer) a call.",
    "Reload": "Send a reload event.",
    "SendText": "Sends a text message to channel. A content type\tcan be optionally specified. "
                "If not set it is set to an empty string allowing a custom handler to default "
                "it as it sees fit.",
    "Setvar": "Sets a channel variable or function value.",
    "ShowDialPlan": "Show dialplan contexts and extensions",
    "Status": "List channel status.",
    "UpdateConfig": "Update basic configuration.",
    "UserEvent": "Send an arbitrary event.",
    "WaitEvent": "Wait for an event to occur.",
}


#: Asterisk 22's actions that 13 lacks (synopsis, privilege classes), and 13's it dropped.
_ONLY_22: dict[str, tuple[str, frozenset[str]]] = {
    "DeviceStateList": ("List the current known device states.",
                        frozenset({"call", "reporting"})),
    "PresenceStateList": ("List the current known presence states.",
                          frozenset({"call", "reporting"})),
    "QueueChangePriorityCaller": ("Change priority of a caller on queue.", frozenset()),
    "QueueWithdrawCaller": ("Request to withdraw a caller from the queue back to the "
                            "dialplan.", frozenset()),
}
_NOT_22 = frozenset({"DataGet", "Queues"})


def _listcommands(ctx: ActionContext, req: RequestLike) -> None:
    """The actions the user may run, ``Name: Synopsis  (Priv: ...)``, sorted like Asterisk."""
    table = ctx.behaviour.privilege_table
    leak = ctx.behaviour.list_all_commands
    synopsis = SYNOPSIS
    if ctx.pbx.dialect == "22":
        table = {**table, **{k.lower(): v[1] for k, v in _ONLY_22.items()}}
        synopsis = {k: v for k, v in SYNOPSIS.items() if k not in _NOT_22}
        synopsis.update({k: v[0] for k, v in _ONLY_22.items()})
    items: list[tuple[str, str]] = []
    for name in sorted(synopsis, key=str.lower):
        need = table.get(name.lower(), frozenset())
        if leak or may_run(ctx.privileges, name, table):
            items.append((name, f"{synopsis[name]}  (Priv: {privilege_header(need)})"))
    ctx.reply(replies.response("Success", aid(ctx), None, items))


def _unsupported(ctx: ActionContext, req: RequestLike) -> None:
    """An action the UCM lists but the model does not implement: a clean Error."""
    err(ctx, f"{req.header('Action', skip_empty=True)} is not available on this system")


def _in_dialect(handler: Handler) -> Handler:
    """``handler`` with the PBX told first which Asterisk the profile asks for (13/22)."""

    def run(ctx: ActionContext, req: RequestLike) -> None:
        ctx.pbx.dialect = dialect_of(ctx.profile)
        handler(ctx, req)

    run.__doc__ = handler.__doc__
    return run


HANDLERS: dict[str, Handler] = {
    name: _in_dialect(handler)
    for name, handler in {
        "listcommands": _listcommands,
        **system.HANDLERS,
        **calls.HANDLERS,
        **bridges.HANDLERS,
        **queues.HANDLERS,
        **config.HANDLERS,
    }.items()
}

_CORE_ACTIONS = frozenset({"login", "logoff", "challenge", "events"})


def dispatch(ctx: ActionContext, req: RequestLike) -> HandlerError | None:
    """Run the handler of ``req``'s action; never raises.

    An exception inside a handler is a simulator bug: the client gets ``Response: Error``
    (so it does not hang) and the exception comes back wrapped in :class:`HandlerError` for
    the core to collect (``sim.errors``) and re-raise at teardown.
    """
    action = req.header("Action", skip_empty=True)
    low = action.lower()
    handler = HANDLERS.get(low)
    if handler is None:
        if low in {name.lower() for name in SYNOPSIS} and low not in _CORE_ACTIONS:
            handler = _unsupported
        else:
            ctx.reply(replies.error(aid(ctx), f"Invalid/unknown command: {action}. Use "
                                    "Action: ListCommands to show available commands."))
            return None
    try:
        handler(ctx, req)
    except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the session
        ctx.reply(replies.error(aid(ctx), "Internal simulator error"))
        return HandlerError(action, exc)
    return None
