"""The second listener: the re-implemented voice encoder against the original package, the head, the fusion, and
loading models with and without it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reference_clips, speech_like, write

import ser
from ser.encoder import EncoderConfig, encoder_features, load_encoder, mel_power, preprocess, raise_loudness
from ser.hub import DEFAULT_MODEL
from ser.vad import speech_probabilities
from ser.voice import (
    HeadConfig,
    class_weights,
    fit_head,
    fuse,
    fuse_log_probs,
    load_voice,
    log_softmax,
    save_voice,
)

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "encoder_reference.npz"
ENCODER = DEFAULT_MODEL / "encoder.safetensors"


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENCODER)


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.mark.parametrize("i", [0, 2])  # the clips without a pause: resemblyzer only cuts their tail to 30 ms windows
def test_mel_matches_resemblyzer(reference, i):
    clip = raise_loudness(reference_clips()[i], -30.0)
    n = int(reference[f"preprocessed_length_{i}"])
    ours = mel_power(clip[:n], EncoderConfig()).numpy()
    theirs = reference[f"mel_{i}"]
    assert ours.shape == theirs.shape
    # float32 FFTs of two libraries: agreement to ~1e-6 of the largest bin
    assert np.abs(ours - theirs).max() <= 1e-5 * theirs.max()


@pytest.mark.parametrize("i", [0, 1, 2])
def test_lstm_matches_resemblyzer(encoder, reference, i):
    """Same mel in, the float16-stored weights out: pooled layer statistics within 2e-3 (features are ~0.1 in size;
    float16 rounding of the weights alone moves them by up to ~8e-4) and the speaker embedding within 1e-3."""
    mel = torch.from_numpy(reference[f"mel_{i}"])
    assert np.abs(encoder.pooled([mel])[0].numpy() - reference[f"pooled_{i}"]).max() < 2e-3
    assert np.abs(encoder.embedding(mel).numpy() - reference[f"embedding_{i}"]).max() < 1e-3


@pytest.mark.parametrize("i", [0, 1, 2])
def test_whole_front_end_close_to_resemblyzer(encoder, reference, i):
    """With Silero in place of webrtcvad the pauses cut differ by a few frames: the features stay within a cosine
    of 0.995 of the package's (0.9986 for the clip with a pause)."""
    ours = encoder_features(encoder, [reference_clips()[i]])[0]
    theirs = reference[f"pooled_{i}"]
    assert ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) > 0.995


def test_pause_is_cut_and_loudness_only_raised():
    cfg = EncoderConfig()
    quiet_with_pause = reference_clips()[1]
    out = preprocess(quiet_with_pause, cfg)
    assert len(out) < len(quiet_with_pause) - 0.3 * cfg.sample_rate  # most of the 0.6 s pause is gone
    assert np.sqrt(np.mean(out**2)) > np.sqrt(np.mean(quiet_with_pause**2))  # raised towards -30 dBFS
    loud = speech_like(1.0, energy=0.9)
    assert np.array_equal(raise_loudness(loud, -30.0), loud)  # never lowered
    # The detector judges each input at its own level, so the analysis runs it once, before the loudness is raised
    assert np.array_equal(preprocess(quiet_with_pause, cfg, speech_probabilities(quiet_with_pause, 16000)), out)


def test_batched_features_equal_one_at_a_time(encoder):
    clips = [speech_like(s, seed=k) for k, s in enumerate((1.0, 2.5, 1.7))]
    together = encoder_features(encoder, clips)
    alone = np.stack([encoder_features(encoder, [c])[0] for c in clips])
    assert together.shape == (3, EncoderConfig().dim)
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_fuse_is_a_weighted_geometric_mean():
    cnn = {"happy": 0.7, "sad": 0.2, "calm": 0.1}
    voice = {"sad": 0.6, "happy": 0.4}
    fused = fuse(cnn, voice, 0.5)
    assert list(fused) == ["happy", "sad"]  # the labels both know, in the CNN's order
    assert sum(fused.values()) == pytest.approx(1.0)
    expected = np.sqrt([0.7 * 0.4, 0.2 * 0.6])
    assert fused["happy"] == pytest.approx(expected[0] / expected.sum())
    assert fuse(cnn, voice, 0.0)["happy"] == pytest.approx(0.7 / 0.9)  # weight 0: the CNN alone
    sharp, soft = fuse(cnn, voice, 0.5, 0.5), fuse(cnn, voice, 0.5, 2.0)
    assert sharp["happy"] > fused["happy"] > soft["happy"] > 0.5  # the temperature changes confidence, not order
    logp = fuse_log_probs(np.log([[0.7, 0.3]]), np.log([[0.4, 0.6]]), 0.5)
    assert np.exp(logp).sum() == pytest.approx(1.0)


