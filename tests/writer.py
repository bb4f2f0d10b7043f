"""A writer that is not the app (nothing stops it): it keeps inserting into production before, during and after
a restore and its promotion, so that tests can tell the recovered data from what is written afterwards."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from drtui.core.postgres import connect
from drtui.sandbox import Sandbox


@dataclass
class Writer:
    """Inserts a booking every 50 ms into production, reconnecting whenever the server goes away."""

    sandbox: Sandbox
    stop: threading.Event = field(default_factory=threading.Event)
    committed: list[datetime] = field(default_factory=list)

    def run(self) -> None:
        env = self.sandbox.env("production")
        while not self.stop.is_set():
            try:
                with connect(env) as conn:
                    while not self.stop.wait(0.05):
                        conn.execute("insert into bookings (client_id, service) values (1, 'writer')")
                        self.committed.append(conn.execute("select clock_timestamp()").fetchone()[0])
            except (psycopg.Error, Exception):  # the server is stopped, restored, promoted: try again
                self.stop.wait(0.1)
