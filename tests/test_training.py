"""End-to-end smoke runs of train.py on a tiny synthetic corpus: it learns, writes a complete checkpoint folder,
reuses its decoded-audio cache, cross-validates on disjoint speakers, and runs under torchrun."""

import dataclasses
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import speech_like, write
from huggingface_hub import ModelCard

import ser.data
import ser.voice_training
import train
from ser.hub import load_model
from ser.inference import analyse
from ser.training import TrainConfig, masked_loss, sampling_weights
from train import config_from_args

REPO = Path(__file__).resolve().parent.parent
ENCODER = REPO / "checkpoints" / "default" / "encoder.safetensors"
SPEAKERS = 6
TAKES = 2
# Three "emotions" that differ audibly: pitch, loudness and speaking rate.
STYLES = {
    "sad": dict(f0=100, energy=0.08, syllable_hz=2.0),
    "neutral": dict(f0=170, energy=0.25, syllable_hz=4.0),
    "angry": dict(f0=290, energy=0.7, syllable_hz=7.0),
}
# A shrunk config that learns this task in a few seconds on one CPU thread.
SMALL = ["--model.widths", '[8, "M", 16, "M"]', "--model.hidden", "16", "--batch-size", "16", "--steps-per-epoch", "4",
         "--lr", "5e-3", "--val-fraction", "0.34", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """root/<emotion>/spk<k>/take<j>.wav: every speaker records every emotion, each with their own voice pitch."""
    root = tmp_path_factory.mktemp("corpus")
    for s in range(SPEAKERS):
        for emotion, style in STYLES.items():
            for take in range(TAKES):
                voice = {**style, "f0": style["f0"] * (0.9 + 0.04 * s)}
                write(root / emotion / f"spk{s}" / f"take{take}.wav", speech_like(1.0, seed=100 * s + take, **voice))
    return root


@pytest.fixture(scope="module")
def restore_threads():
    n = torch.get_num_threads()  # --threads 1 sets this process-wide
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory, restore_threads):
    """One training run; returns (exit code, checkpoint folder, cache folder)."""
    work = tmp_path_factory.mktemp("train")
    out, cache = work / "ckpt", work / "cache"
    rc = train.main(
        ["--data", f"folder={corpus}", "--out", str(out), "--cache-dir", str(cache), "--epochs", "12", *SMALL]
    )
    return rc, out, cache


def test_training_learns_an_audible_distinction(trained):
    rc, out, _ = trained
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    val = metrics["validation"]["folder"]
    assert val["labels"] == ["neutral", "sad", "angry"]
    assert val["n"] == 2 * len(STYLES) * TAKES  # two held-out speakers
    assert val["uar"] >= 0.66, metrics["training"]["history"]  # chance is 1/3
    assert metrics["training"]["validation_speakers"] == ["folder:spk4", "folder:spk5"]
    assert metrics["training"]["train_clips"] == (SPEAKERS - 2) * len(STYLES) * TAKES
    assert 1 <= metrics["training"]["best_epoch"] <= 12
    assert len(metrics["training"]["history"]) == 12  # no early stop by default: the one-cycle schedule runs out


def test_training_writes_a_complete_checkpoint_folder(trained, corpus):
    rc, out, _ = trained
    assert rc == 0
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json", "train_config.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "confusion_matrix_folder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]

    card = ModelCard.load(out / "README.md")  # YAML header parsed by the Hub's own reader
    assert card.data.library_name == "ser" and card.data.pipeline_tag == "audio-classification"
    assert card.data.datasets == ["folder"]
    assert "Speaker-independent" in card.text

    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["model"]["widths"] == [8, "M", 16, "M"] and resolved["epochs"] == 12 and resolved["lr"] == 5e-3
    assert resolved["augment"]["p_noise"] == 0.5 and resolved["augment"]["speed"] == [0.9, 1.1]
    assert TrainConfig(**{k: v for k, v in resolved.items() if k not in ("data", "args")}) == config_from_args(
        train.build_parser().parse_args(["--data", "x", "--out", "y", "--epochs", "12", *SMALL])
    )  # train_config.json holds every setting, and reads back into the same TrainConfig
    assert resolved["data"] == [f"folder={corpus}"]
    config = json.loads((out / "config.json").read_text())
    assert config["features"] == resolved["model"]["features"]
    assert 0.05 <= config["temperature"] <= 20

    model = load_model(out)
    probs = analyse(model, speech_like(1.0, seed=999, **STYLES["angry"]), 16000).probs
    assert sum(probs.values()) == pytest.approx(1, abs=1e-5)


