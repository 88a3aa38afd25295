"""A class and a stranger against the running app (served in this process on 127.0.0.1, the small test model):
uploads during sweeps, one clip sent by many, timelines beside quick analyses, /explain in the analyses' lane, the
busy answer measured from a request's arrival, and an API surface that answers in plain words.

Each burst is bounded in count and size; intervals are shortened here, never waited for at their real length."""

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import httpx
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import speech_like, write

from ser.app import build_demo, launch, serving, uploads
from ser.hub import load_model

TIMEOUT = 120  # seconds: generous, on a loaded 2-core machine


@pytest.fixture(scope="module")
def crowd(model_dir, tmp_path_factory):
    """The app served in this process with one example clip and a sweep every 0.2 s; yields (url, upload folder,
    demo)."""
    folder = tmp_path_factory.mktemp("crowd") / "gradio"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(folder))
        mp.setattr(uploads, "SWEEP_SECONDS", 0.2)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        examples = folder.parent / "examples"
        write(examples / "example_voice.wav", speech_like(2.5, f0=200, seed=1))
        demo = build_demo(load_model(model_dir), examples=examples)
        launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", folder, demo
        finally:
            demo.close()


def held(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def blocked():
    """Fills a lane's threads with jobs that wait for the test to let them go: `blocked(lane)`."""
    release, lanes = threading.Event(), []

    def block(lane: serving.Lane) -> None:
        lanes.append([lane.submit(release.wait) for _ in range(lane.threads)])

    yield block
    release.set()
    for jobs in lanes:
        for job in jobs:
            job.future.result(timeout=TIMEOUT)


def call(url: str, api_name: str, data: list, fn_index: int | None = None, session: str | None = None) -> dict:
    """One raw call through Gradio's queue, as a browser or a script makes it (in its own new session unless
    `session` is given); returns the completion message."""
    session = session or uuid.uuid4().hex
    with httpx.Client(base_url=url + "gradio_api", timeout=TIMEOUT) as http:
        body = {"data": data, "session_hash": session, "fn_index": fn_index, "trigger_id": None}
        if fn_index is None:
            body["api_name"] = api_name
        http.post("/queue/join", json=body).raise_for_status()
        with http.stream("GET", "/queue/data", params={"session_hash": session}) as events:
            for line in events.iter_lines():
                if line.startswith("data:") and (message := json.loads(line[5:]))["msg"] == "process_completed":
                    return message
    raise AssertionError("the queue closed without completing the call")


def fn_index(demo, name: str) -> int:
    return next(i for i, f in demo.fns.items() if f.api_name == name)


# ----------------------------------------------------------------------------- the upload folder


def test_uploads_arriving_during_sweeps_are_swept_back_to_the_cap(crowd, caplog):
    """A burst of uploads that no request reads (2 MB each, 24 of them, 8 at a time) while the sweeper runs every
    0.2 s: every pass completes, and the folder returns under its cap."""
    url, folder, demo = crowd
    demo.sweeper.cap, passes = 10 * 10**6, demo.sweeper.passes
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(2 * 10**6) for _ in range(24)]

    def upload(blob: bytes) -> None:
        httpx.post(url + "gradio_api/upload", files=[("files", ("x.wav", blob))], timeout=TIMEOUT).raise_for_status()

    with ThreadPoolExecutor(8) as clients:
        list(clients.map(upload, blobs))
    assert held(folder) > demo.sweeper.cap, "the burst overshoots the cap until the next pass"
    deadline = demo.sweeper.passes + 25
    while held(folder) > demo.sweeper.cap and demo.sweeper.passes < deadline:
        threading.Event().wait(0.2)
    assert held(folder) <= demo.sweeper.cap and demo.sweeper.passes > passes + 2
    assert not [r for r in caplog.records if "sweeping the upload folder failed" in r.getMessage()]
    demo.sweeper.cap = uploads.CAP_BYTES


def test_a_failed_sweep_does_not_stop_the_sweeping(crowd, tmp_path, monkeypatch):
    """Gradio's sweep ended for good on its first error; this one logs it and sweeps again next time."""
    _, folder, demo = crowd
    orphan = write(folder / "0rphan" / "old.wav", speech_like(0.5))
    uploads.UPLOADS.update([str(orphan)])
    calls = []

    def fail_once(age):
        calls.append(age)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")
        return original(age)

    original = demo.sweeper._sweep
    monkeypatch.setattr(demo.sweeper, "_sweep", fail_once)
    monkeypatch.setattr(demo.sweeper, "age", 0.0)
    while len(calls) < 3:
        threading.Event().wait(0.2)
    assert not orphan.exists()


