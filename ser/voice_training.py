"""Training and measuring the second listener: its head on every corpus, leave-one-corpus-out heads, the fusion's
calibration on corpora the CNN never heard, and the reliability of the words the app puts on a probability.

Every figure is speaker-independent: a head that is scored on a corpus was trained without that corpus, and the
speakers kept out of the final model (`exclude`) are out of every head too.
"""

import numpy as np
import torch

from .card import BINS
from .corpora import EMOTIONS
from .data import Clips, played_at, speaker_folds
from .evaluate import clip_logits, evaluate_logits, fit_temperature, summarize_folds
from .model import SERModel
from .voice import (
    ADAPT_K,
    ADAPT_KINDS,
    HeadConfig,
    VoiceHead,
    corpus_features,
    fit_head,
    fuse_log_probs,
    log_softmax,
    standardise_by_group,
    within_spread,
)


def labels_of(emotions: list[str]) -> list[str]:
    return [e for e in EMOTIONS if e in set(emotions)]


def fit_on(idx, feats: np.ndarray, copies: list, clips: Clips, labels: list[str], cfg: HeadConfig) -> VoiceHead:
    """A head trained on the clips `idx`: their features and, beside them, those of their `copies` (the same clips
    played at `cfg.speeds`; each an array aligned with `feats`)."""
    idx, reps = np.asarray(idx), 1 + len(copies)
    x = np.concatenate([feats[idx], *(c[idx] for c in copies)])
    return fit_head(x, [clips.emotions[i] for i in idx] * reps, [clips.corpora[i] for i in idx] * reps, labels, cfg)


def speed_copies(encoder, clips: Clips, speeds, cache_dir=None, log=print) -> list[np.ndarray]:
    """Encoder features (N, dim) of every clip played at each of `speeds`, cached as the clips' own are."""
    return [corpus_features(encoder, [played_at(a, f) for a in clips.audio], cache_dir, log) for f in speeds]


def train_heads(clips: Clips, feats: np.ndarray, cfg: HeadConfig, exclude=frozenset(), log=print, copies=()) -> dict:
    """The final head (every clip but the `exclude`d speakers') and one head per held-out corpus, each also on the
    training clips' `copies` (`speed_copies`).

    Returns {"labels", "final": VoiceHead, "loco": {corpus: log-probabilities (n_clips, n_labels) of its clips}}."""
    labels = labels_of(clips.emotions)
    use = np.array([s not in exclude for s in clips.speakers])

    def head(mask: np.ndarray) -> VoiceHead:
        return fit_on(np.flatnonzero(mask), feats, list(copies), clips, labels, cfg)

    out = {"labels": labels, "final": head(use), "loco": {}}
    corpora = np.array(clips.corpora)
    for c in sorted(set(clips.corpora)):
        held = corpora == c
        if len(set(clips.corpora)) > 1:
            out["loco"][c] = head(use & ~held).log_probabilities(feats[held])
            log(f"voice head without {c}: trained on {int((use & ~held).sum())} clips")
    return out


def cnn_log_probs(model: SERModel, clips: Clips, labels: list[str], temperature: float | None = None) -> np.ndarray:
    """The CNN's log-probabilities (N, len(labels)) at `temperature` (default: its own), columns in `labels` order;
    a label the CNN lacks gets log 1e-12."""
    t = model.config.temperature if temperature is None else temperature
    logp = torch.log_softmax(clip_logits(model, clips) / t, dim=1).numpy()
    out = np.full((len(clips), len(labels)), np.log(1e-12), np.float32)
    for j, lab in enumerate(labels):
        if lab in model.labels:
            out[:, j] = logp[:, model.labels.index(lab)]
    return out


def scores(logp: np.ndarray, truth: list[str], labels: list[str]) -> dict:
    """The protocol's metrics (UAR on the classes the data has, per-class recall) of log-probabilities (N, L)."""
    return evaluate_logits(torch.from_numpy(np.asarray(logp, np.float32)), truth, labels)


def fit_fused_temperature(logp_cnn: np.ndarray, logp_voice: np.ndarray, truth: list[str], labels, w: float) -> float:
    """Temperature of the fused log-probabilities that minimises their NLL on clips held out of training."""
    z = (1 - w) * logp_cnn + w * logp_voice
    target = torch.tensor([labels.index(t) for t in truth])
    return fit_temperature(torch.from_numpy(z.astype(np.float32)), target)