def test_second_run_reuses_the_cache_and_cross_validates_on_disjoint_speakers(trained, corpus, monkeypatch, tmp_path):
    rc, _, cache = trained
    assert rc == 0
    cached = sorted(cache.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"
    stamp = (cached[0].stat().st_mtime_ns, cached[0].read_bytes())

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio was decoded again instead of read from the cache")

    monkeypatch.setattr(ser.data, "load_clip", no_decoding)
    out = tmp_path / "cv"
    args = ["--data", f"folder={corpus}", "--out", str(out), "--cache-dir", str(cache)]
    assert train.main([*args, "--epochs", "2", "--folds", "2", *SMALL]) == 0

    assert sorted(cache.iterdir()) == cached
    assert (cached[0].stat().st_mtime_ns, cached[0].read_bytes()) == stamp
    cv = json.loads((out / "metrics.json").read_text())["cross_validation"]["folder"]
    assert cv["folds"] == 2 and len(cv["uar"]["per_fold"]) == 2
    tested = [set(fold["test_speakers"]) for fold in cv["fold_results"]]
    assert tested[0].isdisjoint(tested[1])
    assert tested[0] | tested[1] == {f"folder:spk{s}" for s in range(SPEAKERS)}
    assert sum(map(sum, cv["confusion"])) == SPEAKERS * len(STYLES) * TAKES  # every clip tested exactly once
    assert "Cross-validation over speaker folds (2 folds" in (out / "README.md").read_text()


def test_every_speaker_trains_and_the_folds_calibrate(trained, corpus, tmp_path, capsys):
    """--val-fraction 0: no validation speakers, the last epoch is kept and the temperature comes from the
    folds' test speakers (cross-fitted for each fold's own ECE)."""
    _, _, cache = trained
    out = tmp_path / "all"
    args = ["--data", f"folder={corpus}", "--out", str(out), "--cache-dir", str(cache), "--epochs", "6", *SMALL]
    assert train.main([*args, "--folds", "3", "--val-fraction", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    training = metrics["training"]
    assert training["validation_speakers"] == [] and metrics["validation"] == {}
    assert training["train_clips"] == SPEAKERS * len(STYLES) * TAKES
    assert training["best_epoch"] == 6 and "val_uar" not in training["history"][-1]
    assert training["temperature_fitted_on"] == "cross-validation test speakers"
    temperature = json.loads((out / "config.json").read_text())["temperature"]
    assert temperature == pytest.approx(training["temperature"]) and temperature != 1.0
    cv = metrics["cross_validation"]["folder"]
    assert cv["ece"]["per_fold"] != cv["ece_uncalibrated"]["per_fold"]  # each fold scored with its own temperature
    assert "fitted on cross-validation test speakers" in (out / "README.md").read_text()
    assert "on every training speaker" in (out / "README.md").read_text()

    assert train.main([*args, "--val-fraction", "0", "--out", str(tmp_path / "uncalibrated")]) == 0
    assert "temperature stays 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "uncalibrated" / "config.json").read_text())["temperature"] == 1.0


def test_bad_data_argument_is_a_one_line_error(tmp_path, capsys):
    rc = train.main(["--data", f"ravdess={tmp_path / 'missing'}", "--out", str(tmp_path / "o"), "--cache-dir", ""])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: corpus folder not found") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_a_corpus_of_only_unusable_files_is_a_one_line_error(tmp_path, capsys):
    for emotion in STYLES:
        (tmp_path / "c" / emotion / "spk0").mkdir(parents=True)
        (tmp_path / "c" / emotion / "spk0" / "take0.wav").write_bytes(b"RIFF not really a wav")
    rc = train.main(["--data", f"folder={tmp_path / 'c'}", "--out", str(tmp_path / "o"), "--cache-dir", ""])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the decoding progress bar
    assert err.startswith("error: none of the 3 'folder' files under") and "Save it as a WAV or MP3 file" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flag, value, says",
    [("--head.speeds", "[0, 1.1]", "head.speeds must be a list of speeds from 0.5 to 2"),
     ("--head.speeds", "1.1", "head.speeds must be a list"),
     ("--head.fusion-weight", "1.5", "head.fusion_weight must be from 0"),
     ("--head.C", "0", "head.C must be above 0")],
)  # fmt: skip
def test_a_head_setting_no_head_can_train_with_is_a_one_line_error(corpus, tmp_path, capsys, flag, value, says):
    rc = train.main(["--data", f"folder={corpus}", "--out", str(tmp_path / "o"), flag, value])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"error: {says}") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_first_run_trains_on_exactly_the_audio_later_runs_read_from_the_cache(corpus, tmp_path):
    fc = ser.data.FeatureConfig()
    decoded = ser.data.load_corpus(corpus, "folder", fc, tmp_path / "cache")  # decodes and writes the cache
    cached = ser.data.load_corpus(corpus, "folder", fc, tmp_path / "cache")
    uncached = ser.data.load_corpus(corpus, "folder", fc)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for a, b, c in zip(decoded.audio, cached.audio, uncached.audio, strict=True):
        assert a.dtype == b.dtype == c.dtype == np.float32
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_more_folds_than_speakers_is_a_one_line_error(trained, corpus, tmp_path, capsys):
    _, _, cache = trained
    argv = ["--data", f"folder={corpus}", "--out", str(tmp_path / "o"), "--cache-dir", str(cache), "--folds", "7"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: folder has 6 speakers; cannot make 7 speaker-independent folds"
    assert not (tmp_path / "o").exists()


def test_jobs_under_torchrun_is_a_one_line_error(trained, corpus, tmp_path, capsys, monkeypatch):
    _, _, cache = trained
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets for 2 processes
    argv = ["--data", f"folder={corpus}", "--out", str(tmp_path / "o"), "--cache-dir", str(cache), "--jobs", "2"]
    assert train.main(argv) == 2
    assert (
        capsys.readouterr().err.strip() == "error: --jobs runs fits in parallel processes; under torchrun leave it at 1"
    )
    assert not (tmp_path / "o").exists()


def test_a_bug_inside_a_fit_keeps_its_traceback(trained, corpus, tmp_path, monkeypatch):
    """Only planning problems become one-line errors; a ValueError from training itself is not swallowed."""
    _, _, cache = trained

    def broken_fit(*args, **kwargs):
        raise ValueError("bug deep inside training")

    monkeypatch.setattr("ser.training.fit", broken_fit)
    argv = ["--data", f"folder={corpus}", "--out", str(tmp_path / "o"), "--cache-dir", str(cache)]
    with pytest.raises(ValueError, match="bug deep inside training"):
        train.main(argv)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_runs_under_torchrun_with_two_processes(trained, corpus, tmp_path):
    _, _, cache = trained
    warm = tmp_path / "cache"
    shutil.copytree(cache, warm)  # decoding is covered above; keep this run short
    out = tmp_path / "ddp"
    cmd = [shutil.which("torchrun"), "--standalone", "--nproc_per_node", "2", "train.py", "--data",
           f"folder={corpus}", "--out", str(out), "--cache-dir", str(warm), "--epochs", "2", *SMALL]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count(f"wrote {out}") == 1  # only rank 0 writes the checkpoint
    assert run.stdout.count("epoch   2") == 1  # and logs
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["training"]["history"]) == 2
    assert load_model(out).labels == ["neutral", "sad", "angry"]


@pytest.fixture(scope="module")
def emodb_like(tmp_path_factory):
    """A second corpus under EmoDB's naming (`SSa0TEV.wav`), same three audible styles, other speakers."""
    root = tmp_path_factory.mktemp("emodb")
    letters = {"sad": "T", "neutral": "N", "angry": "W"}
    for k, speaker in enumerate(["03", "08", "09", "10"]):
        for emotion, style in STYLES.items():
            for take in range(TAKES):
                voice = {**style, "f0": style["f0"] * (0.85 + 0.05 * k)}
                clip = speech_like(1.0, seed=7000 + 100 * k + take, **voice)
                write(root / f"{speaker}a0{take + 1}{letters[emotion]}a.wav", clip)
    return root


def test_parallel_jobs_give_the_same_results_as_one_process(trained, corpus, emodb_like, tmp_path, capsys):
    """Folds, leave-one-corpus-out and the final fit in 2 worker processes match running them one by one."""
    _, _, cache = trained
    base = ["--data", f"folder={corpus}", "--data", f"emodb={emodb_like}", "--cache-dir", str(tmp_path / "cache")]
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        argv = [*base, "--out", str(out), "--epochs", "2", "--folds", "2", "--cross-corpus", "--jobs", str(jobs)]
        assert train.main([*argv, *SMALL]) == 0
        runs[jobs] = json.loads((out / "metrics.json").read_text())
    assert "running 5 fits, 2 at a time with 1 thread(s) each" in capsys.readouterr().out  # final + 2 folds + 2 corpora

    serial, parallel = runs[1], runs[2]
    assert parallel["training"]["jobs"] == 2
    for corpus_name in ("folder", "emodb"):
        assert parallel["cross_validation"][corpus_name]["uar"]["per_fold"] == pytest.approx(
            serial["cross_validation"][corpus_name]["uar"]["per_fold"], abs=1e-6
        )
        assert (
            parallel["cross_validation"][corpus_name]["confusion"]
            == serial["cross_validation"][corpus_name]["confusion"]
        )
        assert parallel["validation"][corpus_name]["confusion"] == serial["validation"][corpus_name]["confusion"]
    loco = parallel["leave_one_corpus_out"]
    assert loco["emodb"]["trained_on"] == ["folder"] and loco["folder"]["trained_on"] == ["emodb"]
    assert loco["emodb"]["n"] == 4 * len(STYLES) * TAKES  # every clip of the held-out corpus
    assert {k: v["confusion"] for k, v in loco.items()} == {
        k: v["confusion"] for k, v in serial["leave_one_corpus_out"].items()
    }
    curve = lambda run: [h[k] for h in run["training"]["history"] for k in ("loss", "val_uar")]  # noqa: E731
    assert curve(parallel) == pytest.approx(curve(serial), abs=1e-6)


def test_parallel_jobs_are_refused_under_torchrun(monkeypatch):
    from ser.training import Task, TrainConfig, run_fits

    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets for 2 processes
    with pytest.raises(ValueError, match="under torchrun leave it at 1"):
        run_fits(None, [Task("a", [], [], [], None, [], [])] * 2, TrainConfig(), None, jobs=2)


def test_the_sampler_balances_corpora_and_their_classes_over_many_draws():
    """Corpus a: 90 clips of 2 classes (80/10); corpus b: 10 clips of 3 classes. Weights a=1, b=3."""
    emotions = ["sad"] * 80 + ["angry"] * 10 + ["sad", "calm", "calm", "happy", "happy", "happy"] + ["sad"] * 4
    corpora = ["a"] * 90 + ["b"] * 10
    clips = ser.data.Clips([np.zeros(1)] * 100, emotions, [f"{c}:s" for c in corpora], corpora, [""] * 100)
    p = sampling_weights(clips, {"b": 3.0})
    draws = np.random.default_rng(0).choice(100, size=200_000, p=p)
    share = lambda corpus, emotion=None: np.mean(  # noqa: E731
        [corpora[i] == corpus and (emotion is None or emotions[i] == emotion) for i in draws]
    )
    assert share("a") == pytest.approx(0.25, abs=0.01) and share("b") == pytest.approx(0.75, abs=0.01)
    assert share("a", "sad") == pytest.approx(0.125, abs=0.01) and share("a", "angry") == pytest.approx(0.125, abs=0.01)
    for emotion in ("sad", "calm", "happy"):
        assert share("b", emotion) == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match="not in the training data"):
        sampling_weights(clips, {"c": 1.0})