# ----------------------------------------------------------------------------- a class sharing one clip


def test_eight_visitors_sending_the_same_clip_all_get_their_answer(crowd, tmp_path):
    """Eight visitors upload one clip at the same moment; Gradio names an upload by its content, so they share one
    path. Their analyses come one after another: the file stays until the last of them has read it."""
    url, folder, demo = crowd
    clip = write(tmp_path / "class.wav", speech_like(3.0, seed=7)).read_bytes()
    start = threading.Barrier(8)

    def upload(_) -> str:
        start.wait()
        r = httpx.post(url + "gradio_api/upload", files=[("files", ("class.wav", clip))], timeout=TIMEOUT)
        return r.raise_for_status().json()[0]

    with ThreadPoolExecutor(8) as visitors:
        paths = list(visitors.map(upload, range(8)))
    assert len(set(paths)) == 1
    shared = {"path": paths[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "class.wav"}
    for _ in range(8):
        done = call(url, "predict", [shared], fn_index(demo, "predict"))
        assert done["success"] and "%" in done["output"]["data"][0], done["output"]
    assert not list(folder.rglob("class.wav")), "read by all eight, then deleted"


# ----------------------------------------------------------------------------- fair slots


def test_timelines_run_in_their_own_lane_and_leave_the_quick_one_free(crowd, tmp_path, blocked):
    """With every timeline thread taken, /timeline of a long recording is told busy, and /predict is answered."""
    from gradio_client import Client, handle_file

    url, *_ = crowd
    client = Client(url, verbose=False)
    long = write(tmp_path / "long.wav", np.tile(speech_like(4.0), 10))  # 40 s: the long lane
    blocked(serving.LONG)
    with pytest.raises(Exception, match="busy"):
        client.predict(handle_file(str(long)), api_name="/timeline")
    verdict, *_ = client.predict(handle_file(str(write(tmp_path / "a.wav", speech_like(2.0)))), api_name="/predict")
    assert "%" in verdict


def test_api_calls_are_told_busy_at_once_when_their_answer_cannot_come_in_time(crowd, tmp_path, blocked, monkeypatch):
    """Two analyses ahead that usually take a second each: /predict and /explain cannot be answered within the
    promise, so they are told BUSY without being queued; once the lane is free they are answered."""
    from gradio_client import Client, handle_file

    url, *_ = crowd
    client = Client(url, verbose=False)
    voice = handle_file(str(write(tmp_path / "v.wav", speech_like(2.0))))
    monkeypatch.setitem(serving.QUICK.usual, "analyse_file", 1.0)
    blocked(serving.QUICK)
    pending = serving.QUICK.pending
    verdict, *_ = client.predict(voice, api_name="/predict")
    assert verdict.endswith(serving.BUSY) and serving.QUICK.pending == pending, "told busy, never queued"
    with pytest.raises(Exception, match="busy"):
        client.predict(voice, None, api_name="/explain")  # the same lane and limits as /predict


def test_explain_draws_on_the_analysis_threads_and_leaves_no_figure_open(crowd, tmp_path):
    from gradio_client import Client, handle_file

    url, *_ = crowd
    drawn_on = []
    original = serving.in_turn

    def watched(fn, *args):
        return original(lambda *a: (drawn_on.append(threading.current_thread().name), fn(*a))[1], *args)

    before = set(plt.get_fignums())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serving, "in_turn", watched)
        noise = write(tmp_path / "noise.wav", 0.3 * np.random.default_rng(0).standard_normal(48000).astype(np.float32))
        label, picture, notes = Client(url, verbose=False).predict(handle_file(str(noise)), None, api_name="/explain")
    assert drawn_on and all(name.startswith("analysis") for name in drawn_on)
    assert picture["type"] == "matplotlib" and "does not sound like someone talking" in notes
    assert set(plt.get_fignums()) == before


# ----------------------------------------------------------------------------- sessions over time


def wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_sessions_that_hold_nothing_are_forgotten_and_their_callers_still_answered(crowd, tmp_path, monkeypatch):
    """Scripts that open a session per call leave Gradio a session each (about 160 KB of this page's settings), which it
    kept until 10,000: with the idle times shortened, the sessions that hold nothing go, a session holding a
    visitor's state stays, a closed tab's goes after its own wait, and a forgotten caller is answered again."""
    monkeypatch.setattr(serving, "CLEAN_SESSION_SECONDS", 3600.0)  # none forgotten until the test has set them up
    url, _, demo = crowd
    holder = demo.state_holder
    clip = write(tmp_path / "one.wav", speech_like(2.0, seed=3)).read_bytes()

    def predict(session: str) -> dict:
        r = httpx.post(url + "gradio_api/upload", files=[("files", ("one.wav", clip))], timeout=TIMEOUT)
        sent = {"path": r.raise_for_status().json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "one.wav"}
        return call(url, "predict", [sent], fn_index(demo, "predict"), session)

    sessions = [uuid.uuid4().hex for _ in range(6)]
    for session in sessions:
        assert predict(session)["success"]
    kept, changed, closed, *clean = sessions
    state = next(b for b in demo.blocks.values() if isinstance(b, gr.State))
    markdown = next(b for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert set(sessions) <= set(holder.session_data), "Gradio keeps them"
    holder[kept][state._id] = {"a visitor's": "results"}  # what an event returning a State value does
    holder[changed][markdown._id] = gr.Markdown("shown")  # ... and one returning a component's new settings
    holder[closed][state._id] = {"a closed tab's": "results"}
    holder[closed].is_closed = True  # what Gradio does when a tab's heartbeat ends
    monkeypatch.setattr(serving, "CLEAN_SESSION_SECONDS", 0.3)
    monkeypatch.setattr(serving, "CLOSED_SESSION_SECONDS", 1.5)

    assert wait_for(lambda: not set(clean) & set(holder.session_data)), "the sessions that hold nothing are forgotten"
    assert {kept, changed, closed} <= set(holder.session_data)
    assert wait_for(lambda: closed not in holder.session_data), "a closed tab's is forgotten after its own wait"
    time.sleep(2 * serving.CLOSED_SESSION_SECONDS)
    assert holder[kept][state._id] == {"a visitor's": "results"}, "an open tab's state is never forgotten for age"
    assert holder[changed].blocks_config.blocks[markdown._id].value == "shown"
    assert predict(clean[0])["success"], "a forgotten caller is answered in a new session"


# ----------------------------------------------------------------------------- what a stranger can call


def test_only_what_a_visitor_needs_is_on_the_api_page(crowd):
    from gradio_client import Client

    url, *_ = crowd
    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    tools = {"/emotion_of_recording", "/emotion_over_time"}  # the MCP tools (ser/app/mcp_tools.py)
    assert set(api["named_endpoints"]) == {"/predict", "/timeline", "/explain", *tools} and not api["unnamed_endpoints"]
    (label,) = [p for p in api["named_endpoints"]["/explain"]["parameters"] if p["parameter_name"] == "label"]
    assert label["parameter_has_default"]


def test_a_server_path_and_a_made_up_example_get_plain_errors_and_no_traceback(crowd, capfd):
    url, _, demo = crowd
    secret = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "voice.wav"}
    done = call(url, "predict", [secret], fn_index(demo, "predict"))
    assert done["success"] is False and done["output"]["error"] == serving.NOT_UPLOADED
    example = next(i for i, f in demo.fns.items() if f.name == "load_example")
    made_up = call(url, "load_example", [999], example)
    assert made_up["success"] is False and "click one of the 1 examples" in made_up["output"]["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_the_examples_outlive_a_sweep(crowd, playwright, caplog):
    """A visitor clicks the example, then the sweeper deletes every file it may (age 0), then a new visitor clicks
    it: still analysed, not "gone" (it was, 5 minutes after start-up, when the examples were copies in the upload
    folder)."""
    from conftest import ARGS, CHROMIUM
    from playwright.sync_api import expect

    url, folder, demo = crowd
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        for visitor in range(2):
            if visitor:
                orphan = write(folder / "0ld" / "orphan.wav", speech_like(0.5))
                uploads.UPLOADS.update([str(orphan)])
                passes, demo.sweeper.age = demo.sweeper.passes, 0.0
                while demo.sweeper.passes < passes + 2:
                    threading.Event().wait(0.1)
                demo.sweeper.age = uploads.ORPHAN_SECONDS
                assert not orphan.exists(), "the sweep ran"
            page = browser.new_page(viewport={"width": 1280, "height": 900})  # a visitor of their own
            page.goto(url)
            page.get_by_text("example_voice").click()
            expect(page.locator("#verdict")).to_contain_text("%", timeout=TIMEOUT * 1000)
            page.close()
    finally:
        browser.close()
    assert not [r for r in caplog.records if "was gone" in r.getMessage()]
