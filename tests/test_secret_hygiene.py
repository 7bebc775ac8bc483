"""Canary: failing checks run for real leave no secret and no MD5 key in any byte written.

``amicheck run --fault challenge-broken`` makes the MD5 check AMI-AUTH-003 fail with ``key``
(md5(challenge + secret)) among its locals; run with ``-l -vv --log-level DEBUG``, with and
without ``--pcap``. Then every byte written (stdout, stderr, every file under the working and
report directories, pcaps included) is searched for each profile secret in the forms it could
take in an output (raw, hex, base64, HTML/JSON/repr-escaped) and for every MD5 key that could
have been computed: md5(challenge + secret) for every number that appears anywhere in the
outputs (challenges included), for every secret.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from amicheck.profile import default_profile
from amicheck.sim.faults import FAULTS

#: Every secret the run can know: the profile's and the fault users'.
SECRETS = sorted(
    default_profile().secrets()
    | {u.secret for f in FAULTS.values() for u in getattr(f, "extra_users", ()) if u.secret}
)
_NUMBER = re.compile(rb"(?<![0-9])[0-9]{4,20}(?![0-9])")
_HEX32 = re.compile(rb"[0-9A-Fa-f]{32,}")
RUN_TIMEOUT = 90


def secret_leak_forms(secret: str) -> set[bytes]:
    """The forms a secret could take in a report, a log, a terminal or a capture."""
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper(), html.escape(secret), html.escape(secret,
             quote=False), json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms |= {enc.decode(), enc.decode().rstrip("=")}
    return {f.encode() for f in forms if f}


@dataclass
class Hit:
    where: str
    what: str


def find_leaks(outputs: dict[str, bytes], secrets: list[str]) -> list[Hit]:
    """Every secret form, and every md5(number + secret) seen as hex in ``outputs``."""
    hits: list[Hit] = []
    for secret in secrets:
        for form in secret_leak_forms(secret):
            hits += [Hit(w, f"secret form {form!r}") for w, b in outputs.items() if form in b]
    numbers = {m.group().decode() for b in outputs.values() for m in _NUMBER.finditer(b)}
    keys = {hashlib.md5((n + s).encode()).hexdigest(): f"md5({n}+<{s[:2]}..>)"
            for n in numbers for s in secrets}
    for where, data in outputs.items():
        for m in _HEX32.finditer(data):
            run = m.group().decode().lower()
            for i in range(len(run) - 31):
                if run[i:i + 32] in keys:
                    hits.append(Hit(where, f"MD5 key {keys[run[i:i + 32]]}"))
    return hits


@dataclass
class Run:
    outputs: dict[str, bytes]
    stdout: str
    returncode: int
    numbers: int = 0


def _start(tmp: Path, pcap: bool) -> tuple[subprocess.Popen[bytes], Path]:
    work = tmp / ("pcap" if pcap else "plain")
    work.mkdir()
    cmd = [sys.executable, "-m", "amicheck", "run", "--fault", "challenge-broken",
           "--report-dir", str(work / "reports"), "--fail-delay", "0.4"]
    if pcap:
        cmd.append("--pcap")
    cmd += ["--", "-l", "-vv", "--log-level", "DEBUG", "-p", "no:cacheprovider",
            "-k", "AUTH and not timeout and not unauthenticated_limit"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    return proc, work


def _collect(proc: subprocess.Popen[bytes], work: Path) -> Run:
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    outputs = {"stdout": out, "stderr": err}
    for path in sorted(work.rglob("*")):
        if path.is_file():
            outputs[str(path.relative_to(work))] = path.read_bytes()
    return Run(outputs, out.decode("utf-8", "replace"), proc.returncode)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("hygiene")
    started = {name: _start(tmp, name == "pcap") for name in ("plain", "pcap")}
    return {name: _collect(*pair) for name, pair in started.items()}


def _summary(hits: list[Hit]) -> str:
    seen = sorted({f"{h.where}: {h.what}" for h in hits})
    return f"{len(hits)} hit(s):\n" + "\n".join(seen[:30])


@pytest.mark.parametrize("name", ["plain", "pcap"])
def test_the_run_failed_the_md5_check_with_locals(runs: dict[str, Run], name: str) -> None:
    """The canary only means something if the leak-prone path really ran."""
    run = runs[name]
    assert run.returncode == 1, run.stdout[-2000:]
    assert "test_md5_challenge_login FAILED" in run.stdout
    assert re.search(r"^key\s+= '", run.stdout, re.M), "no -l locals for `key` in the output"
    assert {"junit.xml", "report.html", "report.json"} <= {
        Path(k).name for k in run.outputs}
    pcaps = [k for k in run.outputs if k.endswith(".pcap")]
    assert bool(pcaps) is (name == "pcap")
    numbers = {m.group() for b in run.outputs.values() for m in _NUMBER.finditer(b)}
    assert len(numbers) > 10  # the challenges are among them


@pytest.mark.parametrize("name", ["plain", "pcap"])
def test_no_secret_form_in_any_output(runs: dict[str, Run], name: str) -> None:
    hits = [h for h in find_leaks(runs[name].outputs, SECRETS) if h.what.startswith("secret")]
    assert not hits, _summary(hits)


def test_no_md5_key_in_the_pcaps(runs: dict[str, Run]) -> None:
    run = runs["pcap"]
    pcaps = {k: v for k, v in run.outputs.items() if k.endswith(".pcap")}
    assert b"Key: ********" in b"".join(pcaps.values())  # the MD5 login is in them, masked
    # challenges seen in the text outputs belong to the same run: search with all numbers
    hits = [h for h in find_leaks(run.outputs, SECRETS) if h.where in pcaps]
    assert not hits, _summary(hits)


@pytest.mark.parametrize("name", ["plain", "pcap"])
def test_no_md5_key_in_any_output(runs: dict[str, Run], name: str) -> None:
    hits = find_leaks(runs[name].outputs, SECRETS)
    assert not hits, _summary(hits)


def test_the_detector_finds_planted_leaks() -> None:
    """The search itself can fail: a key, a hex and an escaped form are all found."""
    secret = "Ucm4mi-All1<&>"
    key = hashlib.md5(b"913847339" + secret.encode()).hexdigest()
    outputs = {
        "clean": b"challenge 913847339 key ********",
        "key": b"Challenge: 913847339\r\nkey = 'X" + key.upper().encode() + b"'",
        "hex": b"data " + secret.encode().hex().encode(),
        "html": b"<td>" + html.escape(secret).encode() + b"</td>",
        "b64": base64.b64encode(secret.encode()).rstrip(b"="),
    }
    found = {h.where for h in find_leaks(outputs, [secret])}
    assert found == {"key", "hex", "html", "b64"}
