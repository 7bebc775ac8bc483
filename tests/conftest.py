"""Shared test configuration: pytester for plugin and suite tests."""

pytest_plugins = ["pytester"]
