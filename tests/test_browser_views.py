"""The "Over time", "Why this emotion?" and "Live" tabs in a real browser: Debian's headless Chromium, driven by
playwright, with an uploaded recording and a fake microphone. Never downloads a browser; without /usr/bin/chromium
these tests skip, except under CI=true, where they fail."""

import re

import numpy as np
import pytest
from conftest import ARGS, CHROMIUM, speech_like, talk_pause_talk, write

from ser.app import live

TIMEOUT_MS = 120_000  # a step takes a second or two on an idle machine; far longer on a loaded 2-core one
LABELS = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(scope="module")
def chromium(playwright):
    return playwright.chromium


def shows_picture(page, selector: str) -> None:
    from playwright.sync_api import expect

    img = page.locator(f"{selector} img").first
    expect(img).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_function("i => i.complete && i.naturalWidth > 100", arg=img.element_handle(), timeout=TIMEOUT_MS)


def test_timeline_and_why_of_an_upload(chromium, app_server, tmp_path):
    from playwright.sync_api import expect

    url, uploads = app_server
    talk = talk_pause_talk(tmp_path)
    browser = chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_role("button", name="Upload file").click()
        page.locator("#audio-input input[type=file]").set_input_files(str(talk))
        expect(page.locator("#verdict")).to_contain_text("%", timeout=TIMEOUT_MS)

        page.get_by_role("tab", name="Over time").click()
        shows_picture(page, "#timeline")
        expect(page.locator("#segments")).to_contain_text("silence", timeout=TIMEOUT_MS)
        assert any(label in page.inner_text("#segments") for label in LABELS)
        page.screenshot(path=tmp_path / "over-time.png", full_page=True)

        page.get_by_role("tab", name="Why?").click()
        shows_picture(page, "#why")
        first = page.locator("#why img").first.get_attribute("src")
        chosen = page.locator("#why-class input").input_value()
        assert chosen in LABELS
        other = next(k for k in LABELS if k != chosen)
        page.locator("#why-class input").click()
        page.get_by_role("option", name=other).click()
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old && i.complete; }",
            arg=["#why img", first],
            timeout=TIMEOUT_MS,
        )
        page.screenshot(path=tmp_path / "why.png", full_page=True)
        assert not list(uploads.rglob("talk.wav")), "the upload was kept after the request"
    finally:
        browser.close()


def test_live_mode_follows_the_microphone(chromium, app_server, tmp_path):
    """Chromium plays a WAV into a fake microphone for a few seconds; the bars, the rolling spectrogram and the delay
    appear and keep up."""
    from playwright.sync_api import expect

    url, _ = app_server
    voice = write(tmp_path / "mic.wav", np.tile(speech_like(2.0, f0=180, energy=0.3), 5), subtype="PCM_16")
    mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-audio-capture={voice}"]  # fmt: skip
    browser = chromium.launch(executable_path=CHROMIUM, args=ARGS + mic)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-audio").get_by_role("button", name="Record").click()
        shows_picture(page, "#live-spectrogram")
        expect(page.locator("#live-delay")).to_contain_text("behind real time", timeout=TIMEOUT_MS)
        expect(page.locator("#live-bars")).to_contain_text("%", timeout=TIMEOUT_MS)  # speech heard and judged
        first = page.locator("#live-spectrogram img").get_attribute("src")
        page.wait_for_timeout(3000)  # a few more chunks
        assert page.locator("#live-spectrogram img").get_attribute("src") != first, "the spectrogram did not roll"
        later = page.locator("#live-spectrogram img").get_attribute("src")
        page.wait_for_timeout(1000 * (live.LIVE_IDLE + 2))  # a talking visitor keeps the slot past the idle limit
        assert page.locator("#live-spectrogram img").get_attribute("src") != later, "the stream was closed"
        assert any(label in page.inner_text("#live-bars") for label in LABELS)
        delay = float(re.search(r"([\d.]+) s behind", page.inner_text("#live-delay")).group(1))
        assert delay < 10, f"live mode runs {delay} s behind"  # bounded: stale chunks are dropped, not queued
        page.screenshot(path=tmp_path / "live.png", full_page=True)
        tracks = page.evaluate(
            "navigator.mediaDevices.getUserMedia({audio: true}).then(s => s.getAudioTracks()[0].getSettings())"
        )
        assert not any(tracks.get(k) for k in ("autoGainControl", "noiseSuppression", "echoCancellation")), tracks
    finally:
        browser.close()
