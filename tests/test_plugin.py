"""The pytest plugin, exercised through pytester: options, ini, fixtures, markers, IDs, skips."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import hypothesis  # noqa: F401
import pytest

# Imported here, before pytester snapshots sys.modules: an in-process run would otherwise import
# them afresh each time (slow for hypothesis, fatal for cryptography's compiled core).
import amicheck.capture  # noqa: F401
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
from amicheck.profile import default_profile
from amicheck.requirements import CATALOGUE

IDS = sorted(CATALOGUE)


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """Run the simulator once in this process before any in-process pytester run.

    pytester restores ``sys.modules`` after each run; a module first imported inside a run
    (lazily, e.g. by certificate generation) would be imported again by the next one, and
    cryptography's compiled core does not survive that.
    """
    from amicheck.client import AmiClient
    from amicheck.sim import Simulator

    with Simulator(default_profile(), host="127.0.0.1", port=0, tls_port=0) as sim:
        assert sim.tls_port is not None
        AmiClient.connect(sim.host, sim.tls_port, tls=True, timeout=5).close()
ID1, ID2, ID3 = IDS[0], IDS[1], IDS[2]


def _suite(pytester: pytest.Pytester, name: str, body: str) -> Path:
    """A module under suites/ (where requirement IDs are mandatory)."""
    path = pytester.path / "suites" / f"{name}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def test_help_shows_the_amicheck_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "amicheck: AMI compliance checks:",
        "*--ami-target=sim|HOST?:PORT?*",
        "*--ami-profile=FILE*",
        "*--ami-fault=NAME*",
        "*--ami-allow-destructive*",
        "*--ami-allow-bruteforce*",
        "*--ami-outside-source=IP*",
        "*--ami-report-dir=DIR*",
        "*--ami-pcap*",
        "*--ami-fail-delay=SECONDS*",
    ])
    result.stdout.fnmatch_lines(["*ami_target*", "*ami_report_dir*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for name in ("requirement(id)", "destructive", "bruteforce", "slow", "sim_only"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}:*"])


def test_plain_pytest_run_is_inert(pytester: pytest.Pytester) -> None:
    """An unrelated project: no scapy, no simulator, no client import, no reports written."""
    pytester.makepyfile(
        """
        import sys

        def test_nothing_heavy_imported():
            heavy = [m for m in sys.modules
                     if m.split(".")[0] == "scapy" or m.startswith(("amicheck.sim",
                     "amicheck.client", "amicheck.report", "amicheck.capture"))]
            assert heavy == []
            assert "amicheck.plugin" in sys.modules  # loaded through the entry point
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
    assert "amicheck:" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ami-target", "a:b:c"], "*--ami-target: expected 'sim' or HOST?:PORT?, got 'a:b:c'"),
        (["--ami-target", "host:99999"], "*--ami-target: port must be 1-65535*"),
        (["--ami-target", "[::1"], "*unclosed*"),
        (["--ami-profile", "nope.toml"], "*--ami-profile: no such file: nope.toml*"),
        (["--ami-outside-source", "10.0.0.300"], "*not an IP address*"),
        (["--ami-fail-delay", "soon"], "*--ami-fail-delay: not a number*"),
        (["--ami-fail-delay", "-1"], "*between 0 and 60*"),
        (["--ami-fault", "no-such-fault"], "*unknown fault(s): no-such-fault*"),
        (["--ami-target", "127.0.0.1:7777", "--ami-fault", "privilege-leak"],
         "*--ami-fault applies to the simulator only*"),
        (["--ami-target", "127.0.0.1", "--ami-fail-delay", "0"], "*simulator only*"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_broken_profile_is_one_usage_error(pytester: pytest.Pytester) -> None:
    bad = pytester.path / "bad.toml"
    bad.write_text('[settings]\nport = "seven"\nbogus = 1\n')
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--ami-profile", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{bad.name}: invalid profile*settings.*"])
    assert "Traceback" not in result.stderr.str()


