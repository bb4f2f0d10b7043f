"""A production-like world for tests and `make demo` (see world.py)."""

from drtui.sandbox.world import APP_TABLES, PASSWORD, Insert, Sandbox

__all__ = ["APP_TABLES", "PASSWORD", "Insert", "Sandbox"]
