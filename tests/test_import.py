"""``tickrec import``: cryptofeed raw logs and plain lines, on real captures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from realdata import GEMINI_V1, GEMINI_V2

from recorder.importer import import_cryptofeed, import_lines, parse_epoch_ns, parse_time_ns
from tickrec import contract
from tickrec.errors import DatasetError, ProtocolError, UsageError

V2 = GEMINI_V2
V1 = GEMINI_V1
V2_SYMBOLS = [
    "ALCXUSD",
    "ANKRUSD",
    "BATBTC",
    "BTCGBP",
    "ETHEUR",
    "FILUSD",
    "GRTUSD",
    "LINKETH",
    "LTCETH",
    "ZECLTC",
]


def test_times_parse_exactly_from_text() -> None:
    assert parse_epoch_ns("1624493666.4493928") == 1_624_493_666_449_392_800
    assert parse_epoch_ns("1624493666") == 1_624_493_666_000_000_000
    # a float would give ...449392795 or similar: the text is the truth
    assert parse_epoch_ns("1624493666.123456789") == 1_624_493_666_123_456_789
    assert parse_time_ns("2021-06-24T00:14:26.449392812Z") == 1_624_493_666_449_392_812
    assert parse_time_ns("2021-06-24T02:14:26.5+02:00") == 1_624_493_666_500_000_000
    for bad in ("1.2.3", "abc", "1624493666.1234567891", "2021-13-01T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_time_ns(bad)


def _received_lines(path: Path) -> list[tuple[int, str]]:
    out = []
    for line in path.read_text().split("\n"):
        head, sep, rest = line.partition(": ")
        if sep and head.replace(".", "").isdigit():
            out.append((parse_epoch_ns(head), rest))
    return out


def test_cryptofeed_v2_capture_gives_ten_symbol_partitions_with_exact_payloads(
    tmp_path: Path,
) -> None:
    [result] = import_cryptofeed([V2], tmp_path)
    assert not result.skipped and not result.already_imported
    partitions = contract.list_partitions(tmp_path)
    assert [p.symbol for p in partitions] == V2_SYMBOLS
    assert {(p.venue, p.date) for p in partitions} == {("gemini", "2021-06-24")}

    stored: dict[str, list[tuple[int, str]]] = {}
    for p in partitions:
        t = contract.read_partition(tmp_path, p.venue, p.date, p.symbol)
        assert set(t.column("protocol").to_pylist()) == {"gemini.v2"}
        seqs = t.column("seq").to_pylist()
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        ws = t.filter(pa.compute.equal(t.column("source"), "ws"))
        stored[p.symbol] = list(
            zip(
                ws.column("recv_ts").cast(pa.int64()).to_pylist(),
                ws.column("payload").to_pylist(),
                strict=True,
            )
        )
        # connection-wide rows (connect event, subscribe) reach every symbol
        assert t.column("source").to_pylist()[:2] == ["event", "ws_sent"]

    received = _received_lines(V2)
    assert len(received) == 678
    for ns, payload in received:
        if '"type":"heartbeat"' in payload:
            assert all((ns, payload) in rows for rows in stored.values())
        else:
            symbol = payload.split('"symbol":"', 1)[1].split('"', 1)[0]
            assert (ns, payload) in stored[symbol]
    assert sum(len(rows) for rows in stored.values()) == 678 - 7 + 7 * 10


def test_importing_twice_adds_nothing(tmp_path: Path) -> None:
    import_cryptofeed([V2], tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    [again] = import_cryptofeed([V2], tmp_path)
    assert again.already_imported and again.rows == 0
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == before
    footer = contract.read_footer(next(tmp_path.rglob("*.parquet")))
    assert (
        footer.extra["source_format"] == "cryptofeed" and len(footer.extra["source_sha256"]) == 64
    )


def test_v1_lines_get_synthetic_times_and_say_so(tmp_path: Path) -> None:
    start = parse_time_ns("2018-09-26T15:00:00Z")
    [result] = import_lines([V1], tmp_path, "gemini", "v1", symbol="btcusd", start_ns=start)
    [part] = result.parts
    footer = contract.read_footer(part)
    assert footer.symbol == "BTCUSD" and footer.extra["synthetic_recv_ts"] == "true"
    t = contract.read_partition(tmp_path, "gemini", "2018-09-26", "BTCUSD")
    assert t.column("payload").to_pylist() == V1.read_text().splitlines()
    assert t.column("venue_seq").to_pylist() == list(range(1, 13))
    recv = t.column("recv_ts").cast(pa.int64()).to_pylist()
    assert recv == [start + i * 1_000_000 for i in range(12)]
    assert t.column("exch_ts").cast(pa.int64()).to_pylist()[0] == 1_537_974_017_597_000_000


def test_timestamped_lines_keep_their_times(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    lines = V1.read_text().splitlines()[:3]
    src.write_text(
        "".join(f"2018-09-26T15:00:0{i}.12345678{i}Z {m}\n" for i, m in enumerate(lines))
    )
    [result] = import_lines([src], tmp_path / "d", "gemini", "v1", symbol="BTCUSD")
    footer = contract.read_footer(result.parts[0])
    assert footer.extra["synthetic_recv_ts"] == "false"
    assert footer.first_recv_ns == parse_time_ns("2018-09-26T15:00:00.123456780Z")
    assert footer.last_recv_ns == parse_time_ns("2018-09-26T15:00:02.123456782Z")


def test_malformed_lines_are_reported_with_file_and_line_or_fail_under_strict(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.jsonl"
    lines = V1.read_text().splitlines()
    src.write_text("\n".join([lines[0], '{"type":"update",', lines[1]]) + "\n")
    [result] = import_lines([src], tmp_path / "d", "gemini", "v1", symbol="BTCUSD", start_ns=0)
    assert result.rows == 3  # two messages, and the skipped line's event between them
    assert len(result.skipped) == 1 and result.skipped[0].startswith(f"{src}:2: ")
    with pytest.raises(DatasetError, match=f"{src}:2: "):
        import_lines(
            [src], tmp_path / "strict", "gemini", "v1", symbol="BTCUSD", start_ns=0, strict=True
        )
    assert not (tmp_path / "strict").exists()


def test_unknown_url_or_protocol_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    kraken = tmp_path / "KRAKEN.ws.1.0"
    kraken.write_text("wss://ws.kraken.com <-> 1633998511.159679\n")
    with pytest.raises(ProtocolError, match=r"KRAKEN\.ws\.1\.0:1: unknown URL.*ws\.kraken\.com"):
        import_cryptofeed([kraken], tmp_path / "d")
    odd = tmp_path / "GEMINI.ws.1.0"
    odd.write_text("wss://api.gemini.com/v3/elsewhere <-> 1633998511.159679\n")
    with pytest.raises(ProtocolError, match="cannot tell the protocol"):
        import_cryptofeed([odd], tmp_path / "d")
    with pytest.raises(UsageError, match="unknown protocol"):
        import_lines([V1], tmp_path, "gemini", "v9", symbol="BTCUSD")
    assert not (tmp_path / "d").exists() and not any(tmp_path.rglob("*.parquet"))


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    # Make one symbol's partition unwritable: the import fails and removes what it wrote.
    blocked = tmp_path / "raw" / "venue=gemini" / "date=2021-06-24" / "symbol=LINKETH"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where a directory should be")
    with pytest.raises(OSError):
        import_cryptofeed([V2], tmp_path)
    assert not any(tmp_path.rglob("*.parquet"))


def test_cli_import_reports_and_is_idempotent(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tickrec", *args, "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )

    first = run("import", "cryptofeed", str(V2))
    assert first.returncode == 0, first.stderr
    assert "761 rows in 10 files" in first.stdout
    second = run("import", "cryptofeed", str(V2))
    assert second.returncode == 0 and "already imported" in second.stdout
    bad = run("import", "lines", str(V1))
    assert bad.returncode == 2 and bad.stderr.startswith("error: --symbol is required")


def test_every_path_is_checked_before_anything_is_imported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    with pytest.raises(UsageError, match=r"nope\.log: no such file"):
        import_cryptofeed([V2, missing], tmp_path / "data")
    assert not (tmp_path / "data" / "raw").exists()  # the good file before it was not imported
    done = subprocess.run(
        [sys.executable, "-m", "tickrec", "import", "cryptofeed", str(V2), str(missing),
         "--data", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "no such file" in done.stderr
    assert not (tmp_path / "data" / "raw").exists()


def test_crlf_logs_import_as_their_lf_twins(tmp_path: Path) -> None:
    crlf = tmp_path / "crlf.log"
    crlf.write_bytes(V2.read_bytes().replace(b"\n", b"\r\n"))
    [lf] = import_cryptofeed([V2], tmp_path / "lf")
    [cr] = import_cryptofeed([crlf], tmp_path / "cr")
    assert not cr.skipped and cr.rows == lf.rows == 761
    for a, b in zip(sorted(lf.parts), sorted(cr.parts), strict=True):
        assert (
            contract.read_parts([contract.read_footer(a)])
            .drop_columns("run_id")
            .equals(contract.read_parts([contract.read_footer(b)]).drop_columns("run_id"))
        )


def test_a_time_out_of_range_is_a_skipped_line(tmp_path: Path) -> None:
    lines = V2.read_text().splitlines()
    received = next(i for i, line in enumerate(lines) if line[:1].isdigit())
    payload = lines[received].split(": ", 1)[1]
    # year 10000, and beyond what int64 ns can hold
    bad = [f"253402300800.5: {payload}", f"9999999999999999999: {payload}"]
    src = tmp_path / "future.log"
    src.write_text("\n".join([*lines[: received + 1], *bad, *lines[received + 1 :]]) + "\n")
    [result] = import_cryptofeed([src], tmp_path / "d")
    # the capture's rows, and a skipped event per bad line in each of its ten partitions
    assert result.rows == 761 + 2 * 10
    assert [m.split(": ", 1)[0] for m in result.skipped] == [
        f"{src}:{received + 2}",
        f"{src}:{received + 3}",
    ]
    assert all("time out of range" in m for m in result.skipped)
    for text in ("253402300800", "9223372036.854775808"):
        with pytest.raises(ValueError):
            parse_epoch_ns(text)
    assert parse_epoch_ns("9223372036.854775807") == 2**63 - 1
    with pytest.raises(ValueError, match="out of range"):
        parse_time_ns("2262-04-12T00:00:00Z")


@pytest.mark.parametrize(
    "url",
    [
        "wss://api.gemini.com/v1/marketdata/../../etc",
        "wss://api.gemini.com/v1/marketdata/%2e%2e",
        "wss://api.gemini.com/v1/marketdata/btc-usd",
        "wss://api.gemini.com/v1//marketdata/btcusd",
        "wss://notgemini.example/v1/marketdata/btcusd",
        "wss://api.gemini.com.evil.example/v1/marketdata/btcusd",
        "wss://gemini/v2/marketdata",
    ],
)
def test_urls_are_classified_by_exact_host_and_plain_path(tmp_path: Path, url: str) -> None:
    src = tmp_path / "in.log"
    src.write_text(f'{url} <-> 1624493656.3\n1624493656.4: {{"type":"heartbeat"}}\n')
    with pytest.raises(ProtocolError, match=r"in\.log:1: unknown URL"):
        import_cryptofeed([src], tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_known_urls_still_classify(tmp_path: Path) -> None:
    src = tmp_path / "in.log"
    src.write_text(
        "wss://api.sandbox.gemini.com/v1/marketdata/btcusd/ <-> 1624493656.3\n"
        '1624493656.4: {"type":"heartbeat","socket_sequence":0}\n'
    )
    [result] = import_cryptofeed([src], tmp_path / "d")
    assert [p.parent.name for p in result.parts] == ["symbol=BTCUSD"]


def test_outside_tools_dedupe_connection_rows_by_run_and_seq(v2_root: Path) -> None:
    """Heartbeats and other connection-wide rows sit in every symbol's partition; deduped by
    ``(run_id, seq)``, DuckDB and Polars (as the README shows them) get each message once."""
    import duckdb
    import polars as pl

    received = [text for _, text in _received_lines(V2)]
    glob = f"{v2_root}/raw/**/*.parquet"
    con = duckdb.connect()
    all_rows, distinct = con.execute(
        f"select count(*), count(distinct (run_id, seq)) "
        f"from read_parquet('{glob}', hive_partitioning = true)"
    ).fetchone() or (0, 0)
    ws = con.execute(
        "select payload from (select distinct on (run_id, seq) * "
        f"from read_parquet('{glob}', hive_partitioning = true)) "
        "where source = 'ws' order by run_id, seq"
    ).fetchall()
    assert all_rows > distinct and [p for (p,) in ws] == received

    rows = pl.scan_parquet(glob, hive_partitioning=True)
    messages = rows.unique(subset=["run_id", "seq"]).sort("run_id", "seq").collect()
    assert messages.height == distinct
    assert messages.filter(pl.col("source") == "ws")["payload"].to_list() == received


def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    """``tickrec import`` says what it is doing on a terminal, and nothing into a pipe."""
    import os
    import pty

    def run(*args: str, tty: bool) -> str:
        cmd = [sys.executable, "-m", "tickrec", *args, "--data", str(tmp_path / "d")]
        if not tty:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stderr
        main, other = pty.openpty()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=other)
        os.close(other)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=120)
        os.close(main)
        return b"".join(chunks).decode()

    shown = run("import", "cryptofeed", str(V2), tty=True)
    assert "\r\x1b[Kimport GEMINI.ws.1.0 (1/1): reading" in shown
    assert "\r\x1b[Kimport GEMINI.ws.1.0 (1/1): writing 680 records" in shown  # 761 rows
    piped = run("import", "cryptofeed", str(V2), "--strict", tty=False)
    assert "\x1b" not in piped and "\r" not in piped


_FIRST_SIZE = re.compile(r'("changes":\[\["(?:buy|sell)","[^"]*",")([^"]*)"')
POISON = ["-1", "NaN", "1e999999999", "1e-999999999", "9" * 10_000, "1." + "1" * 40]


def _poisoned_v2(tmp_path: Path, value: str) -> tuple[Path, int, str]:
    """The v2 capture with the size of one later ``l2_updates`` change replaced by *value*.

    Returns the file, the 1-based line number and the symbol of that message.
    """
    lines = V2.read_text().splitlines()
    seen: set[str] = set()
    for lineno, line in enumerate(lines, 1):
        if '"type":"l2_updates"' in line and (m := _FIRST_SIZE.search(line)):
            symbol = line.split('"symbol":"', 1)[1].split('"', 1)[0]
            if symbol in seen:
                lines[lineno - 1] = line[: m.start(2)] + value + line[m.end(2) :]
                break
            seen.add(symbol)
    src = tmp_path / "poisoned.log"
    src.write_text("\n".join(lines) + "\n")
    return src, lineno, symbol


@pytest.mark.parametrize(
    "value", POISON, ids=["negative", "nan", "exp", "tiny-exp", "digits", "decimals"]
)
def test_a_poisoned_value_is_a_skipped_line_and_a_gap_or_fails_under_strict(
    tmp_path: Path, value: str
) -> None:
    import replay

    src, lineno, symbol = _poisoned_v2(tmp_path, value)
    [result] = import_cryptofeed([src], tmp_path / "d")
    assert len(result.skipped) == 1 and result.skipped[0].startswith(f"{src}:{lineno}: ")
    with pytest.raises(DatasetError, match=f"{src}:{lineno}: "):
        import_cryptofeed([src], tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()

    [clean] = import_cryptofeed([V2], tmp_path / "clean")
    # the message left out, and one skipped event in its own partition instead
    assert clean.rows == result.rows
    day = replay.open("2021-06-24", symbol, data=tmp_path / "d")
    gaps = [g for g in day.gap_list() if "skipped on import" in g.detail]
    assert len(gaps) == 1 and f"poisoned.log:{lineno}: " in gaps[0].detail
    # Every other symbol replays exactly as from the clean capture.
    for other in V2_SYMBOLS:
        if other != symbol:
            got = replay.open("2021-06-24", other, data=tmp_path / "d").snapshot_table(depth=5)
            want = replay.open("2021-06-24", other, data=tmp_path / "clean").snapshot_table(depth=5)
            assert got.equals(want), other