def test_ini_options(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        ami_target = 192.0.2.10:7000
        ami_outside_source = 127.0.0.3
        ami_allow_destructive = true
        ami_report_dir = out
        ami_pcap = yes
        """
    )
    pytester.makepyfile(
        """
        def test_settings(ami_settings, pytestconfig):
            s = ami_settings
            assert (s.target.host, s.target.port) == ("192.0.2.10", 7000)
            assert s.outside_source == "127.0.0.3"
            assert s.allow_destructive and not s.allow_bruteforce and s.pcap
            assert s.report_dir == pytestconfig.rootpath / "out"
            assert s.explicit
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_command_line_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nami_target = 192.0.2.10\n")
    pytester.makepyfile(
        """
        def test_settings(ami_settings):
            assert ami_settings.is_sim
        """
    )
    pytester.runpytest("--ami-target", "sim").assert_outcomes(passed=1)


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nami_target = host:0\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ami-target: port must be 1-65535*"])


def test_sim_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from amicheck.plugin import Target

        def test_target(ami_target, ami_profile, ami_sim):
            assert isinstance(ami_target, Target)
            assert ami_target.is_sim and ami_target.sim is ami_sim
            assert ami_target.host == "127.0.0.1" and ami_target.port == ami_sim.port
            assert ami_target.tls_port == ami_sim.tls_port
            assert ami_target.stock_port == ami_sim.stock_port
            assert ami_target.outside_source == "127.0.0.2"
            assert ami_profile is ami_sim.profile

        def test_client(ami_client):
            assert ami_client.request("Ping").ok

        def test_login_other_user_and_tls(ami_login):
            c = ami_login("reportuser1", tls=True)
            assert c.request("Ping").ok

        def test_connect_unauthenticated(ami_connect):
            c = ami_connect()
            assert c.banner.startswith("Asterisk Call Manager/")

        def test_unknown_user(ami_login):
            with pytest.raises(LookupError, match="no AMI user 'nobody'"):
                ami_login("nobody")

        def test_clients_closed_at_teardown(ami_connect, request):
            c = ami_connect()
            request.addfinalizer(lambda: None)
            request.config.stash.setdefault(pytest.StashKey(), None)
            pytest.last_client = c

        def test_previous_client_closed():
            assert pytest.last_client.closed
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=7)


def test_fault_and_fail_delay_reach_the_simulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_sim(ami_sim, ami_profile):
            assert "short-username" in ami_sim.faults
            assert ami_sim.fail_delay == 0.05
            assert ami_profile.user("ami123") is not None
        """
    )
    result = pytester.runpytest("--ami-fault", "short-username", "--ami-fail-delay", "0.05")
    result.assert_outcomes(passed=1)


def test_profile_option(pytester: pytest.Pytester) -> None:
    src = Path(default_profile().path or "")
    text = src.read_text().replace('name = "amicheck-simulator"', 'name = "branch-ucm"')
    prof = pytester.path / "ucm.toml"
    prof.write_text(text)
    pytester.makepyfile(
        """
        def test_profile(ami_profile):
            assert ami_profile.name == "branch-ucm"
        """
    )
    pytester.runpytest("--ami-profile", str(prof)).assert_outcomes(passed=1)


def test_real_target_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_target(ami_target, ami_profile):
            assert not ami_target.is_sim and ami_target.sim is None
            assert (ami_target.host, ami_target.port) == ("127.0.0.1", 9)
            assert ami_target.tls_port == ami_profile.settings.tls_port
            assert ami_target.outside_source == "127.0.0.9"
            assert not ami_target.allow_destructive and ami_target.allow_bruteforce

        def test_sim_fixture_skips(ami_sim):
            pass
        """
    )
    result = pytester.runpytest(
        "--ami-target", "127.0.0.1:9", "--ami-outside-source", "127.0.0.9",
        "--ami-allow-bruteforce", "-rs",
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs the embedded simulator (target is 127.0.0.1:9)*"])


# --- requirement IDs ---------------------------------------------------------------------------


def test_requirement_ids_go_to_user_properties(pytester: pytest.Pytester) -> None:
    _suite(pytester, "test_a", f"""
        import pytest

        @pytest.mark.requirement("{ID1}")
        def test_one():
            pass

        @pytest.mark.requirement("{ID2}")
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            pass
        """)
    reprec = pytester.inline_run("-p", "no:cacheprovider", "--ami-report-dir", "r")
    reprec.assertoutcome(passed=3)
    props = {r.nodeid: r.user_properties for r in reprec.getreports("pytest_runtest_logreport")
             if r.when == "call"}
    assert props["suites/test_a.py::test_one"] == [("requirement", ID1)]
    assert props["suites/test_a.py::test_param[1]"] == [("requirement", ID2)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def test_x():\n    pass\n",
         "*test_x: needs exactly one @pytest.mark.requirement(ID), has 0"),
        (f"import pytest\n@pytest.mark.requirement('{ID1}')\n@pytest.mark.requirement('{ID2}')\n"
         "def test_x():\n    pass\n", "*needs exactly one*has 2"),
        ("import pytest\n@pytest.mark.requirement('AMI-XXX-999')\ndef test_x():\n    pass\n",
         "*unknown requirement ID 'AMI-XXX-999' (not in the catalogue)"),
        ("import pytest\n@pytest.mark.requirement()\ndef test_x():\n    pass\n",
         "*requirement marker takes one ID string*"),
        (f"import pytest\n@pytest.mark.requirement('{ID1}')\ndef test_x():\n    pass\n"
         f"@pytest.mark.requirement('{ID1}')\ndef test_y():\n    pass\n",
         f"*test_y: duplicate requirement ID '{ID1}' (also on suites/test_bad.py::test_x)"),
        (f"import pytest\npytestmark = pytest.mark.requirement('{ID1}')\n"
         "class TestC:\n    def test_a(self): pass\n    def test_b(self): pass\n",
         f"*test_b: duplicate requirement ID '{ID1}'*"),
    ],
)
def test_bad_requirement_ids_are_collection_errors(
    pytester: pytest.Pytester, body: str, message: str
) -> None:
    path = pytester.path / "suites" / "test_bad.py"
    path.parent.mkdir()
    path.write_text(body)
    result = pytester.runpytest("-p", "no:cacheprovider", "-o", "ami_suites=suites")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting suites/test_bad.py*", message])


