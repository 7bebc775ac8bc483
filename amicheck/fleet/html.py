"""The fleet as one self-contained HTML page: a targets x requirements matrix, worst first.

No scripts, fonts or images from elsewhere, so the page reads offline and as a CI artifact.
Every cell links to that target's own ``report.html`` (its problem entry for failures).
Everything that comes from a run or a fleet file is escaped here; elements carry ``data-``
attributes (``data-target``, ``data-req``, ``data-outcome``) so tests and scripts can read
the page without parsing its text.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from amicheck.fleet.model import FleetReport, TargetRow, TargetStatus
from amicheck.report.model import SEVERITIES, Outcome

__all__ = ["to_html"]

_SYMBOL = {Outcome.PASS: "\u2713", Outcome.FAIL: "\u2717", Outcome.ERROR: "!",
           Outcome.SKIP: "\u2013"}
_DOT = " \u00b7 "
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3;text-align:left}
table.matrix td.cell{text-align:center;padding:0;min-width:1.6em}
table.matrix td.cell a{display:block;text-decoration:none;color:inherit;padding:2px 4px}
table.matrix th.req{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;
 font-size:12px;padding:4px 2px;white-space:nowrap}
.o-pass{background:#e6f4e6;color:#1b6e1b}.o-fail{background:#f9d6d5;color:#a31515;font-weight:bold}
.o-error{background:#fde8c8;color:#8a4b00;font-weight:bold}.o-skip{background:#f2f2f2;color:#777}
.o-none{background:#fff}.reg{outline:3px solid #7a00c2;outline-offset:-3px}
.s-error,.s-incomplete{color:#8a4b00;font-weight:bold}.s-not-compliant{color:#a31515;font-weight:bold}
.s-compliant{color:#1b6e1b}td[class^="s-"]{white-space:nowrap}.muted{color:#666}td.err{background:#fde8c8;text-align:left}
.sev-critical{color:#fff;background:#7a0000}.sev-high{background:#f9d6d5}
.sev-medium{background:#fde8c8}.sev-low{background:#fffbd6}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _cell(row: TargetRow, key: str, message: str, title: str) -> str:
    outcome = row.outcome_map.get(key)
    regression = key in row.regressions
    cls = f"cell o-{outcome.value if outcome else 'none'}" + (" reg" if regression else "")
    if outcome is None:
        return f'<td class="{cls}" data-req="{_e(key)}" data-outcome="none"></td>'
    href = f"targets/{quote(row.name)}/report.html"
    if outcome in (Outcome.FAIL, Outcome.ERROR):
        href += f"#p-{quote(key)}"
    tip = f"{row.name} \u00b7 {key} {title}: {outcome.value}"
    if regression:
        tip += " (regression: new since the baseline)"
    if message:
        tip += f" \u2014 {message}"
    flag = ' data-regression="1"' if regression else ""
    return (f'<td class="{cls}" data-req="{_e(key)}" data-outcome="{outcome.value}"{flag}>'
            f'<a href="{_e(href)}" title="{_e(tip)}">{_SYMBOL[outcome]}</a></td>')


def _matrix(report: FleetReport) -> list[str]:
    reqs = report.requirements_worst_first()
    out = ['<table class="matrix" id="matrix"><thead><tr><th>target</th><th>status</th>'
           '<th>fail</th>']
    for r in reqs:
        out.append(f'<th class="req sev-{_e(r.severity)}" data-req="{_e(r.id)}" '
                   f'title="{_e(r.id)} [{_e(r.severity)}] {_e(r.title)}">{_e(r.id)}</th>')
    out.append("</tr></thead><tbody>")
    for row in report.worst_first():
        msgs = dict(row.messages)
        bad = row.count(Outcome.FAIL) + row.count(Outcome.ERROR)
        tags = (f'<br><small class="muted">{_e(", ".join(row.tags))}</small>'
                if row.tags else "")
        faults = (f'<br><small class="muted">faults: {_e(", ".join(row.faults))}</small>'
                  if row.faults else "")
        name = (f'<a href="targets/{_e(quote(row.name))}/report.html">{_e(row.name)}</a>'
                if row.outcomes else _e(row.name))
        out.append(f'<tr data-target="{_e(row.name)}" data-status="{row.status.value}">'
                   f'<th title="{_e(row.target)} \u00b7 {_e(row.profile)}">{name}{tags}{faults}'
                   f'</th><td class="s-{row.status.value}">{_e(row.status.value)}</td>'
                   f"<td>{bad}</td>")
        if row.status is TargetStatus.ERROR:
            out.append(f'<td class="err" colspan="{max(1, len(reqs))}">'
                       f'{_e(row.error or "not audited")}</td>')
        else:
            out.extend(_cell(row, r.id, msgs.get(r.id, ""), r.title) for r in reqs)
        out.append("</tr>")
    out.append("</tbody></table>")
    return out


def _by_requirement(report: FleetReport) -> list[str]:
    table = report.by_requirement()
    reg: dict[str, int] = {}
    for row in report.rows:
        for k in row.regressions:
            reg[k] = reg.get(k, 0) + 1
    out = ['<table id="by-requirement"><thead><tr><th>requirement</th><th>severity</th>'
           '<th>title</th><th>fail</th><th>error</th><th>pass</th><th>skip</th>'
           + ("<th>new</th>" if report.baseline is not None else "")
           + "</tr></thead><tbody>"]
    for r in report.requirements_worst_first():
        c = table.get(r.id, {})
        new = f"<td>{reg.get(r.id, 0)}</td>" if report.baseline is not None else ""
        out.append(f'<tr data-req="{_e(r.id)}" data-fail="{c.get("fail", 0)}">'
                   f"<td>{_e(r.id)}</td><td class=\"sev-{_e(r.severity)}\">{_e(r.severity)}</td>"
                   f"<td>{_e(r.title)}</td><td>{c.get('fail', 0)}</td>"
                   f"<td>{c.get('error', 0)}</td><td>{c.get('pass', 0)}</td>"
                   f"<td>{c.get('skip', 0)}</td>{new}</tr>")
    out.append("</tbody></table>")
    return out


def _by_severity(report: FleetReport) -> list[str]:
    table = report.by_severity()
    total = len(report.rows)
    out = ['<table id="by-severity"><thead><tr><th>severity</th><th>targets failing</th>'
           "<th>failed checks</th></tr></thead><tbody>"]
    order = list(SEVERITIES) + sorted(set(table) - set(SEVERITIES))
    for sev in order:
        row = table.get(sev, {"targets": 0, "failures": 0})
        out.append(f'<tr data-severity="{_e(sev)}"><td class="sev-{_e(sev)}">{_e(sev)}</td>'
                   f"<td>{row['targets']} of {total}</td><td>{row['failures']}</td></tr>")
    out.append("</tbody></table>")
    return out


def to_html(report: FleetReport) -> str:
    """Render the fleet page (pure: returns the text)."""
    counts = report.status_counts()
    summary = ", ".join(f"{counts[s]} {s.value}" for s in TargetStatus if counts[s])
    facts = [f"{len(report.rows)} target(s): {summary or 'none'}"]
    if report.baseline is not None:
        facts.append(f"baseline {report.baseline}: {report.regressions} regression(s) "
                     "(outlined cells)")
    if report.shards and report.shards != ("1/1",):
        facts.append(f"merged from shards {', '.join(report.shards)}")
    if report.duration:
        facts.append(f"{report.duration:.0f} s wall")
    if report.version:
        facts.append(f"amicheck {report.version}")
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>amicheck fleet {_e(report.fleet)}</title>"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body>")
    status = "COMPLIANT" if report.ok else "NOT COMPLIANT"
    parts = [
        head,
        f'<h1>amicheck fleet <span id="fleet-name">{_e(report.fleet)}</span>: '
        f'<span id="fleet-status">{status}</span></h1>',
        f'<p id="facts">{_DOT.join(_e(f) for f in facts)}</p>',
        "<h2>Per severity</h2>", *_by_severity(report),
        "<h2>Targets \u00d7 requirements (worst first)</h2>",
        '<p class="muted">\u2713 pass \u00b7 \u2717 fail \u00b7 ! error (the check could not '
        "run) \u00b7 \u2013 skipped \u00b7 blank: not checked. Each cell links to the target's "
        "own report.</p>",
        *_matrix(report),
        "<h2>Per requirement</h2>", *_by_requirement(report),
        "</body></html>\n",
    ]
    return "\n".join(parts)
