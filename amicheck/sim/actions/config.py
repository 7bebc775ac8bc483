"""Configuration and dialplan actions over the PBX's fake files and dialplan.

GetConfig refuses paths outside the config directory (``File requires escalated
priveledges``, the post-2022 text) unless the ``getconfig-traversal`` fault is on; then
``../`` reaches the fake ``/etc/passwd``.
"""

from __future__ import annotations

import json
import posixpath

from amicheck.protocol.message import Message
from amicheck.sim.actions.base import (
    ActionContext,
    Handler,
    RequestLike,
    ack,
    aid,
    ast_true,
    err,
    item,
    listack,
    required,
    scan_int,
)

__all__ = ["HANDLERS"]


def _config_key(ctx: ActionContext, fn: str) -> str | None:
    """The file key of ``fn``, or None after answering why not (a path outside the config
    directory is refused unless the getconfig-traversal fault is on)."""
    path = posixpath.normpath(posixpath.join("/etc/asterisk", fn))
    inside = path.startswith("/etc/asterisk/")
    if not inside and ctx.behaviour.config_paths_confined:
        err(ctx, "File requires escalated priveledges")
        return None
    key = path[len("/etc/asterisk/"):] if inside else path
    if key not in ctx.pbx.files:
        err(ctx, "Config file not found")
        return None
    return key


def _config_file(ctx: ActionContext, req: RequestLike) -> str | None:
    """The file key of the mandatory ``Filename`` header (None once the error is sent)."""
    values = required(ctx, req, "Filename")
    return None if values is None else _config_key(ctx, values[0])


