"""Live traffic for the sandbox's production cluster: one booking every few seconds, until killed."""

from __future__ import annotations

import argparse
import time

import psycopg

from drtui.core.config import load_config
from drtui.core.postgres import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    env = load_config(args.config).environment("production")
    while True:
        try:
            with connect(env) as conn:
                while True:
                    conn.execute("insert into bookings (client_id, service, scheduled_for) "
                                 "values (1, 'live traffic', now() + interval '1 day')")
                    time.sleep(args.interval)
        except psycopg.Error:
            time.sleep(args.interval)


if __name__ == "__main__":
    main()
