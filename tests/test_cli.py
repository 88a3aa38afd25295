"""`python -m ser predict | evaluate | push`: one result line per file, one-line errors, never a traceback."""

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import UNUSABLE_FILES, random_bytes_file, speech_like, write

import ser.hub
from ser.cli import main

REPO = Path(__file__).resolve().parent.parent


def probs_ok(probs: dict, labels: list[str]) -> bool:
    return list(probs) == labels and abs(sum(probs.values()) - 1) < 1e-4 and min(probs.values()) >= 0


@pytest.fixture
def inputs(tmp_path):
    """Two good files (one nested in a subfolder), three bad ones, and a non-audio file the folder search skips."""
    d = tmp_path / "in"
    good = [
        write(d / "a_speech.wav", speech_like(1.0)),
        write(d / "sub" / "b_speech.flac", speech_like(1.2, sr=44100, seed=2), 44100),
    ]
    (d / "c_empty.wav").write_bytes(b"")
    bad = [d / "c_empty.wav", write(d / "d_short.wav", speech_like(0.2)), write(d / "e_silent.ogg", np.zeros(16000))]
    (d / "notes.txt").write_text("skip me")
    return d, good, bad


def error_line(stderr: str) -> str:
    """The one `error: ...` line the CLI printed (progress bars and notices may surround it); no traceback."""
    assert "Traceback" not in stderr
    errors = [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def digests(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_subprocess_jsonl_one_object_per_file_and_nonzero_exit(inputs, model_dir, tmp_path):
    folder, good, bad = inputs
    before = digests(folder)
    missing = tmp_path / "missing.wav"
    cmd = [sys.executable, "-m", "ser", "predict", str(folder), str(missing), "--model", str(model_dir)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)

    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in sorted(good + bad)] + [str(missing)]
    labels = json.loads((model_dir / "config.json").read_text())["labels"]
    for row in rows:
        if Path(row["path"]) in good:
            assert set(row) == {"path", "label", "probs", "listeners", "notes"} and row["notes"] == []
            assert probs_ok(row["probs"], labels) and row["label"] == max(row["probs"], key=row["probs"].get)
            assert row["listeners"] == {"cnn": row["probs"]}  # a CNN-only model: one listener
        else:
            assert set(row) == {"path", "error"} and row["error"] and "\n" not in row["error"]
    assert "4 of 6 file(s) could not be used" in run.stderr
    assert digests(folder) == before  # inputs are only read


def test_every_kind_of_unusable_file_is_a_json_error_line(tmp_path, model_dir, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    paths = [make(folder) for make, _ in UNUSABLE_FILES.values()]
    paths = [p for p in paths if p.is_file()] + [tmp_path / "missing.wav"]
    before = digests(folder)

    assert main(["predict", *map(str, paths), "--model", str(model_dir)]) == 1

    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, paths))
    assert all(set(r) == {"path", "error"} and "\n" not in r["error"] for r in rows)
    assert "Traceback" not in captured.err
    assert digests(folder) == before


