"""The classroom in a real browser (Debian's headless Chromium, as tests/test_browser.py): the shipped model and
example clips; a round of "Act it out" through a fake microphone; microphone failures; the page on a phone, a
laptop and a projector.

Screenshots go to $SER_SCREENSHOTS if set, else to a folder under pytest's temporary directory.
"""

import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import ARGS, CHROMIUM, MIN_FONT_PT, speech_like, write

from ser.app import build_demo, launch
from ser.app.views import RIGHT, WRONG
from ser.hub import load_model

PHONE, LAPTOP, PROJECTOR = (390, 844), (1280, 800), (1920, 1080)
MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 120_000  # a step takes a second or two on an idle laptop; far longer on a loaded 2-core machine

# Every text node's words: a word whose pieces sit on two lines was broken mid-word; a word wider than the element
# holding it sticks out of it. Hyphens, dashes and slashes are places a word may break.
BROKEN_WORDS = """root => {
  const problems = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("svg, script, style, footer, textarea, select, [hidden]")) continue;
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2 || getComputedStyle(el).visibility === "hidden") continue;  // sr-only
    for (const m of node.textContent.matchAll(/[^\\s\\-\\u2010-\\u2015\\/]+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = [...range.getClientRects()].filter(r => r.width > 0);
      const lines = new Set(rects.map(r => Math.round(r.bottom)));
      const where = `<${el.tagName.toLowerCase()}${el.id ? " #" + el.id : ""}> "${node.textContent.trim().slice(0, 60)}"`;
      if (lines.size > 1) problems.push(`"${m[0]}" broken across lines in ${where}`);
      else if (rects.length && rects[0].width > box.width + 1) problems.push(`"${m[0]}" wider than ${where}`);
    }
  }
  return problems;
}"""

# Buttons, tabs and switches a finger must hit, with their size (the page's footer is Gradio's, not ours).
TARGETS = """() => [...document.querySelectorAll(
    "button, [role=tab], label:has(input[type=checkbox]), label:has(input[type=radio])")]
  .filter(e => !e.closest("footer, [hidden]") && e.getClientRects().length && getComputedStyle(e).visibility !== "hidden")
  .map(e => { const r = e.getBoundingClientRect();
    return [e.getAttribute("aria-label") || e.innerText.trim().slice(0, 30), Math.round(r.width), Math.round(r.height)] })
  .filter(([, w, h]) => w > 2 && h > 2)"""  # zero-size copies Gradio keeps to measure its tab bar

# The size on screen of the pictures shown: a matplotlib picture fits in its box (object-fit: contain).
PICTURE_SCALES = """() => [...document.querySelectorAll(".matplotlib img")].filter(i => i.getClientRects().length)
  .map(i => [i.closest("[id]").id, Math.min(i.clientWidth / i.naturalWidth, i.clientHeight / i.naturalHeight)])"""

# Font sizes of the text of the page's own blocks (Markdown, tables), smallest first.
TEXT_SIZES = """() => [...document.querySelectorAll(".prose p, .prose li, .prose td, .prose th")]
  .filter(e => e.getClientRects().length && e.innerText.trim())
  .map(e => [e.innerText.trim().slice(0, 40), parseFloat(getComputedStyle(e).fontSize)])
  .sort((a, b) => a[1] - b[1])"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """The shipped model and example clips, served in this process on a free port; yields (url, model)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        model = load_model(None)
        demo = build_demo(model)
        launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", model
        finally:
            demo.close()


def open_page(browser, url: str, size: tuple[int, int], **context):
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}, **context).new_page()
    page.goto(url)
    page.locator("#verdict").wait_for(timeout=TIMEOUT_MS)
    return page


def click_example(page, label: str) -> str:
    """Click an example and wait for the verdict and every picture beside it; returns the verdict."""
    from playwright.sync_api import expect

    before = page.inner_text("#verdict")
    page.locator("#examples").get_by_text(label, exact=True).click()
    expect(page.locator("#verdict")).not_to_have_text(before, timeout=TIMEOUT_MS)
    expect(page.locator("#verdict")).to_contain_text("%", timeout=TIMEOUT_MS)
    for plot in ("#probabilities", "#log-mel"):
        expect(page.locator(f"{plot} img")).to_be_visible(timeout=TIMEOUT_MS)
    return page.inner_text("#verdict")


def record(page, audio: str, seconds: float = 2.5) -> None:
    page.locator(f"{audio} button.record-button").click()
    page.wait_for_timeout(int(seconds * 1000))
    page.locator(f"{audio} button.stop-button").click()


