"""`make demo` (python -m gapwatch.demo) end to end, in a subprocess with its own Kafka."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

pytestmark = pytest.mark.kafka


async def _start_demo(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "GAPWATCH_DEMO_EXIT": ""}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gapwatch.demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip


async def test_demo_proves_agreement_and_exits_zero() -> None:
    """With --exit-after-check the demo prints the side-by-side table and AGREE, exit 0,
    within its one-minute budget (plus Kafka's start)."""
    process = await _start_demo("--exit-after-check")
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 150)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out = stdout.decode()
    assert process.returncode == 0, out + stderr.decode()
    assert "LOADGEN DROPPED  MONITOR CONFIRMED" in out
    agree = [line for line in out.splitlines() if line.startswith("AGREE: ")]
    assert len(agree) == 1
    assert "DISAGREE" not in out
    # The one-node cluster's durability findings, each with why it is expected there.
    audit = out.split("Durability audit of the demo topic", 1)[1]
    for name in ("rf_below_3", "min_isr_1", "min_isr_not_below_rf", "producer_not_idempotent"):
        assert name in audit, audit
    assert "not expected in the demo" not in audit


async def test_demo_keeps_serving_until_sigterm_then_stops_cleanly() -> None:
    """Without the flag the demo prints its URLs, keeps running, and SIGTERM stops it
    (monitor and Kafka) with exit status 0."""
    process = await _start_demo()
    assert process.stdout is not None
    lines: list[str] = []
    try:

        async def until_waiting() -> None:
            assert process.stdout is not None
            while line := (await process.stdout.readline()).decode():
                lines.append(line)
                if line.startswith("Kafka: ") and "Ctrl-C" in line:
                    return
            raise AssertionError("demo ended early:\n" + "".join(lines))

        await asyncio.wait_for(until_waiting(), 150)
        text = "".join(lines)
        assert "AGREE: " in text
        assert "/gaps" in text
        assert "/docs" in text
        await asyncio.sleep(1.0)
        assert process.returncode is None  # still serving
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert "Stopping the monitor and Kafka" in rest.decode()