def reliability(logp: np.ndarray, truth: list[str], labels: list[str]) -> list[dict]:
    """Per confidence bin of the top probability over every label (as the app shows it): clips, mean confidence
    and the share whose top label is right."""
    p = np.exp(logp)
    top, conf = p.argmax(1), p.max(1)
    right = np.array([labels[k] == t for k, t in zip(top, truth)])
    rows = []
    for lo, hi, word in BINS:
        inside = (conf >= lo) & (conf < hi)
        rows.append({"from": lo, "to": min(hi, 1.0), "word": word, "n": int(inside.sum()),
                     "mean_confidence": float(conf[inside].mean()) if inside.any() else None,
                     "share_right": float(right[inside].mean()) if inside.any() else None})  # fmt: skip
    return rows


def measure_fusion(clips: Clips, heads: dict, cnn: SERModel, cnn_corpora: list[str], exclude, cfg: HeadConfig,
                   log=print) -> dict:  # fmt: skip
    """Fit the CNN's and the fusion's temperatures on corpora the CNN never heard (each with the head trained
    without it) and measure everything the card reports. Returns the `voice` section of metrics.json, with
    "cnn_temperature" and "temperature" for the shipped model."""
    labels, w = heads["labels"], cfg.fusion_weight
    corpora = np.array(clips.corpora)
    unseen = [c for c in sorted(set(clips.corpora)) if c not in cnn_corpora and c in heads["loco"]]
    out: dict = {"labels": labels, "fusion_weight": w, "head": cfg.__dict__, "head_loco": {}, "fused_loco": {},
                 "cnn_loco": {}, "unseen_corpora": unseen}  # fmt: skip
    for c, logp in heads["loco"].items():
        truth = [e for e, k in zip(clips.emotions, clips.corpora) if k == c]
        out["head_loco"][c] = scores(logp, truth, labels)
        log(f"  voice head alone, without {c}: UAR {out['head_loco'][c]['uar']:.3f}")
    if not unseen:
        log("no corpus outside the CNN's training data: the fusion keeps temperature 1 and is not measured")
        return {**out, "cnn_temperature": cnn.config.temperature, "temperature": 1.0}
    parts = {}
    for c in unseen:
        sub = clips.subset(np.flatnonzero(corpora == c))
        parts[c] = (cnn_log_probs(cnn, sub, labels, 1.0), heads["loco"][c], sub.emotions)
    pooled = [np.concatenate([parts[c][i] for c in unseen]) for i in (0, 1)]
    truth_all = sum((parts[c][2] for c in unseen), [])
    target = torch.tensor([labels.index(t) for t in truth_all])
    t_cnn = fit_temperature(torch.from_numpy(pooled[0]), target)
    logp_cnn = {c: log_softmax(parts[c][0] / t_cnn) for c in unseen}
    t_fused = fit_fused_temperature(np.concatenate([logp_cnn[c] for c in unseen]), pooled[1], truth_all, labels, w)
    log(f"temperatures fitted on {', '.join(unseen)} ({len(truth_all)} clips): CNN {t_cnn:.3f}, fused {t_fused:.3f}")
    # Reliability: each corpus scored with temperatures fitted on the other unseen ones, so no bin is in-sample.
    held_logp, held_truth, weights = [], [], {}
    for c in unseen:
        truth = parts[c][2]
        out["cnn_loco"][c] = scores(logp_cnn[c], truth, labels)
        for wk in np.round(np.linspace(0, 1, 11), 2):
            weights.setdefault(str(wk), []).append(
                scores(fuse_log_probs(logp_cnn[c], parts[c][1], wk), truth, labels)["uar"]
            )
        out["fused_loco"][c] = scores(fuse_log_probs(logp_cnn[c], parts[c][1], w, t_fused), truth, labels)
        log(
            f"  fused on {c} (never heard): UAR {out['fused_loco'][c]['uar']:.3f}, CNN alone {out['cnn_loco'][c]['uar']:.3f}"
        )
        others = [k for k in unseen if k != c] or [c]
        t_c = fit_temperature(torch.from_numpy(np.concatenate([parts[k][0] for k in others])),
                              torch.tensor([labels.index(t) for k in others for t in parts[k][2]]))  # fmt: skip
        t_f = fit_fused_temperature(np.concatenate([log_softmax(parts[k][0] / t_c) for k in others]),
                                    np.concatenate([parts[k][1] for k in others]), sum((parts[k][2] for k in others), []),
                                    labels, w)  # fmt: skip
        held_logp.append(fuse_log_probs(log_softmax(parts[c][0] / t_c), parts[c][1], w, t_f))
        held_truth += truth
    out["weight_screen"] = {wk: float(np.mean(v)) for wk, v in weights.items()}
    out["_cnn_logp"] = logp_cnn  # for the adapted measures; not written to metrics.json
    out["_cnn_logp1"] = {c: parts[c][0] for c in unseen}  # at temperature 1, for the folds; not written either
    out["reliability"] = reliability(np.concatenate(held_logp), held_truth, labels)
    out["reliability_protocol"] = (
        f"{len(held_truth)} clips of {', '.join(unseen)}, corpora neither listener trained on; each scored with "
        "temperatures fitted on the others; top probability over all labels, as the app shows it"
    )
    return {**out, "cnn_temperature": t_cnn, "temperature": t_fused}