def tally(page) -> list[list[str]]:
    """The class tally's rows below its header, as [emotion, tries, hits] cell texts."""
    rows = page.locator("#game-tally tr").evaluate_all("rs => rs.map(r => [...r.cells].map(c => c.textContent.trim()))")
    return rows[1:]


def emotion_in(text: str, labels: list[str], after: str) -> str:
    """The emotion named (perhaps after an emoji) right after the words `after` in `text`."""
    return next(e for e in labels if re.search(rf"{after}\W*{e}\b", text.replace("*", "")))


def assert_no_broken_words(page, where: str) -> None:
    problems = page.evaluate(BROKEN_WORDS, page.locator(".gradio-container").element_handle())
    assert not problems, f"{where}: " + "; ".join(problems[:10])


def test_a_lesson_examples_how_it_works_compare_and_act_it_out(playwright, classroom, shots, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, model = classroom
    voice = write(tmp_path / "mic.wav", np.tile(speech_like(2.0, f0=180, energy=0.3), 3), subtype="PCM_16")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=ARGS + MIC + [f"--use-file-for-fake-audio-capture={voice}"]
    )
    try:
        page = open_page(browser, url, LAPTOP, permissions=["microphone"])
        expect(page.locator("#examples button")).to_have_count(8, timeout=TIMEOUT_MS)  # the eight shipped clips
        labels = page.locator("#examples button").all_inner_texts()
        assert (
            len(labels) == 8
            and "happy — female voice, English (RAVDESS)" in labels
            and "sad — male voice, English (RAVDESS)" in labels
        )
        first = click_example(page, "happy — female voice, English (RAVDESS)")
        assert any(f"{e.capitalize()}:" in first for e in model.labels)
        assert "The actor was asked to sound happy" in first  # so the class sees the model be right or wrong

        steps = ("#waveform", "#step-stft", "#step-mel_scale", "#step-decibels", "#step-layers", "#step-answer")
        for step in steps:  # How it works is the first tab: every step drawn for this clip
            expect(page.locator(f"{step} img")).to_be_visible(timeout=TIMEOUT_MS)
        page.screenshot(path=shots / "laptop-how-it-works.png", full_page=True)

        click_example(page, "sad — male voice, English (RAVDESS)")
        page.get_by_role("tab", name="Compare two voices").click()
        for plot in ("#compare-log-mel", "#compare-probabilities"):
            expect(page.locator(f"{plot} img")).to_be_visible(timeout=TIMEOUT_MS)
        page.screenshot(path=shots / "laptop-compare.png", full_page=True)

        page.get_by_role("tab", name="Act it out").click()
        expect(page.locator("#game-task")).to_contain_text("so that it sounds", timeout=TIMEOUT_MS)
        asked = emotion_in(page.inner_text("#game-task"), model.labels, "sounds")
        expect(page.locator("#game-tally")).to_contain_text("no tries yet")
        record(page, "#game-audio")
        expect(page.locator("#game-outcome")).to_contain_text("The model heard", timeout=TIMEOUT_MS)
        expect(page.locator("#game-chart img")).to_be_visible(timeout=TIMEOUT_MS)
        heard = emotion_in(page.inner_text("#game-outcome"), model.labels, "heard")
        hits = str(int(heard == asked))
        assert (RIGHT if heard == asked else WRONG) in page.inner_text("#game-outcome")
        rows = tally(page)
        assert [r[1:] for r in rows] == [["1", hits], ["1", hits]] and asked in rows[0][0] and rows[1][0] == "all", rows
        page.screenshot(path=shots / "laptop-act-it-out.png", full_page=True)

        page.get_by_label("Hard mode").check()  # the same round again: hidden until the class has guessed
        page.locator("#game-audio").get_by_role("button", name="Clear").click()
        record(page, "#game-audio")
        expect(page.locator("#game-outcome")).to_contain_text("Recorded", timeout=TIMEOUT_MS)
        expect(page.locator("#game-chart img")).to_have_count(0, timeout=TIMEOUT_MS)
        assert heard not in page.inner_text("#game-outcome") and tally(page)[-1] == ["all", "1", hits]
        page.locator("#game-guess").get_by_text(heard, exact=True).click()
        page.locator("#game-reveal").click()
        expect(page.locator("#game-outcome")).to_contain_text(f"The class guessed {heard}", timeout=TIMEOUT_MS)
        expect(page.locator("#game-chart img")).to_be_visible(timeout=TIMEOUT_MS)
        rows = tally(page)
        assert rows[0][:2] == [rows[0][0], "2"] and asked in rows[0][0] and rows[-1][:2] == ["all", "2"], rows
    finally:
        browser.close()