def test_the_loss_ignores_classes_the_clips_corpus_lacks():
    logits = torch.randn(4, 5, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3])
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 4] = mask[1, 3:] = False  # clip 0's corpus has no class 4; clip 1's has neither 3 nor 4
    masked_loss(logits, target, mask, smoothing=0.1).backward()
    assert torch.all(logits.grad[~mask] == 0)  # nothing pushes an absent class down
    assert torch.all(logits.grad[mask].abs() > 0)
    full = torch.ones_like(mask)
    manual = torch.sum(-(0.9 * F.one_hot(target, 5) + 0.02) * F.log_softmax(logits, 1), 1).mean()
    assert masked_loss(logits, target, full, 0.1).item() == pytest.approx(manual.item(), rel=1e-6)


@pytest.fixture(scope="module")
def ased_like(tmp_path_factory):
    """A corpus under ASED's naming with only two of the three classes (sad, angry) and four other speakers."""
    root = tmp_path_factory.mktemp("ased")
    folders = {"sad": "04Sad", "angry": "05Angry"}
    for k in range(4):
        for emotion, folder in folders.items():
            for take in range(TAKES):
                voice = {**STYLES[emotion], "f0": STYLES[emotion]["f0"] * (0.88 + 0.06 * k)}
                name = f"{folder[2].lower()}{folder[1]}-01-{take + 1:02d}-01-{k + 1:02d}.wav"
                write(root / folder / name, speech_like(1.0, seed=9000 + 100 * k + take, **voice))
    return root