def test_predict_all_good_exits_zero(inputs, model_dir, capsys):
    _, good, _ = inputs
    assert main(["predict", *map(str, good), "--model", str(model_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_predict_reports_the_same_notes_as_the_app(tmp_path, model_dir, capsys):
    loud = write(tmp_path / "loud.wav", np.clip(speech_like(2.0) * 8, -1, 1))
    assert main(["predict", str(loud), "--model", str(model_dir)]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(row["notes"]) == 1 and "Too loud" in row["notes"][0]
    assert main(["predict", str(loud), "--model", str(model_dir), "--format", "csv"]) == 0
    (csv_row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert csv_row["notes"] == row["notes"][0]
    assert main(["predict", str(loud), "--model", str(model_dir), "--format", "table"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "note: Too loud" in line


def test_predict_csv_has_a_header_and_one_row_per_file(inputs, model_dir, capsys):
    folder, good, bad = inputs
    assert main(["predict", str(folder), "--model", str(model_dir), "--format", "csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    labels = json.loads((model_dir / "config.json").read_text())["labels"]
    assert [r["path"] for r in rows] == [str(p) for p in sorted(good + bad)]
    for r in rows:
        if r["error"]:
            assert r["label"] == "" and r["notes"] == "" and all(r[k] == "" for k in labels)
        else:
            assert r["label"] in labels and sum(float(r[k]) for k in labels) == pytest.approx(1, abs=1e-3)
    assert sum(bool(r["error"]) for r in rows) == len(bad)


def test_predict_table_prints_a_line_per_file(inputs, model_dir, capsys):
    folder, good, bad = inputs
    assert main(["predict", str(folder), "--model", str(model_dir), "--format", "table"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(good) + len(bad)
    assert sum("error:" in line for line in lines) == len(bad)
    assert all("%" in line for line in lines if "error:" not in line)


@pytest.mark.parametrize(
    "args,message",
    [
        (["predict", "{empty}"], "no audio files found"),
        (["predict", "{wav}", "--model", "{missing}"], "no model at"),
        (["evaluate", "--data", "iemocap={empty}"], "unknown corpus"),
        (["evaluate", "--data", "folder={empty}"], "no usable 'folder' files"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, message, tmp_path, wav, model_dir, capsys):
    (tmp_path / "empty").mkdir()
    fill = {"empty": tmp_path / "empty", "wav": wav, "missing": tmp_path / "nowhere"}
    args = [a.format(**fill) for a in args]
    if "--model" not in args:
        args += ["--model", str(model_dir)]
    if args[0] == "evaluate":
        args += ["--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    assert message in error_line(capsys.readouterr().err)


@pytest.fixture
def typo(model_dir, tmp_path, monkeypatch):
    """A working folder with runs/heldout (a checkpoint) in it; `runs/heldot` is its typo."""
    shutil.copytree(model_dir, tmp_path / "runs" / "heldout")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)  # were it substituted, predictions would follow
    return "runs/heldot"


def test_a_mistyped_model_folder_is_an_error_not_the_default_model(typo, wav, capsys):
    assert main(["predict", str(wav), "--model", typo]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no model at 'runs/heldot'" in error_line(captured.err) and "runs/heldout" in captured.err


def test_a_mistyped_model_folder_in_a_subprocess_exits_2_with_one_line(typo, wav, tmp_path):
    cmd = [sys.executable, "-m", "ser", "predict", str(wav), "--model", typo]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert error_line(run.stderr).startswith("error: no model at 'runs/heldot'")
    assert len(run.stderr.strip().splitlines()) == 1


def test_evaluate_with_a_mistyped_model_writes_nothing(typo, corpus, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--model", typo, "--data", f"folder={corpus}", "--out", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "no model at 'runs/heldot'" in error_line(capsys.readouterr().err)
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.fixture
def corpus(tmp_path):
    """folder layout root/<emotion>/<speaker>/<take>.wav with 3 speakers, 2 takes, 3 of the model's 4 labels."""
    root = tmp_path / "corpus"
    styles = {"sad": (110, 2.0), "happy": (220, 5.0), "angry": (300, 7.0)}
    for s in range(3):
        for emotion, (f0, rate) in styles.items():
            for take in range(2):
                write(
                    root / emotion / f"spk{s}" / f"t{take}.wav",
                    speech_like(0.8, f0=f0, syllable_hz=rate, seed=10 * s + take),
                )
    (root / "unsorted.wav").write_bytes(b"")  # no emotion folder: reported and skipped
    return root


def test_evaluate_writes_metrics_and_a_confusion_png(corpus, model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model_dir), "--data", f"folder={corpus}", "--out", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0

    report = json.loads((out / "metrics.json").read_text())
    m = report["corpora"]["folder"]
    assert m["n"] == 18
    assert m["labels"] == ["happy", "sad", "angry"]  # the model's order, restricted to classes in the data
    assert set(m["per_class"]) == set(m["labels"]) and all(pc["support"] == 6 for pc in m["per_class"].values())
    cm = np.array(m["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == 18 and (cm.sum(axis=1) == 6).all()
    assert m["accuracy"] == pytest.approx(np.trace(cm) / 18)
    assert m["uar"] == pytest.approx(np.mean(np.diag(cm) / cm.sum(axis=1)))
    assert 0 <= m["macro_f1"] <= 1 and m["chance_uar"] == pytest.approx(1 / 3)
    assert "every clip" in report["protocol"]
    assert (out / "confusion_folder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr()
    assert "UAR" in printed.out and "skipped 1 file" in printed.err


def test_evaluate_on_named_speakers_only(corpus, model_dir, tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model_dir), "--data", f"folder={corpus}", "--speakers", "spk2,folder:spk0"]
    assert main([*args, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["corpora"]["folder"]["n"] == 12
    assert "spk2,folder:spk0" in report["protocol"]


def test_evaluate_warns_about_the_speakers_the_model_was_trained_on(corpus, model_dir, tmp_path, capsys):
    """A model scores far higher on voices it trained on: evaluate says so, counts them, and is quiet without them."""
    folder = tmp_path / "checkpoint"
    shutil.copytree(model_dir, folder)
    (folder / "metrics.json").write_text(json.dumps({"training": {"train_speakers": ["folder:spk0", "emodb:03"]}}))
    args = ["evaluate", "--model", str(folder), "--data", f"folder={corpus}", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    err = capsys.readouterr().err
    assert "warning: 6 of 18 folder clips are of the 1 speaker(s) the model was trained on" in err
    assert (
        json.loads((tmp_path / "all" / "metrics.json").read_text())["corpora"]["folder"]["clips_of_training_speakers"]
        == 6
    )
    assert main([*args, "--speakers", "spk1,spk2"]) == 0
    assert "warning" not in capsys.readouterr().err  # only voices it never heard: nothing to say
    assert main(["evaluate", "--model", str(model_dir), *args[3:]]) == 0  # a model that does not say
    assert "does not say which speakers it was trained on" in capsys.readouterr().err


def test_evaluate_with_unknown_speakers_is_a_one_line_error(corpus, model_dir, tmp_path, capsys):
    args = ["evaluate", "--model", str(model_dir), "--data", f"folder={corpus}", "--speakers", "nobody"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "speaker ids look like folder:" in capsys.readouterr().err


def test_evaluate_on_classes_the_model_lacks_is_a_one_line_error(tmp_path, model_dir, capsys):
    root = tmp_path / "calm_only"
    for s in range(2):
        write(root / "calm" / f"spk{s}" / "t.wav", speech_like(0.8, seed=s))
    args = ["evaluate", "--model", str(model_dir), "--data", f"folder={root}", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    assert "calm" in error_line(capsys.readouterr().err)


def test_push_without_token_is_a_one_line_error(model_dir, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main(["push", str(model_dir), "someone/ser-model"]) == 2
    err = error_line(capsys.readouterr().err)
    assert err.startswith("error: no Hugging Face token") and "HF_TOKEN" in err


def test_undecodable_file_gives_our_line_only_not_decoder_chatter(tmp_path, model_dir):
    """libsndfile's MP3 probe prints 'Cannot read next header ... Duh...' to C stderr on non-audio; we silence it."""
    path = random_bytes_file(tmp_path)
    cmd = [sys.executable, "-m", "ser", "predict", str(path), "--model", str(model_dir)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)

    assert run.returncode == 1
    assert "cannot decode" in json.loads(run.stdout)["error"]
    assert [line for line in run.stderr.splitlines() if line.strip()] == ["1 of 1 file(s) could not be used"]


def test_card_writes_the_readme_results_from_the_checkpoints_metrics(tmp_path, capsys):
    """The README's results block is the shipped checkpoint's own metrics.json, as `card --readme` writes it: a new
    run's figures reach the README by that command, never by hand. A README without the block is a one-line error."""
    from ser import card

    metrics = json.loads((ser.hub.DEFAULT_MODEL / "metrics.json").read_text())
    block = f"{card.README_START}\n{card.readme_results(metrics)}\n{card.README_END}"
    assert block in (REPO / "README.md").read_text()
    assert "**" + card.pct(metrics["voice"]["fused_loco"]["ased"]["uar"]) + "**" in block

    folder = tmp_path / "model"
    shutil.copytree(ser.hub.DEFAULT_MODEL, folder)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{card.README_START}\nold figures\n{card.README_END}\n\nAfter.\n")
    assert main(["card", str(folder), "--readme", str(readme)]) == 0
    assert readme.read_text() == f"# Title\n\n{block}\n\nAfter.\n"
    assert (folder / "README.md").read_bytes() == (ser.hub.DEFAULT_MODEL / "README.md").read_bytes()

    readme.write_text("# No block here\n")
    capsys.readouterr()
    assert main(["card", str(folder), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and card.README_START in err and err.count("\n") == 1
    assert readme.read_text() == "# No block here\n"  # nothing a user gives us is modified


@pytest.mark.parametrize(
    "n,right,said",
    [(40, 32, "right 32 times in 40."), (40, 10, "so the app never says"), (14, 14, "too few for the app to say")],
)
def test_readme_results_say_why_the_app_never_calls_an_answer_confident(n, right, said):
    from ser import card

    metrics = json.loads((ser.hub.DEFAULT_MODEL / "metrics.json").read_text())
    metrics["voice"]["reliability"] = [{"from": card.CONFIDENT_TOP, "to": 1.0, "n": n, "share_right": right / n}]
    assert said in card.readme_results(metrics).splitlines()[-1]
