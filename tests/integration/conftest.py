"""Integration tests share the session-wide installs of ``tests/conftest.py``."""
