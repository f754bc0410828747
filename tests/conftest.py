"""Shared pytest configuration. Helpers live in tests/support/."""

# Fixtures shared by several test modules (the storage tests' ``data_dir`` and ``storage``).
pytest_plugins = ("tests.support.durable",)
