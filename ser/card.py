"""The model card (README.md of a checkpoint folder), written from the run's own metrics."""

from .model import SERModel

LICENCES = {
    "ravdess": "RAVDESS (Livingstone & Russo 2018), CC BY-NC-SA 4.0",
    "emodb": "EmoDB (Burkhardt et al. 2005), free for research use",
    "cremad": "CREMA-D (Cao et al. 2014), ODbL",
    "tess": "TESS (Dupuis & Pichora-Fuller 2010), CC BY-NC-ND 4.0",
    "savee": "SAVEE (Haq & Jackson 2009), free for research use",
    "folder": "your own recordings",
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _mean_std(m: dict, key: str) -> str:
    v = m[key]
    return f"{_pct(v['mean'])} ± {100 * v['std']:.1f}" if isinstance(v, dict) else _pct(v)


def _confusion_table(m: dict) -> list[str]:
    labels, cm = m["labels"], m["confusion"]
    rows = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    rows += [f"| **{lab}** | " + " | ".join(str(c) for c in cm[i]) + " |" for i, lab in enumerate(labels)]
    return rows


def render_card(model: SERModel, metrics: dict, data_args: list[str], augmented: bool = True) -> str:
    corpora = sorted({a.partition("=")[0] if "=" in a else "folder" for a in data_args})
    cv, loco, val = (
        metrics.get("cross_validation", {}),
        metrics.get("leave_one_corpus_out", {}),
        metrics.get("validation", {}),
    )
    headline = cv or val
    training = metrics.get("training", {})
    held_out = bool(training.get("validation_speakers", True))  # older metrics.json: validation speakers
    fitted_on = training.get("temperature_fitted_on", "validation speakers")
    yaml = [
        "---",
        "license: cc-by-nc-sa-4.0" if "ravdess" in corpora else "license: other",
        "library_name: ser",
        "pipeline_tag: audio-classification",
        "tags:",
        "- audio-classification",
        "- speech-emotion-recognition",
        "- pytorch",
        "datasets:",
        *[f"- {c}" for c in corpora],
        "metrics:",
        "- accuracy",
        "- recall",
        "- f1",
        "---",
    ]
    fc = model.feature_config
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        "# Speech emotion recognition: VGG-style CNN on log-mel spectrograms",
        "",
        f"Predicts one of **{', '.join(model.labels)}** from a recording of one speaker. "
        f"{n_params / 1e6:.2f} M parameters; input: {fc.n_mels}-band log-mel spectrogram at {fc.sample_rate} Hz "
        f"({fc.n_fft}-sample window, {fc.hop_length}-sample hop), any length from {fc.min_seconds:g} s "
        f"(longer than {fc.max_seconds:g} s is cut). Probabilities are temperature-calibrated "
        f"(T = {model.config.temperature:.2f}, fitted on {fitted_on}; the ECE figures below show what that "
        "does for speakers it has not heard).",
        "",
        "## Training data",
        *[f"- {LICENCES.get(c, c)}" for c in corpora],
        "",
        f"Trained from scratch with `{metrics.get('command', 'train.py')}`"
        + (
            ", with room, noise, microphone-EQ, band-limiting, codec, speed, frequency-warp and SpecAugment "
            "augmentation (settings in `train_config.json`)."
            if augmented
            else ", without augmentation."
        ),
        "",
        "## Evaluation protocol",
        "Speaker-independent only: no speaker is ever in both the training and the test data. Random clip-level "
        "splits leak the speaker and inflate accuracy by 5-20 points, which is why popular SER demos quoting 70-90 % "
        "do not survive a new voice. UAR is the unweighted average recall (mean of per-class recalls; chance = 1 / "
        "number of classes).",
    ]
    if cv:
        lines += [
            "",
            f"### Cross-validation over speaker folds ({next(iter(cv.values()))['folds']} folds, mean ± std)",
            "",
            "| corpus | classes | accuracy | UAR | macro-F1 | ECE before → after calibration |",
            "|---|---|---|---|---|---|",
        ]
        for c, m in cv.items():
            ece = f"{m['ece_uncalibrated']['mean']:.3f} → {m['ece']['mean']:.3f}" if "ece" in m else "n/a"
            lines.append(
                f"| {c} | {len(m['labels'])} | {_mean_std(m, 'accuracy')} | {_mean_std(m, 'uar')} | {_mean_std(m, 'macro_f1')} | {ece} |"
            )
        lines += [
            "",
            "Each fold trains a fresh model on the other folds' speakers (all corpora), "
            + (
                "keeps the epoch with the best UAR on held-out validation speakers, "
                if held_out
                else "runs the whole schedule and keeps the last weight-averaged model (no validation speakers: "
                "every training speaker is used; its temperature is fitted on the other folds' test clips), "
            )
            + "and is tested on the fold's speakers. On a corpus that lacks some of the model's "
            "classes (EmoDB has no calm or surprised), the argmax is over the classes it has.",
        ]
        for c, m in cv.items():
            lines += [
                "",
                f"Per-class recall, {c} (pooled over folds): "
                + ", ".join(f"{k} {_pct(v)}" for k, v in m["pooled_per_class_recall"].items()),
                "",
                f"Confusion matrix, {c} (all folds' test clips; rows true, columns predicted):",
                "",
                *_confusion_table(m),
            ]
    if loco:
        lines += [
            "",
            "### Cross-corpus (leave one corpus out)",
            "",
            "| trained on | tested on (all speakers) | shared classes | accuracy | UAR | chance UAR |",
            "|---|---|---|---|---|---|",
        ]
        for c, m in loco.items():
            lines.append(
                f"| {' + '.join(m['trained_on'])} | {c} | {len(m['labels'])} | {_pct(m['accuracy'])} | {_pct(m['uar'])} | {_pct(m['chance_uar'])} |"
            )
        lines += [
            "",
            "This is the closest measure here of how the model fares on a voice, language and microphone it "
            "has never heard.",
        ]
    if val and not cv:
        lines += [
            "",
            "### Validation speakers of this model",
            "",
            "Early stopping and the temperature used these speakers, so the figures are optimistic; the "
            "speaker-fold cross-validation of the same recipe (the command with `--folds 5`) is the fair "
            "within-corpus figure.",
            "",
            "| corpus | accuracy | UAR |",
            "|---|---|---|",
        ]
        lines += [f"| {c} | {_pct(m['accuracy'])} | {_pct(m['uar'])} |" for c, m in val.items()]
    lines += [
        "",
        "For reference: human raters of CREMA-D reach 40.9 % from voice alone; a 2026 lightweight model reports "
        "UAR 0.652 on RAVDESS under strict speaker-independent partitioning.",
        "",
        "## Intended use",
        "Demonstrations and teaching: showing what a spectrogram is and how a CNN reads emotion cues from a voice.",
        "",
        "## Limitations",
        "- Acted speech: professional actors portraying emotions, mostly exaggerated; real, spontaneous emotion is subtler.",
        "- RAVDESS has two English sentences; EmoDB ten German ones. English and German only.",
        "- Recorded in studios: laptop microphones, rooms, and the noise suppression of phones, calls and "
        "conferencing apps shift the input, and accuracy on them is lower than any figure above.",
        "- Not for judging real people: not for hiring, policing, health, education assessment or any decision about a person.",
    ]
    if headline:
        lines += [
            "",
            "Every figure above comes from the training command quoted above; `metrics.json` holds them all.",
        ]
    return "\n".join(yaml + [""] + lines) + "\n"
