"""drtui: a guided disaster-recovery console for PostgreSQL."""

__version__ = "0.1.0"