def test_duplicate_ids_across_modules(pytester: pytest.Pytester) -> None:
    for name in ("test_a", "test_b"):
        _suite(pytester, name, f"""
            import pytest

            @pytest.mark.requirement("{ID3}")
            def test_x():
                pass
            """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [f"*suites/test_b.py::test_x: duplicate requirement ID '{ID3}' (also on "
         "suites/test_a.py::test_x)"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_tests_outside_suites_need_no_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_projects_own_suites_directory_is_left_alone(pytester: pytest.Pytester) -> None:
    """Only the shipped suites and ``ami_suites`` paths are compliance suites."""
    _suite(pytester, "test_mine", "def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
    pytester.makeini("[pytest]\nami_suites = suites\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_x: needs exactly one @pytest.mark.requirement(ID)*"])


# --- skip rules --------------------------------------------------------------------------------

_MARKED = f"""
    import pytest

    @pytest.mark.requirement("{ID1}")
    @pytest.mark.destructive
    def test_destructive():
        pass

    @pytest.mark.requirement("{ID2}")
    @pytest.mark.bruteforce
    def test_bruteforce():
        pass

    @pytest.mark.requirement("{ID3}")
    @pytest.mark.sim_only
    def test_sim_only():
        pass
    """


def test_real_target_skips_unless_opted_in(pytester: pytest.Pytester) -> None:
    _suite(pytester, "test_marked", _MARKED)
    result = pytester.runpytest("--ami-target", "127.0.0.1:9", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines([
        "*destructive: changes state on the target; opt in with --ami-allow-destructive",
        "*bruteforce: guesses passwords on the target; opt in with --ami-allow-bruteforce",
        "*sim_only: needs the embedded simulator*",
    ])
    result = pytester.runpytest(
        "--ami-target", "127.0.0.1:9", "--ami-allow-destructive", "--ami-allow-bruteforce",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=2, skipped=1)


def test_simulator_runs_everything(pytester: pytest.Pytester) -> None:
    _suite(pytester, "test_marked", _MARKED)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


# --- evidence ----------------------------------------------------------------------------------


def test_failure_shows_redacted_transcript(pytester: pytest.Pytester) -> None:
    user = default_profile().user("ucmamiuser1")
    assert user is not None and user.secret is not None
    secret = user.secret
    pytester.makepyfile(
        f"""
        def test_fails(ami_client):
            ami_client.request("Ping")
            assert False, "the secret is {secret}"

        def test_passes(ami_client):
            ami_client.request("Ping")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "AMI transcript" in out
    assert "Action: Ping" in out and "Secret: ********" in out
    assert secret not in out
    assert out.count("AMI transcript") == 1


def test_simulator_errors_are_raised_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_breaks_sim(ami_sim):
            ami_sim.errors.append(RuntimeError("handler blew up"))

        def test_next_is_clean(ami_sim):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*internal error(s); first: RuntimeError: handler blew up*"])


def test_metric_is_recorded(pytester: pytest.Pytester) -> None:
    _suite(pytester, "test_m", f"""
        import pytest

        @pytest.mark.requirement("{ID1}")
        def test_measure(ami_metric):
            ami_metric("ping", 1.5, "ms", samples=[1.0, 2.0])
        """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{ID1} ping = 1.5 ms (2 samples)"])
    data = json.loads((pytester.path / "reports" / "report.json").read_text())
    assert data["results"][0]["metrics"] == [
        {"name": "ping", "value": 1.5, "unit": "ms", "samples": [1.0, 2.0]}
    ]


def test_require_ids_ini_applies_everywhere(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-o", "ami_require_ids=true", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_x: needs exactly one @pytest.mark.requirement(ID), has 0"])


def test_report_header_only_when_configured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--ami-fault", "crlf-only", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["amicheck: target sim, faults crlf-only"])
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert "amicheck: target" not in result.stdout.str()
