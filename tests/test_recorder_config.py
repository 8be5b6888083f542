"""Recorder options (TOML file, flags, --until), the status line, and backoff: pure parts."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.config import build_config, parse_until
from recorder.feed import backoff_delay
from recorder.record import RecordConfig, stop_time_ns
from recorder.status import Stats, percentiles
from tickrec.errors import UsageError

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def test_toml_then_venue_table_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "rec.toml"
    path.write_text(
        'symbols = ["btcusd", "ETHUSD", "SOLUSD"]\n'
        'protocol = "v2"\n'
        'snapshot-every = "2m"\n'
        "snapshot_depth = 25\n"
        'rotate = "15m"\n'
        'fsync-interval = "50ms"\n'
        'until = "23:55"\n'
        "[venues.gemini]\n"
        'url = "ws://127.0.0.1:9"\n'
        "stale-after = 20\n"
    )
    cfg = build_config(path, {"protocol": None, "rotate": 60.0, "symbols": None})
    assert cfg.symbols == ("BTCUSD", "ETHUSD", "SOLUSD")
    assert (cfg.protocol, cfg.snapshot_every, cfg.snapshot_depth) == ("v2", 120.0, 25)
    assert (cfg.rotate, cfg.fsync_interval, cfg.stale_after) == (60.0, 0.05, 20.0)
    assert cfg.url == "ws://127.0.0.1:9" and cfg.rest_url == "http://127.0.0.1:9"  # beside it
    assert cfg.until == dt.time(23, 55)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('symbols = ["BTCUSD"]\nfrobnicate = 1\n', "unknown option 'frobnicate'"),
        ('symbols = ["BTCUSD"]\nrotate = "soon"\n', "cannot read duration"),
        ('symbols = ["BTCUSD"]\nprotocol = "v9"\n', "protocol 'v9'"),
        ('symbols = ["../etc"]\n', "invalid symbol"),
        ("symbols = [", "not valid TOML"),
        ('protocol = "v1"\n', "give --symbols"),
    ],
)
def test_bad_options_are_one_clear_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        build_config(path, {})


def test_until_is_the_next_occurrence_in_utc() -> None:
    at_0930 = T0 + 9 * 3600 * 10**9 + 30 * 60 * 10**9
    assert stop_time_ns(at_0930, None, dt.time(10, 0)) == T0 + 10 * 3600 * 10**9
    assert stop_time_ns(at_0930, None, dt.time(9, 0)) == T0 + 33 * 3600 * 10**9  # tomorrow
    assert stop_time_ns(at_0930, 60.0, dt.time(10, 0)) == at_0930 + 60 * 10**9
    assert stop_time_ns(at_0930, None, None) is None
    # the README's cron recipe: started just after midnight, --until 00:00 is the next one
    just_after = T0 + 400_000_000
    assert stop_time_ns(just_after, None, dt.time(0, 0)) == T0 + 24 * 3600 * 10**9
    assert stop_time_ns(T0, None, dt.time(0, 0)) == T0 + 24 * 3600 * 10**9
    assert parse_until("23:59") == dt.time(23, 59)
    with pytest.raises(UsageError, match="UTC offset"):
        parse_until("10:00+02:00")  # would otherwise stop two hours late


def test_config_checks_values() -> None:
    with pytest.raises(UsageError, match="fsync-interval"):
        RecordConfig(symbols=("BTCUSD",), fsync_interval=0)
    with pytest.raises(UsageError, match="venue"):
        RecordConfig(symbols=("BTCUSD",), venue="kraken")
    with pytest.raises(UsageError, match="handover-lead"):
        RecordConfig(symbols=("BTCUSD",), handover_lead=-1.0)
    # The clock and the handover lead are set in code, never from a file or flags.
    for name in ("clock", "handover-lead"):
        with pytest.raises(UsageError, match="unknown option"):
            build_config(None, {"symbols": "BTCUSD", name: 1})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("url", "http://127.0.0.1:8765"),
        ("url", "127.0.0.1:8765"),
        ("url", "ws://"),
        ("url", "ws://127.0.0.1:port"),
        ("rest_url", "ws://127.0.0.1:8765"),
        ("rest_url", "api.gemini.com"),
    ],
)
def test_urls_are_checked_before_any_thread_uses_them(option: str, value: str) -> None:
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UsageError, match=f"^{flag}: '{value}'"):
        RecordConfig(symbols=("BTCUSD",), **{option: value})


def test_good_urls_pass() -> None:
    cfg = RecordConfig(symbols=("BTCUSD",), url="WSS://[::1]:8765/x", rest_url="http://h:80")
    assert cfg.url == "WSS://[::1]:8765/x"
    assert RecordConfig(symbols=("BTCUSD",), protocol="v1").url == "wss://api.gemini.com"


def test_a_bad_url_is_one_line_and_exit_2_at_the_cli(tmp_path: Path) -> None:
    """It used to kill the websocket thread while the run went on, recorded nothing, exited 0."""
    args = ["record", "--symbols", "BTCUSD", "--url", "127.0.0.1:8765", "--duration", "2s"]
    done = subprocess.run(
        [sys.executable, "-m", "tickrec", *args, "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--url: '127.0.0.1:8765'" in done.stderr
    assert not (tmp_path / "raw").exists()


def test_backoff_doubles_caps_and_jitters() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 30.0, rng.random()) for n in range(12)]
    assert all(0.25 * 2**n <= d <= 0.5 * 2**n for n, d in enumerate(delays[:6]))
    assert all(15.0 <= d <= 30.0 for d in delays[7:])


def test_status_lines_and_latency_percentiles() -> None:
    assert percentiles(range(101)) == [50, 90, 99]
    assert percentiles([]) == []
    stats = Stats(("BTCUSD", "ETHUSD"))
    stats.lines(T0)
    for i in range(100):
        stats.message(("BTCUSD",), T0 + i * 10_000_000, T0 + i * 10_000_000 - (i + 1) * 100_000)
    stats.count(("BTCUSD",), "reconnects")
    stats.snapshot("BTCUSD", 42_000_000)
    lines = stats.lines(T0 + 2 * 10**9)
    assert lines[0].startswith("BTCUSD: 50.0/s msgs=100 last=1.0s ago reconnects=1 gaps=0")
    assert "rest_latency=42ms" in lines[0]
    assert lines[1].startswith("ETHUSD: 0.0/s msgs=0 last=never reconnects=0")
    assert lines[2].startswith("exchange-to-local latency p50/p90/p99: 5.1/9.0/9.9 ms")


@pytest.mark.parametrize(
    ("url", "rest"),
    [
        ("ws://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("wss://localhost:9443/stream", "https://localhost:9443"),
        ("ws://[::1]:8765", "http://[::1]:8765"),
        ("ws://127.0.0.2:1/v1/marketdata", "http://127.0.0.2:1"),
        ("wss://api.gemini.com", "https://api.gemini.com"),  # a real venue: its own REST
        ("ws://10.0.0.5:8765", "https://api.gemini.com"),
    ],
)
def test_a_local_url_alone_takes_rest_from_the_same_port(url: str, rest: str) -> None:
    assert RecordConfig(symbols=("BTCUSD",), url=url).rest_url == rest
    given = RecordConfig(symbols=("BTCUSD",), url=url, rest_url="http://127.0.0.1:9")
    assert given.rest_url == "http://127.0.0.1:9"
    binance = RecordConfig(symbols=("BTCUSDT",), venue="binance", url=url).rest_url
    assert binance == (rest if rest != "https://api.gemini.com" else "https://api.binance.com")
