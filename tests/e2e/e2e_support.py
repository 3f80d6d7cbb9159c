"""Shared by the end-to-end tests (not in conftest.py: two conftest modules in one session shadow each other)."""

# Recognisable, so a leak anywhere is found by a plain search.
E2E_KEY = "sk-e2e-SECRET-doNotLeak-7f3a9c1b2d4e"
