"""The app's handlers and views as plain functions, then the whole app through gradio_client: `python app.py`."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import speech_like, write

import app
import ser.hub
from ser import card, plots
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.hub import ModelError, load_model
from ser.inference import Analysis
from ser.model import ModelConfig, SERModel

LABELS = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def strict_model():
    """A model whose own limits (1 s to 4 s) differ from the module defaults, to prove the app reads them."""
    fc = FeatureConfig(min_seconds=1.0, max_seconds=4.0)
    return SERModel(ModelConfig(labels=LABELS, features=fc, widths=[8, "M"], hidden=8))


def result_with(probs: dict[str, float]) -> app.Result:
    audio, mel = np.zeros(16000, np.float32), np.zeros((64, 101), np.float32)
    return app.Result(Analysis(audio, mel, probs, truncated=False, features=FeatureConfig()))


PICTURES = [n for n, v in app.VIEWS.items() if v.picture]


# ----------------------------------------------------------------------------- views


def test_speech_gives_verdict_scores_and_no_notes(model, wav):
    result = app.analyse_upload(model, str(wav))
    assert result.error is None and result.analysis.notes == []
    scores = app.scores(result)
    assert list(scores) == model.labels and abs(sum(scores.values()) - 1) < 1e-5
    top = max(scores, key=scores.get)
    assert f"{top.capitalize()}: {scores[top]:.0%}" in app.verdict(result)
    assert app.notes(result) == ""
    assert wav.exists(), "files outside Gradio's upload folder are never deleted"


def test_waveform_has_seconds_axis(model, wav):
    result = app.analyse_upload(model, str(wav))
    ax = app.waveform_chart(result).axes[0]
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_xlim()[1] == pytest.approx(len(result.analysis.audio) / model.feature_config.sample_rate, rel=1e-3)


def test_log_mel_figure_is_the_models_input(model, wav):
    result = app.analyse_upload(model, str(wav))
    mel = app.log_mel_chart(result)
    image, colorbar = mel.axes[0].images[0], mel.axes[1]
    expected = log_mel_spectrogram(result.analysis.audio, model.feature_config).numpy()
    np.testing.assert_array_equal(np.asarray(image.get_array()), expected)
    assert mel.axes[0].get_xlabel() == "time (s)" and "Hz" in mel.axes[0].get_ylabel()
    assert colorbar.get_ylabel() == "dB"


def test_probability_chart_sorted_highlighted_with_percentages(model, wav):
    ax = app.probability_chart(app.analyse_upload(model, str(wav))).axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert len(widths) == len(model.labels) and widths == sorted(widths)  # barh draws bottom-up: top class last
    colors = [bar.get_facecolor() for bar in ax.patches]
    assert colors[-1] != colors[0] and colors[-1][:3] == pytest.approx(plt.matplotlib.colors.to_rgb(plots.HIGHLIGHT))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(model.labels) and all(t.endswith("%") for t in texts)


def test_pictures_are_phone_width_figures_that_do_not_stay_open(model, wav):
    result = app.analyse_upload(model, str(wav), over_time=True)  # as the page analyses: with the timeline
    before = set(plt.get_fignums())
    figs = app.render(result, PICTURES)
    assert len(figs) == len(PICTURES) and all(isinstance(f, plt.Figure) for f in figs)
    assert all(f.get_figwidth() <= app.FIGURE_WIDTH for f in figs)
    assert set(plt.get_fignums()) == before


@pytest.mark.parametrize(
    ("probs", "words"),
    [
        ({"angry": 0.9, "sad": 0.05, "happy": 0.03, "neutral": 0.02}, "confident"),
        ({"angry": 0.55, "sad": 0.25, "happy": 0.1, "neutral": 0.1}, "fairly sure"),
        ({"angry": 0.36, "sad": 0.30, "happy": 0.2, "neutral": 0.14}, "unsure"),  # small margin
        ({"angry": 0.30, "sad": 0.10, "happy": 0.3 - 1e-3, "neutral": 0.3 + 1e-3}, "unsure"),  # low top
        ({"angry": 0.38, "sad": 0.22, "happy": 0.2, "neutral": 0.2}, "no emotion stands out"),  # low top, clear margin
    ],
)
def test_confidence_in_words(probs, words):
    text = app.verdict(result_with(probs))
    assert words in text
    assert ("unsure" in text) == (words in ("unsure", "no emotion stands out"))


# ----------------------------------------------------------------------------- the registry of views


def test_every_view_renders_nothing_yet_an_error_and_an_analysis(model, tmp_path):
    """The contract a new view signs: a value for the empty Result, an error, and an analysis; no figure left open."""
    loud = write(tmp_path / "loud.wav", np.clip(speech_like() * 8, -1, 1))
    analysed = app.analyse_upload(model, str(loud), over_time=True)  # as the page analyses: with the timeline
    before = set(plt.get_fignums())
    for name, view in app.VIEWS.items():
        empty, failed, shown = (view.render(r) for r in (app.Result(), app.Result(error="x"), analysed))
        assert shown not in (None, ""), name
        if name != "verdict":
            assert empty in (None, "") and failed in (None, ""), name
    assert app.verdict(app.Result()) == app.START and "Cannot analyse" in app.verdict(app.Result(error="x"))
    assert set(plt.get_fignums()) == before


def test_the_page_is_built_from_the_registry(model):
    config = app.build_demo(model, examples=None).get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"verdict", "notes", "probabilities", "scores", "waveform", "log-mel"} <= ids
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == [*dict.fromkeys(v.tab for v in app.VIEWS.values() if v.tab), "Live", "Act it out", "About the model"]
    (predict,) = [d for d in config["dependencies"] if d["api_name"] == "predict"]
    by_id = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    assert [by_id[i] for i in predict["outputs"]] == ["verdict", "scores", "notes"]  # gradio_client relies on it
    assert predict["targets"] == []  # API only: the page's own events keep the session's results
    assert all(by_id[i] for i in predict["inputs"] + predict["outputs"])  # no gr.State: API calls keep nothing


# ----------------------------------------------------------------------------- input quality


def test_no_audio(model):
    for missing in (None, ""):
        result = app.analyse_upload(model, missing)
        assert result.error == app.NO_AUDIO and app.scores(result) is None
        assert app.render(result, PICTURES) == [None] * len(PICTURES)
        assert "No audio" in app.verdict(result)


def test_too_short_uses_the_models_minimum(strict_model, tmp_path):
    path = write(tmp_path / "short.wav", speech_like(0.8))
    result = app.analyse_upload(strict_model, str(path))
    assert result.analysis is None and "needs at least 1 second of sound" in result.error
    assert "\n" not in result.error and "Cannot analyse" in app.verdict(result)


def test_silence(model, tmp_path):
    result = app.analyse_upload(model, str(write(tmp_path / "silent.wav", np.zeros(32000, np.float32))))
    assert result.analysis is None and "could not hear anything" in result.error


def test_clipped_is_analysed_with_a_warning(model, tmp_path):
    loud = np.clip(speech_like() * 8, -1, 1)
    result = app.analyse_upload(model, str(write(tmp_path / "loud.wav", loud)))
    assert result.analysis is not None
    assert (
        len(result.analysis.notes) == 1 and "Too loud" in result.analysis.notes[0] and "Too loud" in app.notes(result)
    )


def test_very_quiet_is_analysed_with_a_warning(model, tmp_path):
    quiet = speech_like() * 0.02  # peaks near -40 dBFS
    result = app.analyse_upload(model, str(write(tmp_path / "quiet.wav", quiet)))
    assert result.analysis is not None
    assert len(result.analysis.notes) == 1 and "Very quiet" in result.analysis.notes[0]


def test_very_long_analyses_the_models_maximum(strict_model, tmp_path):
    result = app.analyse_upload(strict_model, str(write(tmp_path / "long.wav", speech_like(6.0))))
    assert result.analysis is not None and result.analysis.truncated
    assert len(result.analysis.notes) == 1 and "Only the first 4 seconds" in result.analysis.notes[0]
    assert len(result.analysis.audio) == 4 * strict_model.feature_config.sample_rate
    assert "first 4 s" in app.waveform_chart(result).axes[0].get_title()


@pytest.mark.parametrize(
    ("content", "reason"), [(b"", "is empty"), (b"RIFF not really a wave file" * 50, "not a sound file we can open")]
)
def test_damaged_file_gives_one_line(model, tmp_path, content, reason):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    result = app.analyse_upload(model, str(path))
    assert result.analysis is None and reason in result.error
    assert "\n" not in result.error and str(tmp_path) not in result.error  # the file's name, not the server path


@pytest.mark.parametrize(("suffix", "subtype"), [(".flac", None), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_compressed_formats(model, tmp_path, suffix, subtype):
    path = write(tmp_path / f"speech{suffix}", speech_like(), subtype=subtype)
    result = app.analyse_upload(model, str(path))
    assert result.error is None and list(app.scores(result)) == model.labels


# ----------------------------------------------------------------------------- uploads are not kept


def test_uploads_are_deleted_once_read_and_reanalysis_still_works(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = write(tmp_path / "gradio" / "0123abcd" / "speech.wav", speech_like())
    recent = app.RecentResults()
    first = app.analyse_upload(model, str(upload), recent)
    assert first.analysis is not None and not upload.exists() and not upload.parent.exists()
    assert app.analyse_upload(model, str(upload), recent) is first  # Analyse pressed again
    assert app.analyse_upload(model, str(upload), app.RecentResults()).error == app.GONE  # another visitor
    assert app.analyse_upload(model, str(upload)).error == app.GONE  # the API keeps nothing: says why


def test_example_clips_are_kept(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    example = write(tmp_path / "examples" / "example.wav", speech_like())
    copy = write(tmp_path / "gradio" / "feed" / "example.wav", speech_like())  # Gradio's copy, handed out per click
    app.analyse_upload(model, str(copy), keep=[example])
    assert copy.exists()
    other = write(tmp_path / "gradio" / "0ddba11" / "example.wav", speech_like(seed=1))  # same name, other sound
    app.analyse_upload(model, str(other), keep=[example])
    assert not other.exists()


def test_api_calls_are_told_busy_when_no_analysis_starts_in_time(model, tmp_path, monkeypatch):
    """With every analysis thread taken, an API call is answered BUSY in one line and its upload deleted; the page's
    analyses (no `wait`) wait their turn instead."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    release = threading.Event()
    for _ in range(app.CONCURRENCY):
        app.ANALYSES.submit(release.wait)
    upload = write(tmp_path / "gradio" / "b1" / "speech.wav", speech_like())
    page_upload = write(tmp_path / "gradio" / "b2" / "speech.wav", speech_like(seed=1))
    with ThreadPoolExecutor(1) as visitor:
        try:
            busy = app.analyse_upload(model, str(upload), wait=0.1)
            page = visitor.submit(app.analyse_upload, model, str(page_upload))
            time.sleep(0.5)
            assert not page.done(), "the page's analysis waits for a free thread"
        finally:
            release.set()
        assert page.result(timeout=120).analysis is not None
    assert busy.error == app.BUSY and busy.analysis is None and not upload.exists()
    verdict = app.verdict(busy)
    assert "busy" in verdict and "try again" in verdict and verdict.count("\n") == 1


