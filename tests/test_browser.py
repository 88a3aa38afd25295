"""The app in a real browser: Debian's headless Chromium, driven by playwright, uploads and records synthesized speech.

Never downloads a browser. Without /usr/bin/chromium these tests skip, except under CI=true, where they fail.
"""

import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import ARGS, CHROMIUM, speech_like, write

from ser.app import build_demo, launch, serving, views
from ser.hub import load_model

# Gradio's queue statistics trip pandas 3 deprecation warnings: not ours, and noise in the report.
TIMEOUT_MS = 30_000  # generous: a loaded 2-core machine; a healthy run takes a second or two per step


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """The app served in this process on a free port; yields (url, Gradio's upload folder)."""
    tmp = tmp_path_factory.mktemp("browser")
    uploads = tmp / "gradio"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(uploads))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        write(tmp / "examples" / "example_voice.wav", speech_like(2.5, f0=200, seed=1))
        demo = build_demo(load_model(model_dir), examples=tmp / "examples")
        launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", uploads
        finally:
            demo.close()


@pytest.fixture
def calls(monkeypatch):
    """What the in-process server ran, in order: ("analysed", Result) for each analysis and ("drawn", names) for
    each rendering of the pictures; proof that a click reached the server."""
    seen = []
    analyse_upload, render = serving.analyse_upload, views.render

    def analysed(*a, **k):
        seen.append(("analysed", result := analyse_upload(*a, **k)))
        return result

    def rendered(result, names):
        names = list(names)
        if "log_mel" in names and len(names) < len(views.VIEWS):  # the pictures step, not the Clear button
            seen.append(("drawn", names))
        return render(result, names)

    monkeypatch.setattr(serving, "analyse_upload", analysed)
    monkeypatch.setattr(views, "render", rendered)
    return seen


def click_and_wait(page, calls: list, target) -> None:
    """Click `target` and wait until the server has analysed and drawn the pictures (which follow the verdict)."""
    n = len([c for c in calls if c[0] == "drawn"])
    target.click()
    for _ in range(TIMEOUT_MS // 100):
        if len([c for c in calls if c[0] == "drawn"]) > n:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"clicking {target} ran no analysis (server calls: {[c[0] for c in calls]})")


def analyse_and_wait(page, calls: list) -> None:
    click_and_wait(page, calls, page.get_by_role("button", name="Analyse"))


def expect_result(page, labels: list[str]) -> str:
    """Wait for the verdict, the bars and both pictures; returns the verdict text."""
    from playwright.sync_api import expect

    expect(page.locator("#verdict")).to_contain_text("%", timeout=TIMEOUT_MS)
    expect(page.locator("#probabilities #scores")).to_contain_text("%", timeout=TIMEOUT_MS)
    for plot in ("#waveform", "#log-mel"):
        img = page.locator(f"{plot} img")
        expect(img).to_be_visible(timeout=TIMEOUT_MS)
        assert img.evaluate("i => i.complete && i.naturalWidth > 100"), f"{plot} shows no picture"
    verdict = page.inner_text("#verdict")
    assert "Cannot analyse" not in verdict
    assert any(f"{label.capitalize()}:" in verdict for label in labels), verdict
    return verdict


def test_upload_and_analyse(playwright, server, calls, tmp_path):
    from playwright.sync_api import expect

    url, uploads = server
    labels = ["neutral", "happy", "sad", "angry"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        analyse_and_wait(page, calls)
        expect(page.locator("#verdict")).to_contain_text("No audio yet", timeout=TIMEOUT_MS)

        page.get_by_role("button", name="Upload file").click()
        page.locator("#audio-input input[type=file]").set_input_files(
            str(write(tmp_path / "voice.wav", speech_like(3.0)))
        )
        first = expect_result(page, labels)  # analysed on upload
        analyse_and_wait(page, calls)
        assert expect_result(page, labels) == first  # the same upload, the same answer, though it left the disk

        expect(page.locator("#scores")).to_contain_text(labels[0], timeout=TIMEOUT_MS)  # in sight, not folded
        assert all(label in page.inner_text("#scores") for label in labels)
        page.get_by_role("tab", name="About the model").click()
        page.get_by_text("For the curious").click()  # the technical details are folded away
        expect(page.locator("#about")).to_contain_text("Limitations", timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="How it works").click()
        page.screenshot(path=tmp_path / "upload.png", full_page=True)
        assert not list(uploads.rglob("voice.wav")), "the upload was kept after the request"

        page.locator("#audio-input").get_by_role("button", name="Clear").click()
        expect(page.locator("#verdict")).to_contain_text("Record a short sentence", timeout=TIMEOUT_MS)
        expect(page.locator("#log-mel img")).to_have_count(0, timeout=TIMEOUT_MS)

        for _ in range(2):  # an example is analysed on click, and is still there for the next click
            click_and_wait(page, calls, page.get_by_text("example_voice"))
            expect_result(page, labels)
            assert not list(uploads.rglob("*.wav")), "examples are served from their folder, never copied here"
    finally:
        browser.close()


def test_record_from_microphone_and_analyse(playwright, server, calls, tmp_path):
    """Chromium plays a quiet WAV into a fake microphone; the app gets it at its own level, unprocessed."""
    url, _ = server
    source = np.tile(speech_like(2.0, f0=180, energy=0.05), 3)
    voice = write(tmp_path / "mic.wav", source, subtype="PCM_16")
    mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + mic)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
        page = context.new_page()
        page.goto(url)
        page.locator("#audio-input button.record-button").click()
        page.wait_for_timeout(2500)
        page.locator("#audio-input button.stop-button").click()
        first = expect_result(page, ["neutral", "happy", "sad", "angry"])  # analysed when the recording stopped
        analyse_and_wait(page, calls)
        assert expect_result(page, ["neutral", "happy", "sad", "angry"]) == first
        page.screenshot(path=Path(tmp_path) / "microphone.png", full_page=True)
        # Without browser.RAW_MIC the browser's gain control lifts this quiet voice by 10 dB or more.
        heard = next(result.analysis.audio for kind, result in calls if kind == "analysed")
        captured = heard[len(heard) // 4 : -len(heard) // 4]
        gain_db = 20 * np.log10(np.std(captured) / np.std(source))
        assert abs(gain_db) < 2, f"the browser changed the microphone level by {gain_db:+.1f} dB"
        tracks = page.evaluate(
            "navigator.mediaDevices.getUserMedia({audio: true}).then(s => s.getAudioTracks()[0].getSettings())"
        )
        assert not any(tracks.get(k) for k in ("autoGainControl", "noiseSuppression", "echoCancellation")), tracks
    finally:
        browser.close()
