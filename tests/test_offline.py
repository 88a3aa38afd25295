"""The offline page (`ser.offline`, ser/app/offline/): built for the shipped model, served by a plain static server
and opened in Debian's Chromium, it answers as Python does, in the app's words, from a file or a microphone, and
refuses bad input with the app's words; the app serves it at /offline. Never downloads a browser; without
/usr/bin/chromium the browser tests skip (except under CI=true)."""

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import ARGS, CHROMIUM, PAGE_JARGON, PAGE_JARGON_WORDS, cut_file, speech_like, write

import ser
from ser import words
from ser.app.analyse import listeners, verdict
from ser.app.offline_page import FAILED, NO_FOLDER, PREPARING, OfflinePage
from ser.app.serving import Result
from ser.audio import EMPTY, TOO_BIG, UNREADABLE, AudioError
from ser.cli import main
from ser.hub import load_model
from ser.offline import MODEL, PAGE

# The exporter's notes on LSTM batch sizes and Slice folding (ser/export.py silences them; pytest resets filters).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*(batch_size other than 1|Constant folding).*:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:(You are using the legacy TorchScript|The feature will be removed):DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.flac"))
TIMEOUT_MS = 60_000  # generous: a loaded 2-core machine; an answer takes about a second
RATE = 16000
SMALL_LIMIT = 1024**2  # the /small/ page's largest file, in place of the app's 120 MiB


# ----------------------------------------------------------------------------- the folder, without a browser


