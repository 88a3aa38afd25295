"""The bad-input matrix: every kind of bad audio or model, through the library, the CLI and the running app.

For each input the user is told one thing, in one line, the same words everywhere: the library raises it
(`AudioError`, `ModelError`) or notes it (`Analysis.notes`), the CLI prints it (exit code 1 for files it could not
use, 2 for a model it could not load), and the app shows it. The words are plain (a 14-year-old follows them, and
they say what to do); an `AudioError` also carries the technical detail, which the CLI prints after them and the app
leaves out. docs/bad-input.md is the table of what they see; a test renders it from the library's own answers and
compares, so the doc cannot drift:

    WRITE_DOC=1 python -m pytest tests/test_bad_input.py -k doc     # rewrites docs/bad-input.md

Nothing here reaches the network: every connection that is not to this machine is refused (`no_network`), which is
also what makes the Hub unreachable for the case that needs it.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from conftest import UNUSABLE_FILES, constant_flac, speech_like, write
from safetensors.torch import load_file, save_file

import app
import ser.hub
from ser.audio import AudioError
from ser.cli import main as cli
from ser.hub import ModelError, load_model
from ser.inference import analyse_file

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "bad-input.md"
SR = 16000
HUB_URL = "https://huggingface.co/someone/ser-model"
HUB_ID = "someone/ser-model"


# ----------------------------------------------------------------------------- the inputs


def cut_after(path: Path, seconds: float) -> Path:
    """Keep a 16-bit mono WAV's header and its first `seconds` of samples: the header still promises the rest."""
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.index(b"data") + 8 + 2 * int(seconds * SR)])
    return path


def chord(seconds: float = 3.0) -> np.ndarray:
    """Music, not speech: a sustained A minor chord with harmonics."""
    t = np.arange(int(seconds * SR)) / SR
    tones = [np.sin(2 * np.pi * f * h * t) / h for f in (220.0, 261.6, 329.6) for h in (1, 2, 3)]
    return (0.5 * sum(tones) / len(tones)).astype(np.float32)


# case -> (make the file in a folder, 'error' or 'note', a phrase the message must contain)
AUDIO = {
    **{name: (make, "error", word) for name, (make, word) in UNUSABLE_FILES.items()},
    "WAV whose header promises 3 s but holds 1.6 s": (
        lambda d: cut_after(write(d / "interrupted.wav", speech_like(3.0), subtype="PCM_16"), 1.6),
        "error",
        "(cut short: its header promises 3.00 s but the file holds 1.60 s)",
    ),
    "decompression bomb: 6 kB of FLAC that decodes to 5 min of 96 kHz sound": (
        lambda d: constant_flac(d / "bomb.flac", 300, 96000),
        "note",
        "Only the first 30 seconds were listened to",
    ),
    "white noise": (
        lambda d: write(d / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(3 * SR)),
        "note",
        "does not sound like someone talking",
    ),
    "music: a chord": (lambda d: write(d / "chord.wav", chord()), "note", "does not sound like someone talking"),
    "speech clipped at full scale": (
        lambda d: write(d / "loud.wav", np.clip(8 * speech_like(2.0), -1, 1)),
        "note",
        "Too loud: the sound is distorted",
    ),
    "very quiet speech (loudest point -40 dBFS)": (
        lambda d: write(d / "quiet.wav", 0.01 * speech_like(2.0) / np.abs(speech_like(2.0)).max()),
        "note",
        "Very quiet",
    ),
    "a 200 kHz WAV (no microphone records at that rate)": (
        lambda d: write(d / "bat.wav", 0.1 * np.random.default_rng(1).standard_normal(200_000), 200_000),
        "error",
        "sample rate 200000 Hz",
    ),
}
# Words a 14-year-old should not meet in what they are told (the technical detail keeps them for the CLI)
JARGON = ("dBFS", "Hz", "decod", "NaN", "header", "ffmpeg", "libsndfile", "soundfile", "sample", "codec", "corrupt",
          "export", "mono", "min_seconds", "analysed", " s ")  # fmt: skip
