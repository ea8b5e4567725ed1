"""Fixtures shared by several test modules (pytest finds them here by name)."""

from train_fixtures import world  # noqa: F401  (the tiny prepared world with its own tracking store)
