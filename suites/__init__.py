"""amicheck's compliance suites: plain pytest modules, one requirement ID per test.

A package so that its modules get unique names (``suites.test_privileges`` does not clash
with ``tests/test_privileges.py`` when both are imported in one process).
"""
