"""A drill's target at a random point: a kept base backup chosen at random, a moment uniformly inside its checked
window.

A drill that always restores the newest backup to "now" proves only the newest end of the WAL chain. Picking
the backup and the moment at random, drill after drill, walks the whole chain the retention keeps (AWS Backup's
restore testing does the same). The pick is seedable (the seed is recorded, so a drill can be repeated exactly)
and says which point it chose and why.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drtui.core.clock import Clock, isoformat
from drtui.core.config import Config, Environment
from drtui.core.errors import UsageError


@dataclass(frozen=True)
class RandomPick:
    moment: datetime
    backup: Path
    earliest: datetime
    latest: datetime
    seed: int
    candidates: int  # how many kept backups had a window to pick from

    def describe(self) -> str:
        return (f"{isoformat(self.moment)}, picked at random (seed {self.seed}) inside the checked window "
                f"{isoformat(self.earliest)} → {isoformat(self.latest)} of base backup {self.backup.name}, one "
                f"of {self.candidates} kept backups, so that drills test the whole WAL chain")


def pick_target(config: Config, source: Environment, clock: Clock, *, seed: int | None = None,
                wal_source: Path | None = None, base_backup: Path | None = None) -> RandomPick:
    """A random kept backup (or `base_backup`) with a usable window, and a moment uniformly inside it."""
    from drtui.core.inventory import scan

    inventory = scan(config, wal_source=wal_source, env=source, clock=clock)
    windows = [w for w in inventory.windows if w.usable and w.earliest and w.latest and w.earliest < w.latest
               and (base_backup is None or w.base_backup == base_backup)]
    if not windows:
        raise UsageError(f"no kept base backup in {config.backup_dir} has a recoverable window to pick a random "
                         "target from" + (f" (BASE_BACKUP {base_backup})" if base_backup else ""),
                         "take a base backup (`drtui backup base`) and let WAL be archived after it, or drill "
                         "without --random-target")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    window = rng.choice(sorted(windows, key=lambda w: w.base_backup.name))
    assert window.earliest and window.latest
    moment = window.earliest + (window.latest - window.earliest) * rng.random()
    return RandomPick(moment, window.base_backup, window.earliest, window.latest, seed, len(windows))