CANNOT_UPLOAD = {"folder"}  # a browser or gradio_client uploads files only


def missing_weights(folder: Path, model_dir: Path) -> str:
    """A checkpoint whose model.safetensors lacks half of the model's tensors."""
    target = folder / "half-model"
    shutil.copytree(model_dir, target)
    tensors = load_file(target / "model.safetensors")
    save_file(dict(list(tensors.items())[::2]), target / "model.safetensors")
    return str(target)


# case -> (the --model argument, given a folder and the test model's folder; a phrase the message must contain)
MODELS = {
    "model.safetensors lacking some of the model's tensors": (missing_weights, "does not fit config.json"),
    "a Hub URL, offline (HF_HUB_OFFLINE=1), not in the local cache": (
        lambda d, m: HUB_URL,
        f"HF_HUB_OFFLINE is set and '{HUB_ID}' is not in the local Hugging Face cache",
    ),
    "a Hub id, Hub unreachable": (lambda d, m: HUB_ID, "cannot reach the Hugging Face Hub"),
    "a folder that does not exist": (lambda d, m: str(d / "runs" / "nope"), "no model at"),
}


# ----------------------------------------------------------------------------- no network, and an empty Hub cache

LOCAL = {"localhost", "127.0.0.1", "::1", None}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every connection that is not to this machine (name look-ups included), and record the attempts."""
    attempts = []
    getaddrinfo, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL:
            attempts.append(host)
            raise socket.gaierror(f"no network in tests: {host}")
        return getaddrinfo(host, *args, **kwargs)

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host not in LOCAL:
            attempts.append(host)
            raise ConnectionRefusedError(f"no network in tests: {host}")
        return connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty Hugging Face cache and no token; the Hub 'reachable' as far as settings go (no_network refuses)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


@contextlib.contextmanager
def offline_if(case: str):
    """HF_HUB_OFFLINE for the case that says so (the constant is read at import, so both are set)."""
    if "offline" not in case:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


# ----------------------------------------------------------------------------- what the library says


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every bad audio input, made once in one folder."""
    folder = tmp_path_factory.mktemp("bad-input")
    return folder, {case: make(folder) for case, (make, _, _) in AUDIO.items()}


def told(model, path: Path, plain: bool = False) -> tuple[str, list[str]]:
    """('error', [its message]) or ('note', the notes) from the library, the file's folder left out; `plain`: an
    error's plain words only, as the app shows them."""
    try:
        kind, lines = "note", analyse_file(model, path).notes
    except AudioError as e:
        kind, lines = "error", [e.plain if plain else str(e)]
    return kind, [line.replace(f"{path.parent}{os.sep}", "") for line in lines]


@pytest.mark.parametrize("case", list(AUDIO))
def test_the_library_says_what_is_wrong_in_one_line(case, model, files):
    _, kind, phrase = AUDIO[case]
    got, lines = told(model, files[1][case])
    assert got == kind and any(phrase in line for line in lines), lines
    assert lines and all(line.strip() and "\n" not in line for line in lines)


def test_what_the_user_is_told_is_plain_words_that_say_what_to_do(model, files):
    """No jargon, whole sentences of at most 25 words, at most three of them, and the last one says what to do."""
    for case in AUDIO:
        _, lines = told(model, files[1][case], plain=True)
        for line in lines:
            assert not [w for w in JARGON if w in line], (case, line)
            sentences = [t for t in line.replace("? ", ". ").split(". ") if t]
            assert line.endswith(".") and len(sentences) <= 3, (case, line)
            assert all(len(t.split()) <= 25 for t in sentences), (case, line)
            assert sentences[-1].split()[0] in DOING, (case, sentences[-1])


# How the sentence that says what to do starts (an imperative)
DOING = {"Check", "Record", "Say", "Copy", "Save", "Choose", "Move", "Speak", "To", "Press"}