def _parse_conf(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    cats: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and "]" in line:
            cats.append((line[1:line.index("]")], []))
            continue
        if not cats:
            continue
        if "=>" in line:
            k, _, v = line.partition("=>")
            v = v.lstrip(">")
        else:
            k, _, v = line.partition("=")
        cats[-1][1].append((k.strip(), v.strip()))
    return cats


def _getconfig(ctx: ActionContext, req: RequestLike) -> None:
    key = _config_file(ctx, req)
    if key is None:
        return None
    category = req.header("Category")
    extra: list[tuple[str, str]] = []
    catcount = 0
    for cat, lines in _parse_conf(ctx.pbx.files[key]):
        if category and cat != category:
            continue
        extra.append((f"Category-{catcount:06d}", cat))
        for lineno, (k, v) in enumerate(lines):
            extra.append((f"Line-{catcount:06d}-{lineno:06d}", f"{k}={v}"))
        catcount += 1
    if category and catcount == 0:
        extra.append(("No categories found", ""))
    ack(ctx, None, extra)
    return None


def _getconfigjson(ctx: ActionContext, req: RequestLike) -> None:
    key = _config_file(ctx, req)
    if key is None:
        return None
    doc = {cat: dict(lines) for cat, lines in _parse_conf(ctx.pbx.files[key])}
    ack(ctx, None, [("JSON", json.dumps(doc, separators=(",", ":")))])
    return None


def _listcategories(ctx: ActionContext, req: RequestLike) -> None:
    key = _config_file(ctx, req)
    if key is None:
        return None
    cats = [c for c, _ in _parse_conf(ctx.pbx.files[key])]
    extra = [(f"Category-{i:06d}", c) for i, c in enumerate(cats)]
    ack(ctx, None, extra or [("Error", "no categories found")])
    return None


def _createconfig(ctx: ActionContext, req: RequestLike) -> None:
    fn = req.header("Filename")
    path = posixpath.normpath(posixpath.join("/etc/asterisk", fn))
    if not fn or not path.startswith("/etc/asterisk/"):
        return err(ctx, "Failed to create configuration file")
    ctx.pbx.files.setdefault(path[len("/etc/asterisk/"):], "")
    ack(ctx, "New configuration file created successfully")
    return None


def _updateconfig(ctx: ActionContext, req: RequestLike) -> None:
    names = required(ctx, req, "SrcFilename", "DstFilename", text="Filename not specified")
    if names is None or _config_key(ctx, names[0]) is None:
        return None
    ack(ctx)
    return None


def _showdialplan(ctx: ActionContext, req: RequestLike) -> None:
    want_ctx = req.header("Context")
    want_ext = req.header("Extension")
    pbx = ctx.pbx
    if want_ctx and want_ctx not in pbx.dialplan:
        return err(ctx, f"Did not find context {want_ctx}")
    if want_ext and not any(want_ext in pbx.dialplan[c] for c in pbx.dialplan
                            if not want_ctx or c == want_ctx):
        where = f"{want_ext}@{want_ctx}" if want_ctx else want_ext
        return err(ctx, f"Did not find extension {where}")
    listack(ctx, "DialPlan list will follow")
    n_items = n_exts = n_prios = n_ctx = 0
    for cname, extens in pbx.dialplan.items():
        if want_ctx and cname != want_ctx:
            continue
        n_ctx += 1
        for ename, prios in extens.items():
            if want_ext and ename != want_ext:
                continue
            n_exts += 1
            hint = pbx.hints.get((cname, ename))
            if hint:
                item(ctx, "ListDialplan", [("Context", cname), ("Extension", ename),
                                            ("Priority", "hint"), ("Application", hint),
                                            ("AppData", ""), ("Registrar", "pbx_config")],
                      id_first=True)
                n_items += 1
            for i, (app, data) in enumerate(prios, 1):
                item(ctx, "ListDialplan", [("Context", cname), ("Extension", ename),
                                            ("Priority", str(i)), ("Application", app),
                                            ("AppData", data), ("Registrar", "pbx_config")],
                      id_first=True)
                n_items += 1
                n_prios += 1
        for inc in pbx.includes.get(cname, ()):
            item(ctx, "ListDialplan", [("Context", cname), ("IncludeContext", inc),
                                        ("Registrar", "pbx_config")], id_first=True)
            n_items += 1
    items = [("Event", "ShowDialPlanComplete"), ("EventList", "Complete"),
             ("ListItems", str(n_items)), ("ListExtensions", str(n_exts)),
             ("ListPriorities", str(n_prios)), ("ListContexts", str(n_ctx))]
    action_id = aid(ctx)
    if action_id is not None:
        items.append(("ActionID", action_id))
    ctx.reply(Message(items))
    return None


def _dialplanextensionadd(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Context", "Extension", "Priority", "Application",
                      text="Context, Extension, Priority, and Application must be defined.")
    if values is None:
        return None
    context, exten, priority, app = values
    pi = scan_int(priority)
    if pi is None or pi < 1:
        return err(ctx, "Invalid priority")
    pbx = ctx.pbx
    if context not in pbx.dialplan:
        return err(ctx, "Could not find or create context specified")
    prios = pbx.dialplan[context].setdefault(exten, [])
    entry = (app, req.header("ApplicationData"))
    if pi <= len(prios):
        if not ast_true(req.header("Replace")):
            return err(ctx, "That extension and priority already exist at that context")
        prios[pi - 1] = entry
    elif pi == len(prios) + 1:
        prios.append(entry)
    else:
        return err(ctx, "Failed to add extension")
    ack(ctx, "Added requested extension")
    return None


def _dialplanextensionremove(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Context", "Extension",
                      text="Context and Extension must be provided for DialplanExtensionRemove")
    if values is None:
        return None
    context, exten = values
    pbx = ctx.pbx
    extens = pbx.dialplan.get(context)
    if extens is None:
        return err(ctx, f"Could not find context {context}")
    prios = extens.get(exten)
    priority = scan_int(req.header("Priority") or "")
    if prios is None or (priority is not None and not 1 <= priority <= len(prios)):
        return err(ctx, "Failed to remove extension")
    if priority is None or len(prios) == 1:
        del extens[exten]
    else:
        del prios[priority - 1]
    ack(ctx, "Removed the requested extension")
    return None

HANDLERS: dict[str, Handler] = {
    "getconfig": _getconfig,
    "getconfigjson": _getconfigjson,
    "listcategories": _listcategories,
    "createconfig": _createconfig,
    "updateconfig": _updateconfig,
    "showdialplan": _showdialplan,
    "dialplanextensionadd": _dialplanextensionadd,
    "dialplanextensionremove": _dialplanextensionremove,
}
