"""Golden files of the three records (DR drill record, PITR DR drill record, automated drill report) and of
`drtui drills --json`, rendered from hand-written journals: no server, so they stay fast (see tests/golden.py
for what is masked; `pytest --snapshot-update` regenerates them on purpose)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drtui.cli import main
from drtui.core import events as ev
from drtui.core.config import Config
from drtui.core.journal import Journal, journal_path
from drtui.core.planning import DUMP_STEPS
from drtui.core.report import write_report
from tests.golden import JsonGolden, TextGolden, normalize, normalize_text
from tests.tui.conftest import T0, write_config, write_drill_run, write_run


def write_staging_run(config: Config, run_id: str = "20260125T143000Z-staging") -> Path:
    """A journal of a dump restore into staging that passed its checks."""
    path = journal_path(config.state_dir, run_id)
    journal = Journal(path)
    journal.append(ev.RunStarted(T0, run_id, "staging", "staging", steps=list(DUMP_STEPS), pid=0,
                                 plan={"dump": "/srv/backups/cleaning_20260125T120000Z.sql.gz"}))
    at = T0
    for step in DUMP_STEPS:
        journal.append(ev.StepStarted(at, step, step.replace("_", " ").capitalize()))
        at += timedelta(seconds=4)
        journal.append(ev.StepFinished(at, step, 4.0))
    for name, outcome, detail in (("readyz", "passed", "200, migrations current"),
                                  ("row_counts", "passed", "bookings 181, clients 60"),
                                  ("uploads", "skipped", "no uploads archive")):
        journal.append(ev.CheckCompleted(at, name, outcome, detail))
    journal.append(ev.RunFinished(at, True, (at - T0).total_seconds(), None, {}))
    journal.close()
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return write_config(tmp_path_factory.mktemp("golden-records"))


@pytest.mark.parametrize(("journey", "write"), [("staging", write_staging_run), ("pitr", write_run),
                                                ("drill", write_drill_run)])
def test_each_record_is_as_golden(site: Config, journey: str, write, snapshot) -> None:
    report = write_report(site, write(site), operator="Ada Operator", reviewer="Grace Reviewer")
    text = normalize_text(report.read_text(), [site.path.parent], live=False)
    assert snapshot(name=f"{journey}_record", extension_class=TextGolden) == text


def test_drills_json_is_as_golden(site: Config, snapshot) -> None:
    if not list(site.report_dir.glob("*.md")):
        for write in (write_staging_run, write_run, write_drill_run):
            write_report(site, write(site), operator="Ada Operator", reviewer="Grace Reviewer")
    result = CliRunner().invoke(main, ["--config", str(site.path), "drills", "--json"])
    assert result.exit_code in (0, 1), result.output
    data = normalize(json.loads(result.stdout), [site.path.parent])  # live: it reads the clock
    assert snapshot(name="drills", extension_class=JsonGolden) == data
