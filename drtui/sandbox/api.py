"""A small HTTP stand-in for the app's API: /healthz, /readyz and /healthz/backup, answering for the database
of one environment of a drtui config, as the real app would. Run as `python -m drtui.sandbox.api`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

from drtui.core.config import Config, Environment, load_config

HEAD_REVISION = "0007_invoices_due_date"


def _database_state(env: Environment) -> dict:
    try:
        with psycopg.connect(host=env.host, port=env.port, dbname=env.database, user=env.user,
                             password=env.password(), connect_timeout=2) as conn:
            in_recovery = conn.execute("select pg_is_in_recovery()").fetchone()[0]
            try:
                revision = conn.execute("select version_num from alembic_version").fetchone()
            except psycopg.errors.UndefinedTable:
                revision = None
    except psycopg.Error:
        return {"connected": False, "migrations_current": False, "revision": None}
    current = revision is not None and revision[0] == HEAD_REVISION and not in_recovery
    return {"connected": True, "migrations_current": current, "revision": revision and revision[0],
            "in_recovery": in_recovery}


def _backup_state(config: Config) -> tuple[int, dict]:
    heartbeat = config.backup_dir / "LAST_SUCCESS.txt"
    try:
        text = heartbeat.read_text().strip()
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (OSError, ValueError):
        return 503, {"status": "missing", "last_success": None}
    age = (datetime.now(UTC) - at).total_seconds()
    ok = age <= config.objectives.dump_max_age.total_seconds()
    return (200 if ok else 503), {"status": "ok" if ok else "stale", "last_success": text, "age_seconds": age}


def make_handler(config: Config, env: Environment) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                db = _database_state(env)
                code, body = (200 if db["connected"] else 503), {
                    "status": "ok" if db["connected"] else "error", "db_connected": db["connected"]}
            elif self.path == "/readyz":
                db = _database_state(env)
                ready = db["connected"] and db["migrations_current"]
                code, body = (200 if ready else 503), {"status": "ok" if ready else "not_ready", "database": db}
            elif self.path == "/healthz/backup":
                code, body = _backup_state(config)
            else:
                code, body = 404, {"status": "not_found"}
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(config, config.environment(args.env)))
    server.serve_forever()


if __name__ == "__main__":
    main()
