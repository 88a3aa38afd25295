"""The ONNX graph (ser.export) answers as `ser.analyse` does, for both listeners, on audio of every length the app
meets; and refuses what it cannot represent in one line."""

import json
import shutil

import numpy as np
import pytest
from conftest import speech_like

from ser import cli
from ser.export import TOLERANCE, ExportError, export, read_metadata, run, session
from ser.hub import load_model
from ser.inference import analyse
from ser.vad import speech_fraction

RATE = 16000


def talk(seconds: float, seed: int = 0, lead: float = 0.2, pause: float = 0.0) -> np.ndarray:
    """Speech-like audio with silent ends (trimmed by prepare) and, optionally, a pause (cut by the encoder)."""
    rng = np.random.default_rng(seed)
    half = speech_like(seconds / 2, f0=120 + 40 * seed, seed=seed)
    gap = 0.001 * rng.standard_normal(int(pause * RATE)).astype(np.float32)
    quiet = np.zeros(int(lead * RATE), np.float32)
    return np.concatenate([quiet, half, gap, speech_like(seconds / 2, f0=180, seed=seed + 1), quiet])


@pytest.fixture(scope="module")
def two_listeners(two_listener_dir, tmp_path_factory):
    model = load_model(two_listener_dir)
    return model, session(export(model, tmp_path_factory.mktemp("onnx") / "model.onnx"))


def assert_same(model, sess, audio):
    ours, theirs = analyse(model, audio, RATE), run(sess, audio)
    assert list(ours.probs) == read_metadata(sess)["labels"]
    np.testing.assert_allclose(theirs["probs"], list(ours.probs.values()), atol=TOLERANCE)
    for name, probs in ours.listeners.items():
        np.testing.assert_allclose(theirs[name], list(probs.values()), atol=TOLERANCE)
    np.testing.assert_allclose(theirs["mel"], ours.mel, atol=1e-3)  # dB: float32 sums in another order
    assert theirs["speech"] == pytest.approx(speech_fraction(ours.audio, RATE), abs=1e-6)
    return ours, theirs


@pytest.mark.parametrize(
    "audio",
    [talk(2.0), talk(4.0, seed=1, pause=0.6), talk(0.7, seed=2), 0.02 * talk(3.0, seed=3)],
    ids=["plain", "with a pause", "too short for the voice listener", "quiet"],
)
def test_graph_answers_as_analyse_does_for_both_listeners(two_listeners, audio):
    model, sess = two_listeners
    ours, theirs = assert_same(model, sess, audio)
    assert theirs["seconds"] == pytest.approx(len(ours.audio) / RATE, abs=1e-6)
    if "voice" not in ours.listeners:  # under a second: the CNN alone, in the graph too
        np.testing.assert_allclose(theirs["probs"], theirs["cnn"], atol=1e-7)
    else:
        assert np.abs(theirs["probs"] - theirs["cnn"]).max() > 1e-3  # the voice listener did change the answer


def test_graph_cuts_long_audio_and_tells_how_much_sound_there_was(two_listeners):
    model, sess = two_listeners
    ours, theirs = assert_same(model, sess, talk(33.0, seed=4))
    assert ours.truncated and len(ours.audio) == 30 * RATE
    assert theirs["seconds"] > 32.5  # before the cut: the page says only the first 30 s were heard


def test_graph_reports_a_clip_too_short_to_analyse(two_listeners):
    """prepare refuses under min_seconds of sound; the graph still answers (on the clip padded with silence) and
    says how much sound it found, so the page can refuse it in the app's words."""
    model, sess = two_listeners
    audio = talk(0.3, seed=5)
    with pytest.raises(ValueError, match="too short"):
        analyse(model, audio, RATE)
    out = run(sess, audio)
    assert 0.2 < out["seconds"] < model.feature_config.min_seconds
    assert np.isfinite(out["probs"]).all()


def test_cnn_only_checkpoint_exports_its_one_listener(model_dir, tmp_path):
    model = load_model(model_dir)
    sess = session(export(model, tmp_path / "cnn.onnx"))
    meta = read_metadata(sess)
    assert meta["listeners"] == ["cnn"] and meta["labels"] == model.labels
    assert_same(model, sess, talk(2.5, seed=6))


def test_metadata_carries_what_a_page_needs(two_listeners):
    model, sess = two_listeners
    meta = read_metadata(sess)
    assert meta["sample_rate"] == RATE and meta["listeners"] == ["cnn", "voice"]
    assert meta["features"] == model.feature_config.to_dict()
    assert meta["fusion_weight"] == model.voice.fusion_weight and meta["voice_min_seconds"] == 1.0
    assert {"min_seconds", "max_seconds", "silence_dbfs", "confident_top", "may_say_confident"} <= set(meta)
    assert [i.name for i in sess.get_inputs()] == ["audio"]


def test_encoder_weights_are_stored_as_the_float16_they_are(two_listeners, tmp_path):
    """The encoder ships as float16: the graph keeps it so (cast once to float32 inside), not doubled."""
    import onnx

    model, _ = two_listeners
    proto = onnx.load(str(export(model, tmp_path / "m.onnx")))
    halves = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert sum(np.prod(i.dims) for i in halves) >= 1_000_000  # the LSTM's 1.4 M weights


def test_shipped_model_exports_through_the_command_line(tmp_path, capsys):
    assert cli.main(["export", "checkpoints/default", str(tmp_path / "default.onnx")]) == 0
    said = capsys.readouterr().out
    assert "wrote" in said and "differ by" in said
    size = (tmp_path / "default.onnx").stat().st_size
    assert size < 12 * 2**20
    meta = read_metadata(session(tmp_path / "default.onnx"))
    assert meta["listeners"] == ["cnn", "voice"] and meta["may_say_confident"] is False


def test_export_refuses_what_it_cannot_represent_in_one_line(two_listener_dir, tmp_path, capsys):
    folder = tmp_path / "rate"
    shutil.copytree(two_listener_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["features"]["sample_rate"] = 22050
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="16 kHz"):
        export(load_model(folder), tmp_path / "x.onnx")
    assert cli.main(["export", str(folder), str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()
