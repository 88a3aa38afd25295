"""The "Live" tab (`ser.app.live`): a streaming microphone with its own slots, apart from the analyses'. What each
chunk shows is tested in tests/test_live.py (`ser.live`) and in Chromium in tests/test_browser_views.py."""

import asyncio
import math
import threading
import time

from ser.app import live, serving
from ser.app.streams import StreamSlots


def test_the_live_stream_sends_a_chunk_twice_a_second_for_a_while_on_its_own_slots(demo):
    config = demo.get_config_file()
    (stream,) = [d for d in config["dependencies"] if any(t[1] == "stream" for t in d["targets"])]
    assert stream["stream_every"] == live.LIVE_EVERY == 0.5 and stream["time_limit"] == live.LIVE_LIMIT
    (chunk,) = [f for f in demo.fns.values() if f.name == "on_chunk"]
    assert chunk.concurrency_id == "live"  # not the analyses' slots
    # Gradio runs a few more streams than there are slots, so that a visitor who finds them taken is told so.
    assert chunk.concurrency_limit == live.LIVE_EVENTS > live.SLOTS.size == live.LIVE_STREAMS
    mic = next(c for c in config["components"] if c["props"].get("elem_id") == "live-audio")
    assert mic["props"]["streaming"] and mic["props"]["sources"] == ["microphone"]


class Event:
    """What the slots see of a Gradio stream event: its visitor's session, and what Gradio's close route sets."""

    def __init__(self, session: str):
        self.session_hash, self.run_time, self.closed, self.signal = session, 0.0, False, asyncio.Event()


def test_one_stream_per_visitor_idle_streams_lose_their_slot_and_a_latecomer_is_told_when(monkeypatch):
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    slots = StreamSlots(size=2, idle=0.5, limit=300)
    slots.loop = loop  # Gradio's; the handler finds it itself
    current = {}
    monkeypatch.setattr(serving, "current_event", lambda: current["event"])

    def chunk(event, first=True):  # Gradio names a stream's event to its first chunk only
        current["event"] = event if first else None
        return slots.enter(event.session_hash)

    try:
        alice, bob, carol = Event("alice"), Event("bob"), Event("carol")
        assert chunk(alice) is None and chunk(bob) is None
        told = chunk(carol)
        assert "All 2 live microphones are in use" in told and "Try again in about 5 minutes" in told
        assert carol.run_time == math.inf  # Gradio ends that stream once the message is sent
        again = Event("alice")  # alice starts a second stream: it takes her slot over, the first one is closed
        assert chunk(again) is None
        for _ in range(20):
            time.sleep(0.1)
            chunk(again, first=False)  # alice keeps talking; bob's stream sends nothing
        assert alice.closed and alice.signal.is_set() and bob.closed and not again.closed
        assert chunk(Event("carol")) is None  # bob's idle slot was freed
    finally:
        loop.call_soon_threadsafe(loop.stop)
