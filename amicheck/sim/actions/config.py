"""Configuration and dialplan actions over the PBX's fake files and dialplan.

GetConfig and UpdateConfig refuse paths outside the config directory (``File requires
escalated privileges``, the post-2022 text) unless the ``getconfig-traversal`` fault is on;
then ``../`` reaches the fake ``/etc/passwd``. UpdateConfig applies its ``Action-NNNNNN``
edits as 13's handle_updates does (same error texts) and writes the destination file.
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
        err(ctx, "File requires escalated privileges")
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
    key = path[len("/etc/asterisk/"):]
    if key in ctx.pbx.files:
        return err(ctx, "File exists")
    ctx.pbx.files[key] = ""
    ack(ctx, "New configuration file created successfully")
    return None


#: handle_updates() results -> astman_send_error texts (manager.c, 13.x)
_UPDATE_ERRORS = {
    "action": "Unknown action command",
    "category": "Given category does not exist",
    "nocat": "Category not specified",
    "argument": "Problem with category, value, or line (if required)",
    "newcat": "Create category did not complete successfully",
    "update": "Update did not complete successfully",
}


def _apply_updates(cats: list[tuple[str, list[tuple[str, str]]]], req: RequestLike) -> str:
    """handle_updates(): apply ``Action-NNNNNN`` to ``cats`` in place; "" or an error key."""
    for n in range(100000):
        action = req.header(f"Action-{n:06d}").lower()
        if not action:
            return ""
        cat = req.header(f"Cat-{n:06d}")
        if not cat:
            return "nocat"
        var, value = req.header(f"Var-{n:06d}"), req.header(f"Value-{n:06d}")
        match = req.header(f"Match-{n:06d}")
        found = next((c for c in cats if c[0] == cat), None)
        if action == "newcat":
            if found is not None:
                return "newcat"
            cats.append((cat, []))
            continue
        if action not in ("renamecat", "delcat", "emptycat", "update", "delete", "append",
                          "insert"):
            return "action"
        if action in ("renamecat", "update", "delete", "append", "insert") and not (
            value if action == "renamecat" else var
        ):
            return "argument"
        if found is None:
            return "category"
        lines = found[1]
        if action == "renamecat":
            cats[cats.index(found)] = (value, lines)
        elif action == "delcat":
            cats.remove(found)
        elif action == "emptycat":
            lines.clear()
        elif action in ("append", "insert"):
            lines.append((var, value))
        else:  # update, delete (a delete that finds nothing reports "update", as 13 does)
            hits = [i for i, (k, v) in enumerate(lines) if k == var and (not match or v == match)]
            if not hits:
                return "update"
            if action == "update":
                lines[hits[0]] = (var, value)
            else:
                del lines[hits[0]]
    return ""


def _updateconfig(ctx: ActionContext, req: RequestLike) -> None:
    names = required(ctx, req, "SrcFilename", "DstFilename", text="Filename not specified")
    if names is None:
        return None
    path = posixpath.normpath(posixpath.join("/etc/asterisk", names[1]))
    inside = path.startswith("/etc/asterisk/")
    dst = path[len("/etc/asterisk/"):] if inside else path
    if ctx.pbx.dialect == "22" and ctx.behaviour.config_paths_confined and not all(
        posixpath.normpath(posixpath.join("/etc/asterisk", n))[len("/etc/asterisk/"):]
        in ctx.pbx.files for n in names
    ):  # 22's is_restricted_file: a file that does not exist is refused too
        return err(ctx, "File requires escalated privileges")
    src = _config_key(ctx, names[0])
    if src is None:
        return None
    if not inside and ctx.behaviour.config_paths_confined:
        return err(ctx, "File requires escalated privileges")
    cats = _parse_conf(ctx.pbx.files[src])
    problem = _apply_updates(cats, req)
    if problem:
        return err(ctx, _UPDATE_ERRORS[problem])
    text = "".join(f"[{c}]\n" + "".join(f"{k} = {v}\n" for k, v in lines) + "\n"
                   for c, lines in cats)
    ctx.pbx.files[dst] = text
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
