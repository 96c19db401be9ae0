"""A smaller `make load`: concurrent streams and embeddings through one plugin process stay correct and healthy."""

from __future__ import annotations

from tests.tools.load import run_load


def test_concurrent_streams_and_embeddings_through_one_plugin_process() -> None:
    # The flood is short here: tests/test_hub_turns.py holds a flood to the heartbeat and paced-stream bounds.
    report = run_load(chats=30, embeddings=6, rounds=3, chunk_delay_ms=10, flood_seconds=1)
    assert report.failures == [], "every answer complete and attributed to its own request"
    assert report.flood_chunks > 100, "a stream flooded the plugin beside the rounds"
    # Heartbeats every 0.5 s kept flowing under load (the daemon kills a plugin silent for 120 s).
    assert report.max_heartbeat_gap < 2.0
    # Memory comes back to the first round's plateau instead of growing per round.
    first, *later = report.rss_mib_after_round
    assert all(rss <= first * 1.15 + 10 for rss in later), report.rss_mib_after_round