def test_class_weights_balance_corpora_and_classes():
    emotions = ["happy"] * 6 + ["sad"] * 2 + ["happy"] * 2
    corpora = ["a"] * 8 + ["b"] * 2
    w = class_weights(emotions, corpora)
    assert w.mean() == pytest.approx(1.0)
    assert w[:6].sum() == pytest.approx(w[6:8].sum()) == pytest.approx(w[8:].sum() / 2)


def head_on(rng, n=120, dim=16):
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, dim)) + 2.0 * np.eye(3, dim)[y]
    labels = ["neutral", "happy", "sad"]
    return x, [labels[k] for k in y], labels


def test_head_learns_from_features():
    x, emotions, labels = head_on(np.random.default_rng(0))
    head = fit_head(x, emotions, ["c"] * len(x), labels + ["angry"], HeadConfig(C=1.0))
    x_new, truth, _ = head_on(np.random.default_rng(1))
    pred = np.array(head.labels)[head.logits(x_new).argmax(1)]
    assert np.mean(pred == np.array(truth)) > 0.8  # new draws of the same classes
    assert "angry" not in set(pred)  # a label without clips is never chosen


def test_head_that_does_not_fit_the_encoder_is_refused(two_listener_dir, tmp_path):
    folder = tmp_path / "odd"
    shutil.copytree(two_listener_dir, folder)
    x, emotions, labels = head_on(np.random.default_rng(0))
    save_voice(folder, fit_head(x, emotions, ["c"] * len(x), labels, HeadConfig()), EncoderConfig(), 0.5, 1.0, {})
    with pytest.raises(ValueError, match="does not fit"):
        load_voice(folder)


def test_checkpoint_without_listener_loads_as_cnn_alone(model_dir, wav):
    model = ser.load_model(model_dir)
    assert model.voice is None
    a = ser.analyse_file(model, wav)
    assert list(a.listeners) == ["cnn"] and a.probs == a.listeners["cnn"]


def test_analysis_carries_both_listeners_and_fuses_them(two_listener_dir, tmp_path):
    model = ser.load_model(two_listener_dir)
    assert model.voice is not None
    a = ser.analyse_file(model, write(tmp_path / "a.wav", speech_like(2.0)))
    assert set(a.listeners) == {"cnn", "voice"}
    assert sum(a.probs.values()) == pytest.approx(1.0)
    w, t = model.voice.fusion_weight, model.voice.temperature
    assert a.probs == pytest.approx(fuse(a.listeners["cnn"], a.listeners["voice"], w, t))


def test_too_short_for_the_voice_listener_gets_the_cnn_alone_with_a_note(two_listener_dir, tmp_path):
    model = ser.load_model(two_listener_dir)
    a = ser.analyse_file(model, write(tmp_path / "short.wav", speech_like(0.7)))
    assert list(a.listeners) == ["cnn"] and a.probs == a.listeners["cnn"]
    assert any("voice listener needs at least" in n for n in a.notes)


def test_saved_copy_keeps_the_listener(two_listener_dir, tmp_path):
    model = ser.load_model(two_listener_dir)
    model.save_pretrained(tmp_path / "copy")
    again = ser.load_model(tmp_path / "copy")
    assert again.voice is not None
    np.testing.assert_array_equal(again.voice.head.weight, model.voice.head.weight)