def test_corpora_with_different_label_sets_train_and_evaluate_leave_one_corpus_out(
    trained, corpus, ased_like, tmp_path, capsys
):
    _, _, cache = trained
    out = tmp_path / "multi"
    argv = ["--data", f"folder={corpus}", "--data", f"ased={ased_like}", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out), "--epochs", "2", "--folds", "2", "--cross-corpus", "--exclude", "folder:spk0"]  # fmt: skip
    assert train.main([*argv, *SMALL, "--val-fraction", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    loco = metrics["leave_one_corpus_out"]
    assert set(loco) == {"folder", "ased"}
    assert loco["ased"]["labels"] == ["sad", "angry"] and loco["ased"]["trained_on"] == ["folder"]
    assert loco["folder"]["labels"] == ["sad", "angry"]  # the model trained on ased alone knows no 'neutral'
    assert loco["folder"]["skipped_clips"] == SPEAKERS * TAKES
    cv = metrics["cross_validation"]
    assert cv["ased"]["labels"] == ["sad", "angry"] and cv["folder"]["labels"] == ["neutral", "sad", "angry"]
    assert "folder:spk0" not in metrics["training"]["train_speakers"]
    assert metrics["training"]["excluded_speakers"] == ["folder:spk0"]
    assert metrics["excluded_speakers_test"]["folder"]["n"] == len(STYLES) * TAKES
    assert load_model(out).labels == ["neutral", "sad", "angry"]
    card = (out / "README.md").read_text()
    assert "ased" in card and "Retta" in card  # the corpus's citation travels with the model


def test_a_held_out_corpus_sharing_no_class_is_a_one_line_error(trained, corpus, tmp_path, capsys):
    _, _, cache = trained
    for k, speaker in enumerate(["03", "08"]):  # EmoDB naming, happiness (F) only: a class the folder corpus lacks
        write(tmp_path / "happy" / f"{speaker}a01Fa.wav", speech_like(1.0, seed=k))
    argv = ["--data", f"folder={corpus}", "--data", f"emodb={tmp_path / 'happy'}", "--cross-corpus"]
    assert train.main([*argv, "--out", str(tmp_path / "o"), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the decoding progress bar
    assert err == "error: cannot test on emodb without it: none of its classes (happy) is in the other corpora"
    assert not (tmp_path / "o").exists()


def test_a_killed_run_resumes_and_ends_exactly_like_an_uninterrupted_one(trained, corpus, tmp_path, monkeypatch):
    """The fit is killed after its 3rd of 5 epochs (the state was saved atomically after each), then resumed."""
    _, _, cache = trained
    argv = ["--data", f"folder={corpus}", "--cache-dir", str(cache), "--epochs", "5", "--folds", "2", *SMALL]
    assert train.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert not (tmp_path / "whole.state").exists()  # removed once the checkpoint is written

    real_fit, calls = ser.training.fit, []

    def fit_killed_in_second_fold(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the final model finished; the first fold dies after epoch 3

            def die(epoch, model, row):
                if epoch == 3:
                    raise KeyboardInterrupt

            kwargs["on_epoch"] = die
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(ser.training, "fit", fit_killed_in_second_fold)
    with pytest.raises(KeyboardInterrupt):
        train.main([*argv, "--out", str(tmp_path / "killed")])
    state = tmp_path / "killed.state"
    assert sorted(p.name for p in state.iterdir()) == ["final.done.safetensors", "fold-1.safetensors", "run.json"]
    assert not (tmp_path / "killed").exists()
    monkeypatch.setattr(ser.training, "fit", real_fit)

    assert train.main([*argv, "--out", str(tmp_path / "killed")]) == 2  # never mixes an old state into a new run
    assert train.main([*argv, "--out", str(tmp_path / "killed"), "--resume"]) == 0
    whole, resumed = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("whole", "killed"))
    for key in ("cross_validation", "validation"):
        assert json.dumps(resumed[key], sort_keys=True) == json.dumps(whole[key], sort_keys=True)
    assert (tmp_path / "whole" / "model.safetensors").read_bytes() == (
        tmp_path / "killed" / "model.safetensors"
    ).read_bytes()


def test_a_damaged_resume_state_is_a_clear_error(tmp_path):
    from ser.resume import StateError, load_state, save_state

    path = tmp_path / "fit.safetensors"
    save_state(path, {"w": torch.ones(3)}, {"epoch": 1})
    tensors, meta = load_state(path)
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"epoch": 1}
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(StateError, match="damaged .* delete it"):
        load_state(path)


def test_a_damaged_cache_entry_is_rebuilt(corpus, tmp_path):
    fc = ser.data.FeatureConfig()
    first = ser.data.load_corpus(corpus, "folder", fc, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a disk-full or killed write elsewhere
    messages = []
    again = ser.data.load_corpus(corpus, "folder", fc, tmp_path, log=messages.append)
    assert "damaged" in messages[0] and "decoding again" in messages[0]
    assert all(np.array_equal(a, b) for a, b in zip(first.audio, again.audio, strict=True))
    assert ser.data.load_corpus(corpus, "folder", fc, tmp_path, log=messages.append).paths == first.paths
    assert len(messages) == 1  # rebuilt once, read from the cache after that


def test_the_card_train_py_writes_describes_the_voice_listener_it_saved(two_listener_dir, tmp_path):
    """train.py saves the voice listener's files first, then the folder and its card (`save_checkpoint`), from the
    CNN it trained, which has no listener attached: the card must still say that a second listener votes."""
    out = tmp_path / "run"
    shutil.copytree(two_listener_dir, out)
    cnn = load_model(out)
    cnn.voice = None  # as train.py holds it
    metrics = json.loads((ser.hub.DEFAULT_MODEL / "metrics.json").read_text())  # a real run's, voice section and all
    ser.training.save_checkpoint(cnn, out, TrainConfig(), ["folder=x"], metrics)
    card = (out / "README.md").read_text()
    assert "and a pretrained voice encoder" in card and "A second listener votes too" in card
    assert load_model(out).voice is not None  # its files were kept
    del metrics["voice"]
    ser.training.save_checkpoint(cnn, out, TrainConfig(), ["folder=x"], metrics)  # a run without one: no trace left
    assert "voice encoder" not in (out / "README.md").read_text() and load_model(out).voice is None


def test_two_listeners_are_trained_calibrated_and_cross_validated_like_the_shipped_recipe(
    trained, corpus, emodb_like, ased_like, tmp_path, monkeypatch
):
    """The shipped recipe in miniature: the CNN on two corpora, the voice head on all three, the fusion calibrated
    on the one the CNN never heard, and both listeners cross-validated on speaker folds of every corpus (the CNN's
    own folds on its corpora), each fold's head trained without the fold's speakers."""
    sizes = []
    fit_head = ser.voice_training.fit_head
    monkeypatch.setattr(ser.voice_training, "fit_head", lambda x, *a: sizes.append(len(x)) or fit_head(x, *a))
    out = tmp_path / "two"
    argv = ["--data", f"folder={corpus}", "--data", f"emodb={emodb_like}", "--data", f"ased={ased_like}",
            "--cnn-corpora", "folder,emodb", "--exclude", "folder:spk0", "--encoder", str(ENCODER),
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--epochs", "2", "--folds", "2"]  # fmt: skip
    assert train.main([*argv, *SMALL, "--val-fraction", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    voice = metrics["voice"]
    assert voice["unseen_corpora"] == ["ased"] and set(voice["fused_loco"]) == {"ased"}
    assert set(voice["head_loco"]) == {"folder", "emodb", "ased"}
    cv, n_all = voice["cross_validation"], (SPEAKERS + 4) * len(STYLES) * TAKES + 4 * 2 * TAKES
    assert set(cv) == {"folder", "emodb", "ased"}  # new speakers of every corpus, the CNN's and the others
    for c, listeners in cv.items():
        assert set(listeners) == {"cnn", "voice", "fused", "weight_screen"} and listeners["fused"]["folds"] == 2
        screen = listeners["weight_screen"]  # its ends are the two listeners alone, its shipped weight the fused
        assert screen["0.0"] == pytest.approx(listeners["cnn"]["uar"]["mean"])
        assert screen["1.0"] == pytest.approx(listeners["voice"]["uar"]["mean"])
        assert screen[str(voice["fusion_weight"])] == pytest.approx(listeners["fused"]["uar"]["mean"])
        held = [set(r["test_speakers"]) for r in listeners["fused"]["fold_results"]]
        assert not held[0] & held[1] and len(held[0] | held[1]) == (4 if c != "folder" else SPEAKERS)
    for c in ("folder", "emodb"):  # the CNN's column is the CNN's own cross-validation: same models, same speakers
        assert cv[c]["cnn"]["uar"]["per_fold"] == pytest.approx(metrics["cross_validation"][c]["uar"]["per_fold"])
        assert [r["test_speakers"] for r in cv[c]["cnn"]["fold_results"]] == [
            r["test_speakers"] for r in metrics["cross_validation"][c]["fold_results"]
        ]
    tested = [sum(cv[c]["fused"]["fold_results"][k]["n"] for c in cv) for k in (0, 1)]
    copies = 1 + len(ser.voice.HeadConfig().speeds)  # each training clip, and it played at every speed
    assert sum(tested) == n_all and sizes[-2:] == [copies * (n_all - tested[0]), copies * (n_all - tested[1])]
    card = (out / "README.md").read_text()
    assert "Two listeners on new speakers of every corpus (2 speaker folds" in card
    assert "The CNN alone, cross-validation over speaker folds" in card
    assert {p.name for p in out.glob("confusion_matrix_*.png")} == {f"confusion_matrix_{c}.png" for c in cv}
    assert load_model(out).voice is not None


def test_the_recipe_spelled_out_in_train_py_is_the_shipped_one():
    """train.py's help spells the shipped recipe out as flags: they must make the same settings as the shipped
    checkpoint's train_config.json (threads included: another count of threads gives other weights)."""
    doc = train.__doc__
    block = doc.split("spelling out the recipe that file records:\n\n", 1)[1].split("\n\n", 1)[0]
    argv = shlex.split(block.replace("\\\n", " "))[2:]  # past "python train.py"
    parser = train.build_parser()
    spelled = parser.parse_args(argv)
    shipped = parser.parse_args(["--recipe", str(REPO / "checkpoints/default/train_config.json"), "--out", "x"])
    assert dataclasses.asdict(config_from_args(spelled)) == dataclasses.asdict(config_from_args(shipped))
    assert train.recipe_of(spelled) == train.recipe_of(shipped)
