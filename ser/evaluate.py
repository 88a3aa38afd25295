"""Evaluation: predictions over clips, the metrics we report, and temperature calibration."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from .data import Clips
from .features import log_mel_spectrogram
from .model import SERModel


@torch.inference_mode()
def clip_logits(model: SERModel, clips: Clips, device: str = "cpu") -> torch.Tensor:
    """Uncalibrated logits (N, n_classes), one clip at a time at its full length, as in prediction."""
    model.eval()
    out = [model(log_mel_spectrogram(a, model.feature_config).unsqueeze(0).to(device))[0].cpu() for a in clips.audio]
    return torch.stack(out) if out else torch.empty(0, len(model.labels))


def listener_log_probs(model: SERModel, clips: Clips, cache_dir=None) -> dict[str, np.ndarray]:
    """Log-probabilities (N, len(model.labels)) of each clip as `inference.analyse` gives them: "cnn" (at its own
    temperature), and for a two-listener model "voice" and "fused" (the answer; clips too short for the voice
    listener keep the CNN's). Encoder features are cached under `cache_dir`."""
    from .voice import corpus_features, fuse_log_probs

    cnn = torch.log_softmax(clip_logits(model, clips) / model.config.temperature, dim=1).numpy()
    out = {"cnn": cnn}
    voice = model.voice
    if voice is None:
        return out
    feats = corpus_features(voice.encoder, clips.audio, cache_dir, log=lambda *a: None)
    head = voice.head.log_probabilities(feats)
    voice_logp = np.full_like(cnn, np.log(1e-12))
    for j, lab in enumerate(model.labels):
        if lab in voice.labels:
            voice_logp[:, j] = head[:, voice.labels.index(lab)]
    fused = fuse_log_probs(cnn, voice_logp, voice.fusion_weight, voice.temperature)
    short = np.array([len(a) < voice.min_seconds * voice.encoder.cfg.sample_rate for a in clips.audio])
    fused[short] = cnn[short]
    return {**out, "voice": voice_logp, "fused": fused}


def restrict(logits: torch.Tensor, model_labels: list[str], keep: list[str]) -> torch.Tensor:
    """Logits of only the `keep` labels, in `keep` order: for test data that lacks some model classes."""
    return logits[:, [model_labels.index(label) for label in keep]]


def metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, UAR (mean per-class recall), macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "labels": labels,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": float(np.mean(r)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "chance_uar": 1.0 / len(labels),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def evaluate_logits(logits: torch.Tensor, y_true: list[str], model_labels: list[str], temperature: float = 1.0) -> dict:
    """Metrics for logits over `model_labels`, scored on the labels present in `y_true`.

    Labels the model knows but the data lacks (e.g. 'calm' on EmoDB) are excluded from the argmax,
    so the test is on the classes both share; the result says which were used.
    """
    labels = [lab for lab in model_labels if lab in set(y_true)]
    missing = sorted(set(y_true) - set(model_labels))
    if not labels:
        raise ValueError(
            f"the data's classes ({', '.join(missing)}) are none of the model's ({', '.join(model_labels)})"
        )
    keep = [i for i, y in enumerate(y_true) if y in labels]
    sub = restrict(logits[keep], model_labels, labels)
    pred = [labels[i] for i in sub.argmax(dim=1).tolist()]
    truth = [y_true[i] for i in keep]
    out = metrics(truth, pred, labels)
    out["ece"] = expected_calibration_error(
        F.softmax(sub / temperature, dim=1), torch.tensor([labels.index(t) for t in truth])
    )
    if missing:
        out["skipped_labels_unknown_to_model"] = missing
        out["skipped_clips"] = len(y_true) - len(keep)
    return out


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, bins: int = 10) -> float:
    """ECE: |confidence - accuracy| averaged over 10 equal-width confidence bins, weighted by count."""
    if len(target) == 0:
        return float("nan")
    conf, pred = probs.max(dim=1)
    correct = (pred == target).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(conf[inside].mean().item() - correct[inside].mean().item())
    return float(ece)


def fit_temperature(logits: torch.Tensor, target: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature T in [low, high] minimising the NLL of softmax(logits / T) (Guo et al., 2017).

    A log-spaced grid search, refined once around the best point: unlike gradient steps on log T it cannot
    diverge when the logits separate the classes perfectly (the optimum then sits at `low`)."""
    logits = logits.detach().float()

    def nll(ts: torch.Tensor) -> torch.Tensor:
        scaled = logits.unsqueeze(0) / ts.view(-1, 1, 1)  # (grid, N, C)
        return -scaled.log_softmax(dim=-1).gather(-1, target.view(1, -1, 1).expand(len(ts), -1, 1)).mean(dim=(1, 2))

    grid = torch.logspace(math.log10(low), math.log10(high), 241)
    i = int(nll(grid).argmin())
    fine = torch.logspace(math.log10(grid[max(i - 1, 0)]), math.log10(grid[min(i + 1, len(grid) - 1)]), 101)
    return min(max(float(fine[int(nll(fine).argmin())]), low), high)


def summarize_folds(fold_results: list[dict]) -> dict:
    """Mean and standard deviation over folds of the headline metrics, and the summed confusion matrix."""
    out = {"folds": len(fold_results)}
    for key in ("accuracy", "uar", "macro_f1", "ece", "ece_uncalibrated"):
        vals = [r[key] for r in fold_results if key in r]
        if vals:
            out[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_fold": vals}
    out["labels"] = fold_results[0]["labels"]
    out["confusion"] = np.sum([r["confusion"] for r in fold_results], axis=0).tolist()
    cm = np.array(out["confusion"])
    out["pooled_per_class_recall"] = {lab: float(cm[i, i] / max(cm[i].sum(), 1)) for i, lab in enumerate(out["labels"])}
    return out


def summarize_cross_validation(results: list, log=print) -> dict:
    """Per corpus: mean, spread and pooled confusion over the folds' test results (`training.FitResult`s)."""
    per_corpus: dict[str, list] = {}
    for r in results:
        for corpus, m in r.tested.items():
            m["test_speakers"] = sorted(s for s in r.task.test_speakers if s.startswith(corpus + ":"))
            per_corpus.setdefault(corpus, []).append(m)
            log(f"{r.task.name} {corpus}: UAR {m['uar']:.3f}  accuracy {m['accuracy']:.3f}")
    return {corpus: {**summarize_folds(ms), "fold_results": ms} for corpus, ms in per_corpus.items()}


def summarize_cross_corpus(results: list, log=print) -> dict:
    """Per held-out corpus: what the model was trained on and its metrics there (`training.FitResult`s)."""
    out = {}
    for r in results:
        (corpus,) = r.tested
        out[corpus] = {"trained_on": r.task.trained_on, **r.tested[corpus]}
        log(f"  {corpus}: UAR {out[corpus]['uar']:.3f} on its {len(out[corpus]['labels'])} classes")
    if len(out) > 1:
        uars = [m["uar"] for m in out.values()]
        log(f"  leave-one-corpus-out mean UAR {np.mean(uars):.3f}, lowest {min(uars):.3f}")
    return out
