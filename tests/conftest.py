"""Shared pytest configuration. Helpers live in tests/support/."""
