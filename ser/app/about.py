"""The "About the model" tab. In plain words: what the model does, how good it is (one picture), why acted speech
differs, what never to use it for. For the curious: labels, training data, speaker-independent results, confusion
matrices, limitations and the model card, from `ser.card` and the files in the model's folder."""

import json
from pathlib import Path

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np
from huggingface_hub import ModelCard

from ser import card, classroom, plots
from ser.model import SERModel

from .views import Page, drawn

TITLE = "About the model"


def plain_about(model: SERModel, metrics: dict) -> tuple[str, str]:
    """The About tab in words a 14-year-old can follow: (what it does and how good it is, why actors and what never)."""
    what = (
        "### What it does\nIt listens to how a voice *sounds* (high or low, loud or soft, fast or slow, smooth or "
        "rough), not to the words, and picks the closest of its "
        f"{len(model.labels)} emotions: {', '.join(model.labels)}.\n\n### How good is it?\n"
        + classroom.how_good(metrics)
    )
    why = f"### Actors are not everyday life\n{classroom.ACTED_SPEECH}\n\n### Never use it to judge people\n{classroom.NEVER}"
    return what, why


def how_good_figure(metrics: dict) -> plt.Figure | None:
    """The tab's one picture: how often the model is right per emotion, on actors it never trained on."""
    if (best := classroom.best_tested(metrics)) is None:
        return None
    corpus, recall = best
    title = f"Right answers on voices it never trained on ({classroom.corpus_name(corpus)})"
    return drawn(plots.right_per_emotion, recall, 1 / len(recall), title=title)


def confusion_figures(metrics: dict) -> list[plt.Figure]:
    """One row-normalised confusion matrix per tested corpus (cross-validation, else validation)."""
    source, kind = (
        (metrics["cross_validation"], "all folds")
        if metrics.get("cross_validation")
        else (metrics.get("validation", {}), "validation speakers")
    )
    return [
        drawn(plots.confusion, np.array(m["confusion"]), m["labels"], title=f"{corpus} ({kind}), %")
        for corpus, m in source.items()
        if "confusion" in m and "labels" in m
    ]


def about_markdown(model: SERModel, source: str | None, files: dict[str, Path]) -> tuple[str, str, dict]:
    """(summary Markdown, model card body, metrics) of the loaded checkpoint, coping with missing files.

    The summary's text and tables come from `ser.card`, the same functions that wrote the model card.
    """
    body = ModelCard.load(files["README.md"]).text.strip() if "README.md" in files else ""
    metrics = json.loads(files["metrics.json"].read_text()) if "metrics.json" in files else {}
    data = json.loads(files["train_config.json"].read_text()).get("data", []) if "train_config.json" in files else []
    md = [
        "### What it predicts",
        f"{card.summary(model)} Model: `{source or 'checkpoints/default'}`.",
        "### Training data",
        card.training_data(data) if data else "Not documented: this checkpoint has no train_config.json.",
        "### Test results (speaker-independent)",
        card.results_markdown(metrics, level=4)
        if metrics
        else "This checkpoint has no metrics.json, so its accuracy is unknown: treat its answers as untested.",
        f"People, for scale: crowd raters named the emotion a CREMA-D actor intended {card.HUMANS_CREMAD:.1%} of "
        "the time from the voice alone (Cao et al. 2014).",
        "### Limitations",
        card.limitations(),
    ]
    return "\n\n".join(md), body, metrics


def build(page: Page) -> None:
    """The plain words and their picture, then the technical details folded away."""
    summary, body, metrics = about_markdown(page.model, page.source, page.files)
    what, why = plain_about(page.model, metrics)
    gr.Markdown(what, elem_id="about-plain")
    if (fig := how_good_figure(metrics)) is not None:
        gr.Plot(fig, show_label=False, elem_id="how-good")
    gr.Markdown(why, elem_id="about-why")
    with gr.Accordion("For the curious: the technical details", open=False, elem_id="curious"):
        gr.Markdown(summary, elem_id="about")
        with gr.Row():
            for fig in confusion_figures(metrics):
                gr.Plot(fig, show_label=False, min_width=700, elem_classes="confusion")
        if body:
            with gr.Accordion("Full model card", open=False):
                gr.Markdown(body)