def test_memory_is_trimmed_once_after_each_idle_stretch(monkeypatch):
    calls = []

    class Libc:
        def malloc_trim(self, pad):
            calls.append(pad)

    monkeypatch.setattr(app.ctypes, "CDLL", lambda name: Libc())
    trim = app.MemoryTrim(idle_seconds=0.05)
    threading.Thread(target=trim.run, daemon=True).start()
    time.sleep(0.3)
    assert calls == [], "nothing analysed yet: nothing to give back"
    trim.touch()
    time.sleep(0.3)
    assert calls == [0], "one trim after the stretch, not one every poll"


def test_recent_results_are_bounded():
    recent = app.RecentResults(size=2)
    for key in "abc":
        recent.put(key, app.Result(error=key))
    assert recent.get("a") is None and recent.get("b").error == "b" and recent.get("c").error == "c"


def test_each_visitor_keeps_their_own_recent_results(model, tmp_path, monkeypatch):
    """The page's analysis keeps results in the visitor's session: a busy stranger never evicts them."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo = app.build_demo(model, examples=None)
    on_analyse = next(f.fn for f in demo.fns.values() if f.name == "on_analyse")  # what the Analyse button runs
    mine = write(tmp_path / "gradio" / "a1" / "mine.wav", speech_like())
    first, *_, alice = on_analyse(str(mine), None)
    stranger = None
    for i in range(3 * app.RECENT):
        *_, stranger = on_analyse(str(write(tmp_path / "gradio" / f"b{i}" / "x.wav", speech_like(seed=i))), stranger)
    assert not mine.exists() and stranger is not alice
    again, *_ = on_analyse(str(mine), alice)  # Analyse pressed again on the upload, deleted since
    assert again == first and "%" in again
    assert on_analyse(str(mine), stranger)[0].endswith(app.GONE)
    assert len(stranger.items) == app.RECENT  # bounded


# ----------------------------------------------------------------------------- about the model

METRICS = {
    "cross_validation": {
        "ravdess": {
            "uar": {"mean": 0.61, "std": 0.04},
            "accuracy": {"mean": 0.6, "std": 0.05},
            "macro_f1": {"mean": 0.59, "std": 0.04},
            "labels": LABELS,
            "folds": 5,
            "confusion": [[5, 1, 0, 0], [1, 5, 0, 0], [0, 0, 6, 0], [0, 1, 0, 5]],
        },
    },  # fmt: skip
    "leave_one_corpus_out": {"emodb": {"uar": 0.42, "accuracy": 0.45, "labels": LABELS, "trained_on": ["ravdess"]}},
}
CARD = "---\nlicense: other\n---\n# Card\n\nOur own words.\n"


def test_about_renders_metrics_card_and_confusion(model, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "train_config.json").write_text(json.dumps({"data": ["ravdess=/data/ravdess", "/my/own"]}))
    files = {n: tmp_path / n for n in ("metrics.json", "README.md", "train_config.json")}
    summary, body, metrics = app.about_markdown(model, "user/model", files)
    for text in (*model.labels, "61.0 ± 4.0 %", "42.0 %", "Speaker-independent", "Livingstone", "own recordings"):
        assert text in summary
    assert card.results_markdown(METRICS, level=4) in summary  # the model card's own tables, not a paraphrase
    assert card.limitations() in summary
    assert body == "# Card\n\nOur own words."  # the whole card, without its metadata
    (fig,) = app.confusion_figures(metrics)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == LABELS


def test_about_without_metrics_or_card(model, model_dir):
    files = app.checkpoint_files(model)
    assert model.source_dir == model_dir and "metrics.json" not in files
    summary, body, metrics = app.about_markdown(model, str(model_dir), files)
    assert "no metrics.json" in summary and "Limitations" in summary and metrics == {}
    assert app.confusion_figures(metrics) == []
    summary, body, _ = app.about_markdown(model, str(model_dir), {})
    assert body == "" and "Not documented" in summary and "decide about people" in summary


def test_results_tables_list_every_corpus_in_the_metrics():
    corpora = ["ravdess", "emodb", "ased", "nemo", "emospeech"]
    m = {"accuracy": 0.5, "uar": 0.45, "chance_uar": 1 / 6, "labels": LABELS}
    loco = {c: {**m, "trained_on": [o for o in corpora if o != c]} for c in corpora}
    text = card.results_markdown({"leave_one_corpus_out": loco})
    rows = [line for line in text.splitlines() if line.startswith("| ") and "45.0 %" in line]
    assert len(rows) == 5 and all(f"| {c} |" in text for c in corpora)
    assert "ravdess + emodb + ased + nemo" in text and "Cross-validation" not in text


def test_about_with_validation_only(model):
    val = {"emodb": {"accuracy": 0.3, "uar": 0.35, "labels": LABELS, "confusion": np.eye(4, dtype=int).tolist()}}
    assert "35.0 %" in card.results_markdown({"validation": val})
    assert len(app.confusion_figures({"validation": val})) == 1


# ----------------------------------------------------------------------------- the Blocks app and its model


def _config(demo) -> str:
    return json.dumps(demo.get_config_file(), default=str)


def test_examples_appear_when_the_folder_has_audio(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # Gradio copies examples to its cache
    write(tmp_path / "ex" / "calm_voice.wav", speech_like())
    (tmp_path / "ex" / "README.md").write_text("not audio")
    assert "calm_voice" in _config(app.build_demo(model, examples=tmp_path / "ex"))
    assert "Examples: click one" not in _config(app.build_demo(model, examples=tmp_path / "empty"))


def test_unusable_ser_model_falls_back_with_a_visible_notice(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", Path(model_dir))  # the shipped model
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    demo, model = app.load_app("runs/heldot", fallback=True)  # as SER_MODEL on a Space
    assert model.source_dir == Path(model_dir)
    config = _config(demo)
    assert "Model notice" in config and "runs/heldot" in config and "shipped model instead" in config
    notice = next(c["props"]["value"] for c in demo.get_config_file()["components"] if "Model notice" in str(c))
    assert notice.endswith(".") and "\n" not in notice  # whole sentences, never cut mid-word


def test_missing_model_given_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SER_MODEL", raising=False)
    with pytest.raises(SystemExit) as e:
        app.main(["--model", str(tmp_path / "nope")])
    message = str(e.value)  # ModelError's own one-line wording, not a traceback
    assert message.startswith("error: ") and str(tmp_path / "nope") in message and "\n" not in message
    with pytest.raises(ModelError):
        app.load_app(str(tmp_path / "nope"))  # no fallback unless asked for


# ----------------------------------------------------------------------------- `python app.py` + gradio_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_app_serves_predict_to_gradio_client(model_dir, tmp_path):
    from gradio_client import Client, handle_file

    port, uploads = _free_port(), tmp_path / "gradio"
    env = {**os.environ, "SER_MODEL": str(model_dir), "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(uploads)}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=Path(app.__file__).parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"app.py exited: {proc.stdout.read()}"
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                assert time.monotonic() < deadline, "app.py did not start"
                time.sleep(0.5)
        verdict, label, notes = client.predict(
            handle_file(str(write(tmp_path / "a.wav", speech_like(3.0)))), api_name="/predict"
        )
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert sorted(confidences) == sorted(LABELS) and sum(confidences.values()) == pytest.approx(1, abs=1e-4)
        assert label["label"] == max(confidences, key=confidences.get)
        assert label["label"].capitalize() in verdict and notes == ""
        examples = {p.name for p in app.EXAMPLES.iterdir()}  # Gradio keeps a copy of each example clip to serve
        kept = [p for p in uploads.rglob("*") if p.is_file() and p.name not in examples]
        assert not kept, "the upload was kept after the request"

        verdict, label, _ = client.predict(
            handle_file(str(write(tmp_path / "s.wav", np.zeros(16000)))), api_name="/predict"
        )
        assert "could not hear anything" in verdict and not label.get("confidences")

        # 11 minutes of 16-bit 48 kHz stereo: 127 MB, over the 120 MiB limit that fits 10 minutes (115 MB)
        big = write(tmp_path / "big.wav", np.zeros((48000 * 660, 2), np.int16), 48000, subtype="PCM_16")
        with pytest.raises(ValueError, match="maximum file size"):
            client.predict(handle_file(str(big)), api_name="/predict")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
