"""A staging restore from a dump in an S3 repository: the dump and its uploads archive fetched from the bucket.

The dump restore reads its inputs more than once (the dump checked whole for what a dump must never do, then
loaded by psql or pg_restore; the uploads archive checked, then extracted), so each object is fetched once,
before anything is touched: by ranged GETs in parallel (resumed where a connection broke, every range checked
against the ETag the listing saw), into a private folder of the state directory, and used only when whole and
of its listed size. The folder holds only the last fetch, so it never grows into a second backup_dir.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from drtui.core.backup import uploads_of
from drtui.core.config import Config, Environment
from drtui.core.inventory.remote import Listed, head, list_prefix, object_chunks, settings_for
from drtui.core.objectstore import ObjectStoreError, S3Url, short_object

FETCHED = "fetched"


def _newest_dump(config: Config, env: Environment) -> Listed | None:
    assert config.repository is not None
    settings = config.repository.settings
    dumps = [obj for obj in list_prefix(config.repository.backups, settings, "list the repository's dumps")
             if obj.url.name.startswith(f"{env.database}_") and obj.url.name.endswith(".sql.gz")]
    return max(dumps, key=lambda obj: obj.url.name, default=None)


def _fetch(obj: Listed, config: Config, folder: Path) -> Path:
    settings = settings_for(config, obj.url)
    dest = folder / obj.url.name
    partial = folder / f".{obj.url.name}.partial"
    written = 0
    try:
        with open(partial, "wb") as out:
            for chunk in object_chunks(obj, settings, threading.Event(), f"fetch {obj.url.name}"):
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != obj.size:
            raise short_object(obj.url, obj.size, written, f"fetch {obj.url.name}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dest)
    return dest


def fetch_dump(config: Config, env: Environment, dump: S3Url | None,
               uploads: Path | S3Url | None) -> tuple[Path | None, Path | None]:
    """The dump to restore (`dump`, else the repository's newest `<database>_<stamp>.sql.gz`) and its uploads
    archive (`uploads`, else the one of the dump's stamp, when the environment has an uploads_dir), fetched
    into state_dir/fetched/; (None, None) when the repository holds no dump. A missing uploads archive is
    returned as the local path it would have, so that the plan reports it as it does for a folder."""
    chosen = head(dump, settings_for(config, dump)) if dump else _newest_dump(config, env)
    if chosen is None:
        return None, None
    folder = config.state_dir / FETCHED
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    dump_path = _fetch(chosen, config, folder)
    if isinstance(uploads, Path) or (uploads is None and not env.uploads_dir):
        return dump_path, uploads
    name = uploads_of(Path(chosen.url.name)).name
    wanted = uploads or S3Url(chosen.url.bucket, chosen.url.key.removesuffix(chosen.url.name) + name)
    try:
        archive = head(wanted, settings_for(config, wanted))
    except ObjectStoreError as exc:
        if exc.not_found and uploads is None:
            return dump_path, folder / wanted.name
        raise
    return dump_path, _fetch(archive, config, folder)
