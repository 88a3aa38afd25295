"""The "Live" tab (`ser.app.live`): a streaming microphone with its own slots, apart from the analyses'. What each
chunk shows is tested in tests/test_live.py (`ser.live`) and in Chromium in tests/test_browser_views.py."""

from ser.app import live


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