def test_a_decompression_bomb_is_analysed_in_bounded_memory_and_time(model, files):
    """5 minutes of 96 kHz sound in 6 kB: decoding it all would take 115 MB of float32 (and an hour, 1.4 GB);
    the analysis reads only what the model takes (30 s), so its peak does not grow with what the file says."""
    bomb = files[1]["decompression bomb: 6 kB of FLAC that decodes to 5 min of 96 kHz sound"]
    assert bomb.stat().st_size < 10_000
    tracemalloc.start()
    try:
        analysis = analyse_file(model, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert analysis.truncated and len(analysis.audio) == 30 * SR
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB of traced memory"


@pytest.mark.parametrize("case", list(MODELS))
def test_a_model_that_cannot_be_loaded_is_one_line_never_another_model(case, model_dir, tmp_path, hub, no_network):
    make, phrase = MODELS[case]
    name = make(tmp_path, model_dir)
    with offline_if(case), pytest.raises(ModelError) as e:
        load_model(name)
    assert phrase in str(e.value) and "\n" not in str(e.value)
    if "unreachable" in case:
        assert no_network, "the Hub was asked once (and refused here)"
    else:
        assert not no_network, f"nothing may touch the network: {no_network}"


# ----------------------------------------------------------------------------- what the CLI says


def test_the_cli_prints_each_files_line_and_exits_1(model, model_dir, files, capsys):
    folder, paths = files
    usable = {case: p for case, p in paths.items() if p.is_file()}
    code = cli(["predict", *map(str, usable.values()), "--model", str(model_dir)])
    out, err = capsys.readouterr()
    rows = dict(zip(usable, map(json.loads, out.splitlines())))
    for case, row in rows.items():
        kind, lines = told(model, usable[case])
        shown = [row["error"]] if "error" in row else row["notes"]
        assert ("error" if "error" in row else "note") == kind, case
        assert [line.replace(f"{folder}{os.sep}", "") for line in shown] == lines, case
    errors = sum(1 for case in usable if AUDIO[case][1] == "error")
    assert code == 1 and err.strip() == f"{errors} of {len(usable)} file(s) could not be used"


def test_the_cli_in_a_process_prints_no_traceback_or_decoder_chatter(model_dir, files, tmp_path):
    folder, paths = files
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ser", "predict", str(folder), "--model", str(model_dir), "--format", "table"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert run.returncode == 1
    (line,) = [line for line in run.stderr.splitlines() if line.strip()]  # no traceback, no decoder's own words
    assert line.endswith("file(s) could not be used")
    assert len(run.stdout.splitlines()) == len([p for p in paths.values() if p.is_file()])


@pytest.mark.parametrize("case", list(MODELS))
def test_the_cli_with_a_model_it_cannot_load_exits_2_with_one_line(case, model_dir, tmp_path, hub, capsys):
    make, phrase = MODELS[case]
    wav = write(tmp_path / "speech.wav", speech_like())
    with offline_if(case):
        code = cli(["predict", str(wav), "--model", make(tmp_path, model_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error: ") and phrase in line


# ----------------------------------------------------------------------------- what the app says


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """`python app.py` with the test model, offline, on a free port of 127.0.0.1: a gradio_client Client."""
    from gradio_client import Client

    tmp = tmp_path_factory.mktemp("app")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SER_MODEL": str(model_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(tmp / "gradio"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    env.pop("GRADIO_SERVER_NAME", None)
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, client = time.monotonic() + 240, None
        while client is None:
            assert proc.poll() is None, (tmp / "app.log").read_text()
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False)
            except Exception:  # not serving yet
                assert time.monotonic() < deadline, "app.py did not start"
                time.sleep(0.5)
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("case", [c for c in AUDIO if c not in CANNOT_UPLOAD])
def test_the_app_shows_the_same_line(case, model, files, served):
    from gradio_client import handle_file

    path = files[1][case]
    kind, lines = told(model, path, plain=True)
    verdict, scores, notes = served.predict(handle_file(str(path)), api_name="/predict")
    if kind == "error":
        assert verdict == f"### ⚠️ Cannot analyse this\n{lines[0]}"
        assert not (scores or {}).get("confidences")
    else:
        assert scores["confidences"] and notes == "\n".join(f"- ⚠️ {line}" for line in lines)
    assert path.exists(), "the user's own file is only read"


@pytest.mark.parametrize("case", list(MODELS))
def test_the_app_with_a_model_it_cannot_load_says_why(case, model_dir, tmp_path, hub, monkeypatch):
    """`python app.py --model X` exits with one line; SER_MODEL=X serves the shipped model and says why on top."""
    make, phrase = MODELS[case]
    name = make(tmp_path, model_dir)
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", Path(model_dir))  # the shipped model
    with offline_if(case):
        with pytest.raises(SystemExit) as e:
            app.main(["--model", name])
        demo, served_model = app.load_app(name, fallback=True)
    assert str(e.value).startswith("error: ") and phrase in str(e.value) and "\n" not in str(e.value)
    assert served_model.source_dir == Path(model_dir)
    (notice,) = [c["props"]["value"] for c in demo.get_config_file()["components"] if "Model notice" in str(c)]
    assert phrase.lower() in notice.lower() and notice.endswith(".") and "\n" not in notice  # as a sentence


# ----------------------------------------------------------------------------- the table in docs/bad-input.md

HEAD = """# Bad input: what each user sees

Generated from what the library says by `WRITE_DOC=1 python -m pytest tests/test_bad_input.py -k doc`;
tests/test_bad_input.py checks that the library, the CLI and the app say the same, and that this table is current.
Every message is one line. What a visitor is told about their audio is in plain words that say what to do; for a
file that cannot be used, the CLI and the library's `str(error)` add the file's name first and the technical detail
last, in brackets. A model that cannot be loaded is a matter for whoever runs the app, and is said technically.

- **Library**: `ser.analyse_file(model, path)` raises `AudioError` with the message, or returns an `Analysis` whose
  `notes` hold it; `ser.load_model(name)` raises `ModelError`.
- **CLI**: `python -m ser predict FILES` prints one line per file (jsonl `error` or `notes`, or the table's
  `error:` / `note:`) and exits 1 if any file could not be used; a model it cannot load is `error: ...` on stderr,
  exit 2, before any file is read.
- **App**: the verdict reads "⚠️ Cannot analyse this" and the plain words (no file name, no server path), or the
  answer with the note under it; `/predict` returns the same (verdict, scores, notes). A
  model it cannot load: `python app.py --model X` exits with `error: ...`; with `SER_MODEL=X` the page serves the
  shipped model and says why at the top.
"""


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def doc(model, folder: Path, model_dir: Path) -> str:
    """docs/bad-input.md: every case and what the user is told, from the library."""
    rows = ["| Input | Outcome | What the user is told | Technical detail (CLI only) |", "|---|---|---|---|"]
    for case, (make, _, _) in AUDIO.items():
        path = make(folder)
        kind, lines = told(model, path, plain=True)
        detail = ""
        if kind == "error":
            detail = pytest.raises(AudioError, analyse_file, model, path).value.detail
        outcome = "refused (CLI exit 1)" if kind == "error" else "analysed, with a note (CLI exit 0)"
        rows.append(f"| {cell(case)} | {outcome} | {cell(' '.join(lines))} | {cell(detail)} |")
    for case, (make, _) in MODELS.items():
        try:
            with offline_if(case):
                load_model(make(folder, model_dir))
        except ModelError as e:
            message = str(e).replace(f"{folder}{os.sep}", "")
        rows.append(f"| model: {cell(case)} | not loaded (CLI exit 2) | {cell(message)} | |")
    return HEAD + "\n" + "\n".join(rows) + "\n"


def test_the_doc_is_the_table_of_what_users_see(model, model_dir, tmp_path, hub):
    table = doc(model, tmp_path, model_dir)
    if os.environ.get("WRITE_DOC"):
        DOC.write_text(table)
    assert DOC.is_file() and DOC.read_text() == table, "WRITE_DOC=1 python -m pytest tests/test_bad_input.py -k doc"