FOLD_WEIGHTS = (0.0, 0.05, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)  # the fusion weights the folds screen


def measure_folds(clips: Clips, feats: np.ndarray, folds: list, cnn: SERModel, labels: list[str], unseen: list[str],
                  cfg: HeadConfig, log=print, shipped: dict | None = None, copies=()) -> dict:  # fmt: skip
    """Speaker-fold cross-validation of the two listeners over every corpus (`train.py --folds`): new speakers of
    languages and corpora the model learnt from. Fold k holds out the k-th chunk of each corpus's speakers
    (`data.speaker_folds`, so on the CNN's corpora the CNN's own folds, `folds`: `training.FitResult`s). Its voice
    head trains on every clip of every corpus but theirs (and on those clips' `copies`). The CNN is the fold's on
    its own corpora and the shipped `cnn` on the `unseen` ones, which it never heard; each at a temperature fitted,
    as the shipped one's is, on corpora it never heard, never on the one it is scored on (but where only one is
    unseen).
    Returns {corpus: {"cnn"|"voice"|"fused": summary over the folds, "weight_screen": {weight: mean fused UAR}}}."""
    speakers, corpora, emotions = np.array(clips.speakers), np.array(clips.corpora), clips.emotions
    target = lambda idx: torch.tensor([labels.index(emotions[i]) for i in idx])  # noqa: E731
    at_one = lambda model, idx: cnn_log_probs(model, clips.subset(idx), labels, 1.0)  # noqa: E731
    rows = {c: np.flatnonzero(corpora == c) for c in unseen}
    shipped = shipped or {c: at_one(cnn, rows[c]) for c in unseen}  # `cnn`'s log-probs at T 1, if already made
    t_shipped = {}
    for c in unseen:
        others = [o for o in unseen if o != c]
        t_shipped[c] = (fit_temperature(torch.from_numpy(np.concatenate([shipped[o] for o in others])),
                                        torch.cat([target(rows[o]) for o in others]))
                        if others else cnn.config.temperature)  # fmt: skip
    calib = np.flatnonzero(np.isin(corpora, unseen))
    per: dict[str, dict[str, list]] = {}
    screen: dict[str, dict[str, list]] = {}
    for r, held in zip(folds, speaker_folds(clips, len(folds)), strict=True):
        test = np.flatnonzero(np.isin(speakers, sorted(held)))
        if set(speakers[test][~np.isin(corpora[test], unseen)]) != set(r.task.test_speakers):
            raise ValueError(f"the CNN's {r.task.name} holds out other speakers than the voice listener's")
        rest = np.flatnonzero(~np.isin(speakers, sorted(held)))
        head = fit_on(rest, feats, list(copies), clips, labels, cfg)
        t = fit_temperature(torch.from_numpy(at_one(r.model, calib)), target(calib)) if len(calib) else 1.0
        for c in sorted(set(corpora[test])):
            idx = test[corpora[test] == c]
            if c in unseen:
                cnn_logp = log_softmax(shipped[c][np.searchsorted(rows[c], idx)] / t_shipped[c])
            else:
                cnn_logp = log_softmax(at_one(r.model, idx) / t)
            logp = {"cnn": cnn_logp, "voice": head.log_probabilities(feats[idx])}
            logp["fused"] = fuse_log_probs(logp["cnn"], logp["voice"], cfg.fusion_weight)
            truth = [emotions[i] for i in idx]
            for listener, x in logp.items():
                m = scores(x, truth, labels)
                m["test_speakers"] = sorted(set(speakers[idx]))
                per.setdefault(c, {}).setdefault(listener, []).append(m)
            got = {k: v[-1]["uar"] for k, v in per[c].items()}
            log(f"  {r.task.name}, {c}: UAR CNN {got['cnn']:.3f}, voice {got['voice']:.3f}, fused {got['fused']:.3f}")
            for w in FOLD_WEIGHTS:  # the head's weight on the app's scale (the CNN at its temperature)
                uar = scores(fuse_log_probs(logp["cnn"], logp["voice"], w), truth, labels)["uar"]
                screen.setdefault(c, {}).setdefault(str(w), []).append(uar)
    out = {c: {k: {**summarize_folds(ms), "fold_results": ms} for k, ms in by.items()} for c, by in per.items()}
    for c, by_weight in screen.items():
        out[c]["weight_screen"] = {w: float(np.mean(u)) for w, u in by_weight.items()}
    return out