@pytest.mark.parametrize("size", [PHONE, LAPTOP, PROJECTOR], ids=["phone", "laptop", "projector"])
def test_every_screen_size(playwright, classroom, shots, size):  # noqa: F811
    from playwright.sync_api import expect

    url, _ = classroom
    name = {PHONE: "phone", LAPTOP: "laptop", PROJECTOR: "projector"}[size]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = open_page(browser, url, size)
        click_example(page, "angry — female voice, English (RAVDESS)")
        expect(page.locator("#step-layers img")).to_be_visible(timeout=TIMEOUT_MS)  # the last picture drawn
        page.screenshot(path=shots / f"{name}-{size[0]}x{size[1]}.png")
        page.screenshot(path=shots / f"{name}-{size[0]}x{size[1]}-full.png", full_page=True)
        if size == PROJECTOR:  # the verdict, the chart and the spectrogram on the first screen
            for part in ("#verdict", "#probabilities img", "#log-mel img"):
                box = page.locator(part).bounding_box()
                assert box["y"] >= 0 and box["y"] + box["height"] <= size[1], f"{part} is below the first screen: {box}"
        if size == LAPTOP:
            scales = page.evaluate(PICTURE_SCALES)
            assert {"probabilities", "log-mel", "step-layers"} <= {w for w, _ in scales}, scales
            for where, scale in scales:
                px = MIN_FONT_PT * 100 / 72 * scale  # points at Gradio's 100 dpi, scaled as shown
                assert px >= 14, f"the smallest text in #{where} is {px:.1f} px on screen"
        assert_no_broken_words(page, f"{name}, results")

        page.get_by_role("tab", name="About the model").click()
        expect(page.locator("#about-plain")).to_contain_text("How good is it?", timeout=TIMEOUT_MS)
        page.get_by_text("For the curious").click()
        expect(page.locator("#about")).to_contain_text("Limitations", timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        page.screenshot(path=shots / f"{name}-{size[0]}x{size[1]}-about.png", full_page=True)
        assert_no_broken_words(page, f"{name}, About")
        if size == LAPTOP:
            smallest = page.evaluate(TEXT_SIZES)[0]  # the tables' text among them
            assert smallest[1] >= 14, f"text of {smallest[1]} px: {smallest[0]!r}"
            for where, scale in page.evaluate(PICTURE_SCALES):  # the confusion matrices and the About picture
                assert MIN_FONT_PT * 100 / 72 * scale >= 14, f"the smallest text in #{where} is too small"
        if size == PHONE:
            targets = page.evaluate(TARGETS)
            assert any(t[0] == "About the model" for t in targets) and len(targets) > 10, targets
            small = [t for t in targets if t[1] < 44 or t[2] < 44]
            assert not small, f"touch targets smaller than 44 px: {small}"
    finally:
        browser.close()


@pytest.mark.parametrize(
    ("case", "flags", "init", "words"),
    [
        ("permission denied", ["--use-fake-device-for-media-stream"], None, "microphone is blocked"),
        ("no microphone", [], "getUserMedia = () => Promise.reject(new DOMException('', 'NotFoundError'))",
         "No microphone was found"),
        ("insecure origin (no navigator.mediaDevices)", [], "mediaDevices", "https://"),
    ],
)  # fmt: skip
def test_microphone_failures_say_what_to_do(playwright, classroom, case, flags, init, words):  # noqa: F811
    from playwright.sync_api import expect

    url, _ = classroom
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + flags)
    try:
        context = browser.new_context(viewport={"width": LAPTOP[0], "height": LAPTOP[1]})
        if init == "mediaDevices":  # as on http://192.168.x.y: browsers hide the microphone API entirely
            context.add_init_script(
                "Object.defineProperty(Navigator.prototype, 'mediaDevices', {get: () => undefined})"
            )
        elif init:
            context.add_init_script(f"navigator.mediaDevices.{init}")
        page = context.new_page()
        page.goto(url)
        page.locator("#verdict").wait_for(timeout=TIMEOUT_MS)
        expect(page.locator("#mic-message")).to_have_count(0)
        page.locator("#audio-input button.record-button").click()
        message = page.locator("#mic-message")
        expect(message).to_be_visible(timeout=TIMEOUT_MS)
        expect(message).to_contain_text(words)
        expect(message).to_contain_text("upload a recording")
        message.get_by_role("button", name="Close this message").click()
        expect(message).to_be_hidden()
    finally:
        browser.close()
