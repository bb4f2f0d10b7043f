"""After a restore over production: the old backups do not lead to the new timeline, so take a fresh one.

A point-in-time recovery that is promoted starts a new timeline. The base backups taken before it, and the WAL
archived after them, lead to the old timeline: none of them can restore a moment of the new one. Until a fresh
base backup of the new timeline exists, a second incident could only go back to before this one. The result,
the record and the wizard say so, and offer the backup at once (the same core path as `drtui backup base`).
"""

from __future__ import annotations

from drtui.core.config import Config

NOTE = ("{env} is on a new timeline now: the base backups taken before this restore, and their WAL chain, lead to "
        "the old timeline and cannot restore any moment after it; take a fresh base backup now "
        "(`drtui backup base --env {env}`)")


def fresh_backup_note(config: Config, environment: str, journey: str, ok: bool | None, paused: bool) -> str:
    """The note after a finished, promoted restore over production ('' for any other run)."""
    env = config.environments.get(environment)
    if journey != "pitr" or not ok or paused or env is None or not env.is_production:
        return ""
    return NOTE.format(env=env.name)