def adaptation_groups(clips: Clips, kind: str) -> list[str]:
    """What one reference set is in training: each speaker ("voice") or each corpus ("batch")."""
    return clips.speakers if kind == "voice" else clips.corpora


def train_adapted(clips: Clips, feats: np.ndarray, cfg: HeadConfig, exclude, labels, holdout: list[str], log=print,
                  copies=()):  # fmt: skip
    """For each adaptation kind: the final head on group-standardised features (each of the `copies` standardised
    by its own groups' statistics) with its within-group spread, and heads without each `holdout` corpus.
    Returns {kind: {"final": (head, within), "loco": {corpus: head}}}."""
    use = np.array([s not in exclude for s in clips.speakers])
    corpora, out = np.array(clips.corpora), {}
    for kind in ADAPT_KINDS:
        groups = adaptation_groups(clips, kind)
        x, xc = standardise_by_group(feats, groups), [standardise_by_group(c, groups) for c in copies]

        def head(mask, x=x, xc=xc):
            return fit_on(np.flatnonzero(mask), x, xc, clips, labels, cfg)

        within = within_spread(feats[use], [g for g, u in zip(groups, use) if u])
        out[kind] = {"final": (head(use), within), "loco": {c: head(use & (corpora != c)) for c in holdout}}
        log(f"voice head adapted to {ADAPT_KINDS[kind]}: trained, and without each of {', '.join(holdout)}")
    return out


def honest_references(clips: Clips, feats: np.ndarray, idx: np.ndarray, kind: str, within: np.ndarray, seed=0):
    """Standardised features (len(idx), dim) of the clips `idx` (one corpus), each by the reference it would have in
    use: "voice", ADAPT_K random other clips of its speaker (never itself; emotions as they fall); "batch", all of
    `idx` at once (one batch from one place)."""
    x = feats[idx]
    if kind == "batch":
        return (x - x.mean(0)) / (x.std(0) + 1e-6)
    rng, speakers = np.random.default_rng(seed), np.array(clips.speakers)[idx]
    out = np.empty_like(x)
    for i in range(len(idx)):
        others = np.flatnonzero((speakers == speakers[i]) & (np.arange(len(idx)) != i))
        pick = rng.choice(others, size=min(ADAPT_K, len(others)), replace=False) if len(others) else [i]
        out[i] = (x[i] - x[pick].mean(0)) / within
    return out


def measure_adapted(clips, feats, adapted, cnn_logp: dict, labels, w, temperature, log=print) -> dict:
    """UAR of each adaptation kind on each held-out corpus (head alone, and fused with the CNN's log-probs)."""
    out, corpora = {}, np.array(clips.corpora)
    for kind, heads in adapted.items():
        out[kind] = {"reference": ADAPT_KINDS[kind], "k": ADAPT_K if kind == "voice" else None, "corpora": {}}
        for c, head in heads["loco"].items():
            idx = np.flatnonzero(corpora == c)
            truth = [clips.emotions[i] for i in idx]
            logp = head.log_probabilities(honest_references(clips, feats, idx, kind, heads["final"][1]))
            fused = fuse_log_probs(cnn_logp[c], logp, w, temperature) if c in cnn_logp else None
            out[kind]["corpora"][c] = {"voice": scores(logp, truth, labels),
                                       **({"fused": scores(fused, truth, labels)} if fused is not None else {})}  # fmt: skip
            shown = out[kind]["corpora"][c].get("fused", out[kind]["corpora"][c]["voice"])
            log(f"  adapted to {ADAPT_KINDS[kind]}, {c} (never heard): UAR {shown['uar']:.3f}")
    return out


