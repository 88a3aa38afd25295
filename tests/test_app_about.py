"""The "About the model" tab (`ser.app.about`): plain words and one picture first, then for the curious the model
card's own tables, the confusion matrices and the card, coping with a checkpoint that lacks some of its files."""

import json

import numpy as np
import pytest
from conftest import LABELS

from ser import card, classroom
from ser.app.about import about_markdown, confusion_figures, how_good_figure, plain_about
from ser.app.views import checkpoint_files

JARGON = (
    "UAR",
    "F1",
    "dBFS",
    "±",
    "ECE",
    "fold",
    "mel",
    "log",
    "train.py",
    "speaker-independent",
    "RAVDESS",
    "CREMA",
    "Cao et al",
    "corpus",
)
# As train.py writes it: cross-validation with confusion matrices, and a corpus left out of training.
CARD_METRICS = {
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
# What the plain words are made of: per-emotion recall, two unseen corpora, and held-out speakers.
PLAIN_METRICS = {
    "cross_validation": {
        "ravdess": {
            "uar": {"mean": 0.61, "std": 0.04},
            "accuracy": {"mean": 0.6, "std": 0.05},
            "labels": LABELS * 2,
            "pooled_per_class_recall": {e: 0.5 for e in LABELS},
            "folds": 5,
            "macro_f1": 0.5,
        },
    },  # fmt: skip
    "leave_one_corpus_out": {
        "emodb": {"uar": 0.42, "accuracy": 0.45, "labels": LABELS, "trained_on": ["ravdess"]},
        "nemo": {"uar": 0.31, "accuracy": 0.35, "labels": LABELS, "trained_on": ["ravdess"]},
    },
    "excluded_speakers_test": {"ravdess": {"n": 120, "accuracy": 0.55, "uar": 0.5, "labels": LABELS * 2}},
}
CARD = "---\nlicense: other\n---\n# Card\n\nOur own words.\n"


def test_about_renders_metrics_card_and_confusion(model, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(CARD_METRICS))
    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "train_config.json").write_text(json.dumps({"data": ["ravdess=/data/ravdess", "/my/own"]}))
    files = {n: tmp_path / n for n in ("metrics.json", "README.md", "train_config.json")}
    summary, body, metrics = about_markdown(model, "user/model", files)
    for text in (*model.labels, "61.0 ± 4.0 %", "42.0 %", "Speaker-independent", "Livingstone", "own recordings"):
        assert text in summary
    assert card.results_markdown(CARD_METRICS, level=4) in summary  # the model card's own tables, not a paraphrase
    assert card.limitations() in summary
    assert body == "# Card\n\nOur own words."  # the whole card, without its metadata
    (fig,) = confusion_figures(metrics)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == LABELS


def test_about_without_metrics_or_card(model, model_dir):
    files = checkpoint_files(model)
    assert model.source_dir == model_dir and "metrics.json" not in files
    summary, body, metrics = about_markdown(model, str(model_dir), files)
    assert "no metrics.json" in summary and "Limitations" in summary and metrics == {}
    assert confusion_figures(metrics) == []
    summary, body, _ = about_markdown(model, str(model_dir), {})
    assert body == "" and "Not documented" in summary and "decide about people" in summary


def test_results_tables_list_every_corpus_in_the_metrics():
    corpora = ["ravdess", "emodb", "ased", "nemo", "emospeech"]
    m = {"accuracy": 0.5, "uar": 0.45, "chance_uar": 1 / 6, "labels": LABELS}
    loco = {c: {**m, "trained_on": [o for o in corpora if o != c]} for c in corpora}
    text = card.results_markdown({"leave_one_corpus_out": loco})
    rows = [line for line in text.splitlines() if line.startswith("| ") and "45.0 %" in line]
    assert len(rows) == 5 and all(f"| {c} |" in text for c in corpora)
    assert "ravdess + emodb + ased + nemo" in text and "Cross-validation" not in text


def test_about_with_validation_only():
    val = {"emodb": {"accuracy": 0.3, "uar": 0.35, "labels": LABELS, "confusion": np.eye(4, dtype=int).tolist()}}
    assert "35.0 %" in card.results_markdown({"validation": val})
    assert len(confusion_figures({"validation": val})) == 1


def test_the_about_tab_speaks_plainly_and_keeps_the_tables_for_the_curious(model, demo):
    what, why = plain_about(model, PLAIN_METRICS)
    assert "about **6 in 10**" in what and "guessing would get 1 in 8" in what and "**English actors**" in what
    assert "66 of 120" in what and "from 3 in 10 to 4 in 10" in what
    assert "41 times in 100" in what
    assert "Cao et al. 2014" in about_markdown(model, None, {})[0]  # the study, for the curious
    assert classroom.ACTED_SPEECH in why and "Never use it" in why
    for word in JARGON:
        assert word not in what + why, word
    summary, _, _ = about_markdown(model, None, {})
    assert "UAR" not in summary  # no metrics: the tables are absent, and so is the jargon
    assert "For the curious" in json.dumps(demo.get_config_file(), default=str, ensure_ascii=False)
    assert "no test results" in plain_about(model, {})[0]
    fig = how_good_figure(PLAIN_METRICS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == LABELS and len(ax.patches) == len(LABELS)
    assert ax.lines[0].get_xdata()[0] == pytest.approx(100 / len(LABELS))  # guessing
    assert how_good_figure({}) is None
    assert "(English actors)" in ax.get_title()  # who speaks, not the corpus's name
    alike = {
        **PLAIN_METRICS,
        "leave_one_corpus_out": {c: {**m, "uar": 0.4} for c, m in PLAIN_METRICS["leave_one_corpus_out"].items()},
    }
    assert "about **4 in 10** right on average." in plain_about(model, alike)[0]  # no "from 4 in 10 to 4 in 10"


def test_card_tables_are_still_the_technical_source(model, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(PLAIN_METRICS))
    summary, _, _ = about_markdown(model, None, {"metrics.json": tmp_path / "metrics.json"})
    assert card.results_markdown(PLAIN_METRICS, level=4) in summary