def settings_of(html: str) -> dict:
    """The settings `build` wrote into index.html."""
    found = re.search(r'<script type="application/json" id="settings">(.*?)</script>', html, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_the_command_writes_a_complete_page_with_the_apps_words(model_dir, tmp_path, capsys):
    assert main(["offline", str(tmp_path / "site"), "--model", str(model_dir)]) == 0
    site = tmp_path / "site"
    assert {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()} == {
        "index.html", "offline.js", MODEL, "vendor/ort.wasm.min.js", "vendor/ort-wasm-simd-threaded.mjs",
        "vendor/ort-wasm-simd-threaded.wasm.gz", "vendor/LICENSE"}  # fmt: skip
    assert "serve the folder" in capsys.readouterr().out
    s = settings_of((site / "index.html").read_text())
    meta = ser.export.read_metadata(ser.export.session(site / MODEL))
    page_only = {"decode_seconds", "max_file_bytes"}
    assert {k: v for k, v in s["model"].items() if k not in page_only} == meta  # the graph's own metadata
    assert s["model"]["max_file_bytes"] == ser.app.serving.MAX_FILE_BYTES  # the app's limit
    said = s["words"]
    assert said["silent"] == ser.audio.silent_error("x").plain and said["unreadable"] == UNREADABLE
    short = ser.audio.too_short_error("x", 0.3, load_model(model_dir).feature_config).plain
    assert said["too_short"].replace("{seconds}", "0.3") == short  # the model's minimum filled, the length left
    assert said["mic"] == words.MIC and len(s["colours"]["picture"]) == 256


def test_the_command_refuses_a_file_for_a_folder_in_one_line(model_dir, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["offline", str(tmp_path / "taken"), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give a folder" in err


def test_the_vendored_files_are_onnxruntime_web_as_published():
    """vendor/ holds onnxruntime-web 1.30.0's files from npm unchanged (the WebAssembly file gzipped), with its
    licence; SHA256SUMS was written from the npm package (README.md says how to make the folder again)."""
    vendor = PAGE / "vendor"
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        path = vendor / name
        data = path.read_bytes() if path.exists() else gzip.decompress((vendor / f"{name}.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == digest, name
    assert "ONNX Runtime Web v1.30.0" in (vendor / "ort.wasm.min.js").read_text()[:200]
    assert "Copyright (c) Microsoft Corporation" in (vendor / "LICENSE").read_text()
    assert max(p.stat().st_size for p in vendor.iterdir()) < 10 * 2**20  # Hugging Face takes it without Git LFS


# ----------------------------------------------------------------------------- the page in a browser


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request is noise in the report
        pass


@contextlib.contextmanager
def static_server(folder: Path):
    """`folder` served by Python's own static file server on a free port of 127.0.0.1, as any static host would."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shipped():
    return load_model(None)


@pytest.fixture(scope="module")
def port(shipped, tmp_path_factory):
    """The page for the shipped model at /page/, a copy whose model.onnx was cut short at /broken/, and one that
    takes files of SMALL_LIMIT bytes at most at /small/."""
    root = tmp_path_factory.mktemp("sites")
    ser.offline.build(shipped, root / "page")
    shutil.copytree(root / "page", root / "broken")
    cut_file(root / "broken" / MODEL, 0.5)
    shutil.copytree(root / "page", root / "small")
    with pytest.MonkeyPatch.context() as limit:
        limit.setattr(ser.offline, "MAX_FILE_BYTES", SMALL_LIMIT)
        (root / "small" / "index.html").write_text(ser.offline.page_html(shipped))
    with static_server(root) as port:
        yield port


@pytest.fixture(scope="module")
def browser(playwright):
    """Chromium with a fake microphone that plays nothing, which no page may use unless its context allows it;
    offline.test is another name for 127.0.0.1 (not a secure origin, as a page on a school's network would be)."""
    flags = ["--use-fake-device-for-media-stream", "--host-resolver-rules=MAP offline.test 127.0.0.1"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + flags)
    yield browser
    browser.close()


def opened(browser, url: str, permissions: list[str] | None = None, width: int = 1280):
    """A new page at `url`, once it is ready (the model loaded) or has failed."""
    page = browser.new_context(permissions=permissions or [], viewport={"width": width, "height": 900}).new_page()
    page.goto(url)
    page.wait_for_function("['ready', 'failed'].includes(document.documentElement.dataset.state)", timeout=TIMEOUT_MS)
    return page


def answered(page, path: Path | None = None) -> dict:
    """Open `path` (without it: press Stop) and wait until it is answered or refused; returns what the page shows
    and, when it ran the model, what it analysed."""
    before = page.evaluate("Number(document.documentElement.dataset.analyses || 0)")
    if path is not None:
        page.set_input_files("#file", str(path))
    else:
        page.click("#record")
    page.wait_for_function(f"Number(document.documentElement.dataset.analyses || 0) > {before}", timeout=TIMEOUT_MS)
    shown = page.evaluate("""() => ({
        state: document.documentElement.dataset.state,
        problem: document.querySelector("#problem").hidden ? null : document.querySelector("#problem p").innerText,
        heading: document.querySelector("#verdict h2")?.innerText, said: document.querySelector("#verdict p")?.innerText,
        listeners: document.querySelector("#listeners").innerText,
        notes: [...document.querySelectorAll("#notes li")].map((li) => li.innerText),
        bars: document.querySelector("#bars").innerText, text: document.body.innerText,
        last: window.serLast && {audio: Array.from(serLast.audio16k), outputs: serLast.outputs, dims: serLast.dims},
    })""")
    page.evaluate("window.serLast = null")
    assert_plain(shown["text"])
    return shown


def assert_plain(text: str) -> None:
    """What a visitor reads: no jargon, no blank left unfilled, no trace of an error meant for programmers."""
    found = [w for w in PAGE_JARGON if w in text] + [w for w in PAGE_JARGON_WORDS if w in text.lower()]
    found += re.findall(r"\{\w+\}|Error\b|undefined|NaN|\bat \S+\.js|onnx|wasm", text)
    assert not found, found


def expected(model, analysis) -> dict:
    """The app's words for an analysis, as the page shows them (no Markdown, no face)."""
    said = verdict(Result(analysis=analysis, model=model))
    heading, sentence = said.split("\n", 1)
    plain = lambda s: re.sub(r"<[^>]+>", "", s).replace("**", "")
    return {"heading": plain(heading.removeprefix("## ")), "said": plain(sentence),
            "listeners": plain(listeners(Result(analysis=analysis, model=model))),
            "notes": [f"⚠ {n}" for n in analysis.notes]}  # fmt: skip


def outputs_against(shipped, shown: dict) -> tuple[ser.Analysis, float]:
    """Python's analysis of the very samples the page analysed, and the largest difference between their answers
    (every listener's probabilities)."""
    audio = np.array(shown["last"]["audio"], np.float32)
    ours = ser.analyse(shipped, audio, RATE)
    out = shown["last"]["outputs"]
    worst = max(
        float(np.abs(np.array(out[name]) - np.array(list(probs.values()))).max())
        for name, probs in [("probs", ours.probs), *ours.listeners.items()]
    )
    return ours, worst


def test_the_page_answers_each_example_as_python_does(browser, port, shipped, tmp_path):
    """File input: the top emotion of `ser.analyse_file` and every probability within 0.02 (the browser decodes
    the file itself); on the very samples the page analysed, every listener within 1e-3 (onnxruntime-web against
    PyTorch) and the app's words exactly."""
    assert len(EXAMPLES) == 8
    page = opened(browser, f"http://127.0.0.1:{port}/page/")
    assert page.evaluate("document.documentElement.dataset.state") == "ready"
    assert_plain(page.inner_text("body"))
    assert "Your recording stays on this device" in page.inner_text("#private")
    for clip in EXAMPLES:
        shown = answered(page, clip)
        assert shown["state"] == "answered", (clip.name, shown["problem"])
        from_file = ser.analyse_file(shipped, clip)
        probs = dict(zip(shipped.labels, shown["last"]["outputs"]["probs"]))
        assert max(probs, key=probs.get) == from_file.label, clip.name
        assert max(abs(probs[k] - p) for k, p in from_file.probs.items()) <= 0.02, clip.name
        ours, worst = outputs_against(shipped, shown)
        assert worst <= 1e-3, (clip.name, worst)
        assert {k: shown[k] for k in ("heading", "said", "listeners", "notes")} == expected(shipped, ours), clip.name
        assert shown["bars"].split("\n")[0] == from_file.label  # highest first, as the app's bars
        bands, frames = shown["last"]["dims"]["mel"]
        assert (bands, frames) == ours.mel.shape
        assert np.abs(np.array(shown["last"]["outputs"]["mel"]).reshape(bands, frames) - ours.mel).max() < 0.05
    verdicts_agree(page, shipped)  # the shipped model "leans" where another would be "confident"
    page.screenshot(path=tmp_path / "answer.png", full_page=True)
    phone = opened(browser, f"http://127.0.0.1:{port}/page/", width=390)
    answered(phone, EXAMPLES[0])
    assert phone.evaluate("document.documentElement.scrollWidth <= 390"), "the page is wider than a phone"


def verdicts_agree(page, model) -> None:
    """The page's verdict for probabilities that call for each of the app's sentences is the app's, word for word."""
    analysis = ser.analyse(model, speech_like(1.5), RATE)
    n = len(model.labels)
    for top, second in ((0.92, 0.05), (0.75, 0.1), (0.55, 0.2), (0.45, 0.35), (0.3, 0.1)):
        probs = dict(zip(model.labels, [top, second, *[(1 - top - second) / (n - 2)] * (n - 2)]))
        want = expected(model, dataclasses.replace(analysis, probs=probs))
        got = page.evaluate("(p) => serVerdict(p)", list(probs.values()))
        assert got == {"heading": want["heading"], "said": want["said"]}, (top, second)


def test_the_page_records_from_the_microphone(playwright, port, shipped, tmp_path):
    """Chromium's fake microphone plays an example (as a 48 kHz 16-bit WAV, between silences); the page records
    it raw, brings it to 16 kHz and answers as Python does on those samples (1e-3), and as on the file itself: the
    capture is the clip at the same level (correlation 0.9998, gain -0.07 dB, when this was written)."""
    clip = next(c for c in EXAMPLES if c.name.startswith("angry"))
    audio, rate = sf.read(clip, dtype="float32")
    at48k = soxr.resample(audio, rate, 48000)
    pad = np.zeros(48000 // 2, np.float32)
    wav = write(tmp_path / "mic.wav", np.concatenate([pad, at48k, pad, pad]), 48000, "PCM_16")
    mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-audio-capture={wav}%noloop"]  # fmt: skip
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + mic)
    try:
        page = opened(browser, f"http://127.0.0.1:{port}/page/", permissions=["microphone"])
        page.click("#record")
        page.wait_for_function("document.documentElement.dataset.state == 'recording'", timeout=TIMEOUT_MS)
        assert page.inner_text("#record") == "Stop"
        page.wait_for_timeout(int(1000 * (len(audio) / rate + 1.5)))
        shown = answered(page)  # Stop
    finally:
        browser.close()
    assert shown["state"] == "answered", shown["problem"]
    ours, worst = outputs_against(shipped, shown)
    assert worst <= 1e-3
    assert {k: shown[k] for k in ("heading", "said", "listeners", "notes")} == expected(shipped, ours)
    recorded = np.array(shown["last"]["audio"], np.float32)
    assert len(recorded) >= len(audio)  # the whole clip
    assert ours.label == ser.analyse_file(shipped, clip).label


# case -> (make the file in a folder, the words the page must say: Python's own for the same file, or these)
BAD_FILES = {
    "random bytes named .wav": (lambda d: file_of(d, "voice.wav", np.random.default_rng(1).bytes(5000)), UNREADABLE),
    "a text file": (lambda d: file_of(d, "notes.txt", b"a shopping list\n" * 50), UNREADABLE),
    "empty": (lambda d: file_of(d, "empty.wav", b""), EMPTY),
    "too short": (lambda d: write(d / "short.wav", speech_like(0.3)), None),
    "silent": (lambda d: write(d / "silence.wav", np.zeros(RATE, np.float32)), None),
    "near silence": (lambda d: write(d / "hiss.wav", 1e-5 * speech_like(1.0)), None),
}


def file_of(folder: Path, name: str, content: bytes) -> Path:
    (folder / name).write_bytes(content)
    return folder / name


@pytest.fixture(scope="module")
def page_for_bad_input(browser, port):
    return opened(browser, f"http://127.0.0.1:{port}/page/")


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_get_the_apps_words(page_for_bad_input, shipped, tmp_path, case):
    make, said = BAD_FILES[case]
    path = make(tmp_path)
    if said is None:  # Python refuses it too: its very words
        with pytest.raises(AudioError) as refused:
            ser.analyse_file(shipped, path)
        said = refused.value.plain
    shown = answered(page_for_bad_input, path)
    assert shown["state"] == "refused" and shown["problem"] == said
    assert "Cannot analyse this" in shown["text"]


def test_a_file_over_the_apps_limit_is_refused_before_it_is_decoded(browser, port, tmp_path):
    page = opened(browser, f"http://127.0.0.1:{port}/small/")
    big = write(tmp_path / "long.wav", np.tile(speech_like(2.0), 40))  # 80 s of 16-bit 16 kHz: 2.4 MiB
    shown = answered(page, big)
    said = TOO_BIG.format(mb=f"{big.stat().st_size / 1024**2:.0f}", max_mb=f"{SMALL_LIMIT / 1024**2:.0f}")
    assert shown["state"] == "refused" and shown["problem"] == said
    small = write(tmp_path / "short.wav", speech_like(2.0))  # the same page still answers what fits
    assert answered(page, small)["state"] == "answered"


# case -> the sound (16 kHz), with a note Python adds to it
NOTED = {
    "too loud": lambda: np.clip(speech_like(2.0) * 8, -1, 1),
    "very quiet": lambda: 0.02 * speech_like(2.0),
    "not speech": lambda: 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE).astype(np.float32),
    "too short for the voice listener": lambda: speech_like(0.8),
}


@pytest.mark.parametrize("case", NOTED)
def test_notes_on_the_input_are_the_apps(page_for_bad_input, shipped, tmp_path, case):
    shown = answered(page_for_bad_input, write(tmp_path / "noted.wav", NOTED[case]()))
    assert shown["state"] == "answered", shown["problem"]
    ours, worst = outputs_against(shipped, shown)
    assert ours.notes and worst <= 1e-3
    assert shown["notes"] == expected(shipped, ours)["notes"]


def test_a_blocked_microphone_gets_the_apps_words(browser, port):
    page = opened(browser, f"http://127.0.0.1:{port}/page/")  # this context may not use the microphone
    page.click("#record")
    page.wait_for_function("document.documentElement.dataset.state == 'refused'", timeout=TIMEOUT_MS)
    assert page.inner_text("#problem p") == words.MIC["NotAllowedError"]
    assert_plain(page.inner_text("body"))
    insecure = opened(browser, f"http://offline.test:{port}/page/")  # the model loads; no microphone is offered
    insecure.click("#record")
    insecure.wait_for_function("document.documentElement.dataset.state == 'refused'", timeout=TIMEOUT_MS)
    assert insecure.inner_text("#problem p") == words.MIC["insecure"]


def test_a_model_that_fails_to_load_says_so(browser, port):
    page = opened(browser, f"http://127.0.0.1:{port}/broken/")
    assert page.evaluate("document.documentElement.dataset.state") == "failed"
    assert "The model could not be loaded" in page.inner_text("#problem")
    assert page.is_disabled("#record") and page.is_disabled("#file")
    assert_plain(page.inner_text("body"))


# ----------------------------------------------------------------------------- the app's /offline


def test_the_app_serves_the_page_at_offline_once_made(app_server, model_dir, playwright, tmp_path):
    """`python app.py` makes the page for its model in the background and serves it at /offline/: the words that it
    is being prepared until then (never a 404), then the page, which runs in the browser from there; a restart finds
    it made."""
    url, _ = app_server
    config = json.loads(urllib.request.urlopen(url + "config").read())
    assert any("offline/" in str(c["props"].get("value", "")) for c in config["components"])  # the link
    seen = []
    for _ in range(240):
        with urllib.request.urlopen(url + "offline") as r:  # redirected to offline/
            assert r.status == 200 and r.url.endswith("/offline/")
            body = r.read().decode()
        seen.append("settings" if 'id="settings">{' in body else PREPARING if PREPARING in body else body[:200])
        if seen[-1] == "settings":
            break
        time.sleep(1)
    assert seen[-1] == "settings" and set(seen) <= {PREPARING, "settings"}, seen[-3:]
    assert OfflinePage(model_dir).ready  # cached: a restart serves it at once
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = opened(browser, url + "offline/")
        assert page.evaluate("document.documentElement.dataset.state") == "ready"
        verdicts_agree(page, load_model(model_dir))  # a model without measured reliability may say "confident"
        shown = answered(page, write(tmp_path / "voice.wav", speech_like(2.0)))
    finally:
        browser.close()
    assert shown["state"] == "answered", shown["problem"]
    probs = shown["last"]["outputs"]["probs"]
    ours = ser.analyse(load_model(model_dir), np.array(shown["last"]["audio"], np.float32), RATE)
    assert np.abs(np.array(probs) - np.array(list(ours.probs.values()))).max() <= 1e-3


def test_offline_says_plainly_when_there_is_no_page(model_dir, tmp_path):
    """A model the page cannot be made for (22.05 kHz: the graph takes 16 kHz only), one not from a folder, and one
    whose page is not made yet."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from ser.features import FeatureConfig
    from ser.model import ModelConfig, SERModel

    folder = tmp_path / "model22k"
    cfg = FeatureConfig(sample_rate=22050, fmax=11025.0)
    SERModel(ModelConfig(labels=["a", "b"], features=cfg, widths=[4, "M"], hidden=4)).save_pretrained(folder)
    unmade = OfflinePage(folder, cache=tmp_path / "cache")
    unmade.start().join(timeout=240)
    nothing = OfflinePage(None, cache=tmp_path / "cache")
    waiting = OfflinePage(model_dir, cache=tmp_path / "elsewhere")  # not started: as while it is being made
    for site, said in ((unmade, FAILED), (nothing, NO_FOLDER), (waiting, PREPARING)):
        with TestClient(Starlette(routes=[site.route()])) as client:
            r = client.get("/offline/")
        assert r.status_code == 200 and said in r.text and r.headers["cache-control"] == "no-store"
        assert ('http-equiv="refresh"' in r.text) == (said == PREPARING)  # only that one reloads itself
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]  # nothing half-made kept