def measure_excluded(clips: Clips, feats: np.ndarray, heads: dict, cnn: SERModel, exclude, temperature: float,
                     w: float) -> dict:  # fmt: skip
    """CNN alone (at its own temperature), head alone and fused on the speakers kept out of both (the examples)."""
    idx = [i for i, s in enumerate(clips.speakers) if s in set(exclude)]
    if not idx:
        return {}
    sub, labels = clips.subset(idx), heads["labels"]
    out = {}
    for c in sorted(set(sub.corpora)):
        part = sub.subset([i for i, k in enumerate(sub.corpora) if k == c])
        rows = [idx[i] for i, k in enumerate(sub.corpora) if k == c]
        logp_cnn, logp_voice = cnn_log_probs(cnn, part, labels), heads["final"].log_probabilities(feats[rows])
        out[c] = {
            "speakers": sorted(set(part.speakers)),
            "cnn": scores(logp_cnn, part.emotions, labels),
            "voice": scores(logp_voice, part.emotions, labels),
            "fused": scores(fuse_log_probs(logp_cnn, logp_voice, w, temperature), part.emotions, labels),
        }
    return out


def train_voice(clips: Clips, cnn: SERModel, cnn_corpora: list[str], encoder_path, out, cfg: HeadConfig,
                exclude=frozenset(), cache_dir=None, log=print, folds=()) -> dict:  # fmt: skip
    """Train the second listener of `cnn` on every corpus of `clips` and write it into the checkpoint folder `out`
    (encoder.safetensors, voice.safetensors, voice.json). Sets the CNN's temperature to the one fitted on corpora
    it never heard (when there are any). With the CNN's cross-validation `folds` (`training.FitResult`s), also
    measures the two listeners on them. Returns the `voice` section of metrics.json."""
    from pathlib import Path

    from .encoder import ENCODER_FILE, EncoderConfig, convert, load_encoder, resemblyzer_weights
    from .voice import save_voice

    out, enc_cfg = Path(out), EncoderConfig()
    source = resemblyzer_weights() if str(encoder_path) == "resemblyzer" else Path(encoder_path)
    if source.suffix == ".pt":
        convert(source, out)
    elif source.resolve() != (out / ENCODER_FILE).resolve():
        out.mkdir(parents=True, exist_ok=True)
        (out / ENCODER_FILE).write_bytes(source.read_bytes())
    encoder = load_encoder(out / ENCODER_FILE, enc_cfg)
    log(f"voice listener: encoder features of {len(clips)} clips (cached in {cache_dir})")
    feats = corpus_features(encoder, clips.audio, cache_dir, log)
    copies = speed_copies(encoder, clips, cfg.speeds, cache_dir, log)
    if copies:
        log(
            f"voice listener: and of the clips played at {', '.join(f'{f:g}x' for f in cfg.speeds)} (the head's copies)"
        )
    heads = train_heads(clips, feats, cfg, exclude, log, copies)
    metrics = measure_fusion(clips, heads, cnn, cnn_corpora, exclude, cfg, log)
    cnn.config.temperature = metrics["cnn_temperature"]
    cnn_logp, cnn_logp1 = metrics.pop("_cnn_logp", {}), metrics.pop("_cnn_logp1", None)
    adapted = train_adapted(clips, feats, cfg, exclude, heads["labels"], metrics["unseen_corpora"], log, copies)
    metrics["adapted"] = measure_adapted(clips, feats, adapted, cnn_logp, heads["labels"], cfg.fusion_weight,
                                         metrics["temperature"], log)  # fmt: skip
    metrics["excluded_speakers_test"] = measure_excluded(
        clips, feats, heads, cnn, exclude, metrics["temperature"], cfg.fusion_weight
    )
    if folds:
        log(f"two listeners on new speakers of every corpus, {len(folds)} speaker folds:")
        metrics["cross_validation"] = measure_folds(clips, feats, folds, cnn, heads["labels"],
                                                    metrics["unseen_corpora"], cfg, log, cnn_logp1, copies)  # fmt: skip
    for c, m in metrics["excluded_speakers_test"].items():
        log(f"  {c} {', '.join(m['speakers'])} (never heard): UAR CNN {m['cnn']['uar']:.3f}, voice "
            f"{m['voice']['uar']:.3f}, fused {m['fused']['uar']:.3f}")  # fmt: skip
    use = [s not in exclude for s in clips.speakers]
    info = {"trained_on": sorted(set(clips.corpora)), "train_clips": int(sum(use)),
            "excluded_speakers": sorted(exclude), "temperature_fitted_on": metrics["unseen_corpora"],
            "speeds": list(cfg.speeds)}  # fmt: skip
    save_voice(out, heads["final"], enc_cfg, cfg.fusion_weight, metrics["temperature"], info,
               {kind: a["final"] for kind, a in adapted.items()})  # fmt: skip
    return metrics
