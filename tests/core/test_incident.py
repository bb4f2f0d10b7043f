"""Reading pg_waldump's text into destructive transactions (lines as PostgreSQL 15's pg_waldump prints them)."""

from __future__ import annotations

from drtui.core.incident import RelationNames, parse_waldump

HEAD = "rmgr: {rmgr:<11} len (rec/tot):     54/    54, tx:        {xid}, lsn: 0/0194{n:04X}, prev 0/0194ECF0, desc: "


def line(rmgr: str, xid: int, n: int, desc: str) -> str:
    return HEAD.format(rmgr=rmgr, xid=xid, n=n) + desc


def commit(xid: int, n: int, rels: str = "") -> str:
    return line("Transaction", xid, n, "COMMIT 2026-12-01 22:20:48.982240 UTC" + (f"; rels: {rels}" if rels else ""))


def test_drop_truncate_delete_and_below_threshold() -> None:
    lines = [
        line("Heap", 733, 1, "DELETE off 21 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/16384/1259 blk 14"),
        commit(733, 2, "base/16384/16443 base/16384/16446; dropped stats: 2/16384/16443"),
        line("Storage", 734, 3, "CREATE base/16384/16500"),
        commit(734, 4, "base/16384/16436"),
        *[line("Heap", 735, 10 + i, f"DELETE off {i} flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/16384/16416 blk 0")
          for i in range(3)],
        commit(735, 20),
        line("Heap", 736, 21, "DELETE off 1 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/16384/16416 blk 0"),
        line("Transaction", 736, 22, "ABORT 2026-12-01 22:20:49.000000 UTC"),
    ]
    found = {xid: changes for xid, _, _, changes in parse_waldump(lines, threshold=3)}
    assert found == {733: [("DROP", [16443, 16446], None)], 734: [("TRUNCATE", [16500, 16436], None)],
                     735: [("DELETE", [16416], 3)]}
    assert 735 not in {xid for xid, *_ in parse_waldump(lines, threshold=4)}


def test_names_keep_tables_and_say_where_they_came_from() -> None:
    names = RelationNames(current={16500: "public.invoices"}, remembered={16443: "public.scratch"})
    assert names.tables([16500, 16436]) == (("public.invoices",), "")
    assert names.tables([16443, 16446]) == (("public.scratch",), "name from an earlier reading of the catalog")
    assert names.tables([17000]) == (("relfilenode 17000",),
                                     "not in production's catalog, now or when drtui last read it")