def test_incomplete_listener_is_refused(two_listener_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(two_listener_dir, folder)
    (folder / "voice.safetensors").unlink()
    with pytest.raises(ser.ModelError, match="voice.safetensors missing"):
        ser.load_model(folder)
    assert load_voice(tmp_path) is None
    assert np.allclose(np.exp(log_softmax(np.array([[1.0, 2.0]]))).sum(), 1.0)


def test_cli_jsonl_carries_both_listeners(two_listener_dir, tmp_path, capsys):
    from ser.cli import main

    clip = write(tmp_path / "a.wav", speech_like(1.5))
    assert main(["predict", str(clip), "--model", str(two_listener_dir)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row["listeners"]) == {"cnn", "voice"}
    assert row["probs"] == pytest.approx(fuse(row["listeners"]["cnn"], row["listeners"]["voice"], 0.5, 1.0))


def test_evaluate_scores_the_fused_answer_and_each_listener(two_listener_dir, tmp_path, capsys):
    """`evaluate` scores what `analyse` answers: per clip, the fused probabilities equal analyse_file's."""
    from ser.cli import main
    from ser.data import load_corpus
    from ser.evaluate import listener_log_probs

    root = tmp_path / "corpus"
    for s in range(2):
        for emotion, f0 in {"sad": 110, "happy": 220, "angry": 300}.items():
            write(root / emotion / f"spk{s}" / "t.wav", speech_like(1.6, f0=f0, seed=s))
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(two_listener_dir), "--data", f"folder={root}", "--out", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    m = json.loads((out / "metrics.json").read_text())["corpora"]["folder"]
    assert set(m["listeners"]) == {"cnn", "voice"} and m["n"] == 6
    assert "cnn alone" in capsys.readouterr().out
    model = ser.load_model(two_listener_dir)
    clips = load_corpus(root, "folder", model.feature_config)
    fused = np.exp(listener_log_probs(model, clips)["fused"])
    for i, path in enumerate(clips.paths):
        a = ser.analyse_file(model, path)
        np.testing.assert_allclose(fused[i], [a.probs[k] for k in model.labels], atol=1e-4)


def test_reference_uses_its_own_spread_only_when_large_enough(two_listener_dir):
    voice = ser.load_model(two_listener_dir).voice
    rng = np.random.default_rng(0)
    small = voice.reference("voice", rng.standard_normal((3, voice.encoder.cfg.dim)))
    np.testing.assert_array_equal(small.scale, voice.adapted["voice"][1])  # the stored within-speaker spread
    big = rng.standard_normal((40, voice.encoder.cfg.dim)) * 3
    assert voice.reference("batch", big).scale.mean() == pytest.approx(3, rel=0.1)
    with pytest.raises(ValueError, match="no 'room' head"):
        voice.reference("room", big)


def test_adapting_an_analysis_changes_only_the_voice_listener(two_listener_dir, tmp_path):
    from ser.inference import adapted

    model = ser.load_model(two_listener_dir)
    clips = [write(tmp_path / f"{k}.wav", speech_like(1.5, f0=120 + 30 * k, seed=k)) for k in range(4)]
    mine = np.stack([ser.analyse_file(model, c).voice_features for c in clips[:3]])
    reference = model.voice.reference("voice", mine)
    plain = ser.analyse_file(model, clips[3])
    tuned = adapted(model, plain, reference)
    assert tuned.listeners["cnn"] == plain.listeners["cnn"]
    assert tuned.listeners["voice"] != plain.listeners["voice"]
    assert tuned.probs == pytest.approx(fuse(tuned.listeners["cnn"], tuned.listeners["voice"], 0.5, 1.0))
    assert ser.analyse_file(model, clips[3], reference).probs == pytest.approx(tuned.probs)


def test_predict_adapt_compares_each_file_with_the_batch(two_listener_dir, tmp_path, capsys):
    from ser.cli import main
    from ser.voice import MIN_SPREAD

    folder = tmp_path / "class"
    for k in range(MIN_SPREAD):
        write(folder / f"pupil{k}.wav", speech_like(1.2, f0=110 + 9 * k, seed=k))
    args = ["predict", str(folder), "--model", str(two_listener_dir)]
    assert main(args) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([*args, "--adapt"]) == 0
    out = capsys.readouterr()
    tuned = [json.loads(line) for line in out.out.splitlines()]
    assert f"adapting to this batch: {MIN_SPREAD} recordings" in out.err
    assert [r["listeners"]["cnn"] for r in tuned] == [r["listeners"]["cnn"] for r in plain]
    assert any(t["listeners"]["voice"] != p["listeners"]["voice"] for t, p in zip(tuned, plain))
    (folder / "pupil0.wav").unlink()
    assert main([*args, "--adapt"]) == 2
    assert f"--adapt needs at least {MIN_SPREAD} usable recordings" in capsys.readouterr().err


def test_float16_weights_move_the_shipped_heads_probabilities_by_under_a_hundredth(encoder, reference):
    """The encoder ships as float16. From the same mel, the shipped voice head's probabilities with our float16
    encoder and with the package's float32 one (the fixture's pooled features) differ by less than 0.01."""
    voice = ser.load_model().voice
    for i in range(3):
        ours = voice.probabilities(encoder.pooled([torch.from_numpy(reference[f"mel_{i}"])])[0].numpy())
        theirs = voice.probabilities(reference[f"pooled_{i}"])
        assert max(abs(ours[k] - theirs[k]) for k in ours) < 0.01
