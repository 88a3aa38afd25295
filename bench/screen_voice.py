"""Screen the voice head, the fusion and adaptation on leave-one-corpus-out, from cached encoder features.

    python bench/screen_voice.py                      # every screen below, about 10-20 min on 2 cores
    python bench/screen_voice.py --only head fusion   # some of them
    python bench/screen_voice.py --only head --holdout ased nemo emospeech --features L2+L3 --C 0.01 0.003

The encoder features of the five corpora (../shared/data) are computed once (layers 1-3's mean and spread and the
speaker embedding, 1,792 numbers a clip, cached in .cache/ser) and every variant is a slice of them, so a screen
is a few logistic regressions. RAVDESS actors 19 and 20 are out of every head (they are the app's examples).

- head: features (layers 2+3, 3 alone, 1+2+3, the speaker embedding, 2+3 + embedding), C, class weighting.
  Measure: the head alone, leave-one-corpus-out UAR over all five corpora (mean, lowest, sad recall).
- fusion: the weight of the head in the geometric mean with the CNN (`--cnn`, default the shipped one), and that
  weight chosen on two unseen corpora and scored on the third (nested), on the
  corpora the CNN never heard, each with the head trained without it.
- nap: the head with the k directions along which speakers' mean features differ most projected out of its
  standardised features (nuisance attribute projection; folded into its linear layer, so nothing changes at
  inference), k = `--nap`, paired with k = 0. The reference-free cousin of adapting to a speaker.
- adapt: standardising features by a reference set instead of the training set's statistics, both in training
  (each speaker, or corpus, by its own) and at test: (a) K random other clips of the test clip's speaker,
  (b) 10 other clips of the speaker in at most two emotions (one long recording, mostly one mood),
  (c) all clips of the test corpus (one batch from one place). Paired with no adaptation, same heads otherwise.

Each result is one JSON line appended to bench/results/screens_voice.jsonl; docs/experiments.md reads them.
"""

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ser.corpora import EMOTIONS
from ser.data import Clips, load_corpus, played_at
from ser.encoder import EncoderConfig, load_encoder
from ser.hub import load_model
from ser.voice import class_weights, corpus_features, fuse_log_probs, log_softmax
from ser.voice_training import cnn_log_probs, scores

warnings.filterwarnings("ignore", message="lbfgs failed to converge")  # capped on purpose: see `fit`
CORPORA = ("ravdess", "emodb", "ased", "nemo", "emospeech")
EXCLUDE = {"ravdess:19", "ravdess:20"}
CACHE = Path(".cache/ser")
LOG = Path(__file__).resolve().parent / "results" / "screens_voice.jsonl"
# Column blocks of the cached features: layer k's mean and spread (Lk), its mean (Lkm) or spread (Lks) alone.
BLOCK = {f"L{k}": slice((k - 1) * 512, k * 512) for k in (1, 2, 3)} | {"emb": slice(1536, 1792)}
BLOCK |= {f"L{k}m": slice((k - 1) * 512, (k - 1) * 512 + 256) for k in (1, 2, 3)}
BLOCK |= {f"L{k}s": slice((k - 1) * 512 + 256, k * 512) for k in (1, 2, 3)}


def load(data: Path) -> tuple[Clips, np.ndarray]:
    cfg = EncoderConfig(pooled=[1, 2, 3], speaker_embedding=True)
    from ser.features import FeatureConfig

    clips = None
    for c in CORPORA:
        part = load_corpus(data / c, c, FeatureConfig(), CACHE, log=lambda *a: None)
        clips = part if clips is None else clips + part
    encoder = load_encoder(Path("checkpoints/default/encoder.safetensors"), cfg)
    return clips, corpus_features(encoder, clips.audio, CACHE)


def columns(feats: np.ndarray, spec: str) -> np.ndarray:
    return np.concatenate([feats[:, BLOCK[b]] for b in spec.split("+")], axis=1)


def standardise_by(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's rows standardised by the group's own mean and spread."""
    out = np.empty_like(x)
    for g in np.unique(groups):
        m = groups == g
        out[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    return out


def speaker_directions(z: np.ndarray, speakers, emotions, k: int) -> np.ndarray:
    """The k directions (dim, k) along which speakers' mean features differ most (each speaker's mean over its
    emotions' means, so a speaker's mix of emotions does not move it; speakers heard in at least 3 emotions):
    nuisance attribute projection."""
    speakers, emotions = np.asarray(speakers), np.asarray(emotions)
    means = []
    for s in np.unique(speakers):
        m = speakers == s
        if len(np.unique(emotions[m])) < 3:
            continue
        means.append(np.mean([z[m & (emotions == e)].mean(0) for e in np.unique(emotions[m])], axis=0))
    means = np.array(means) - np.mean(means, axis=0)
    return np.linalg.svd(means, full_matrices=False)[2][:k].T


def fit(x, emotions, corpora, labels, C, weighting, nap=0, speakers=None):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-6
    z, P = (x - mean) / scale, None
    if nap:  # the speakers' k main directions projected out of the standardised features
        U = speaker_directions(z, speakers, emotions, nap)
        P = np.eye(x.shape[1]) - U @ U.T
        z = z @ P
    y = np.array([labels.index(e) for e in emotions])
    w = {"corpus-class": class_weights(emotions, corpora), "none": None}.get(weighting)
    # 200 L-BFGS iterations: the full fit converges in ~320, with the same held-out UAR to +-0.5 point
    lr = LogisticRegression(C=C, max_iter=200, class_weight="balanced" if weighting == "class" else None)
    lr.fit(z, y, sample_weight=w)
    W, b = np.zeros((len(labels), x.shape[1])), np.full(len(labels), -1e4)
    W[lr.classes_], b[lr.classes_] = lr.coef_, lr.intercept_
    if P is not None:
        W = W @ P  # the projection folded into the linear layer: the head keeps its shape
    return lambda z, ref=None: log_softmax(((z - mean) / scale if ref is None else z) @ W.T + b)


HOLDOUT = CORPORA  # --holdout: the corpora a screen holds out in turn
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)  # the head's weights in the fusion screen


def loco(clips, x, labels, C=0.1, weighting="corpus-class", holdout=None, train_x=None, test_x=None, nap=0,
         test_rows=None):  # fmt: skip
    """{corpus: log-probs of its clips} from heads trained on the other corpora (minus EXCLUDE); only the first
    `test_rows` rows are ever tested (the rest are training copies)."""
    corpora, use = np.array(clips.corpora), np.array([s not in EXCLUDE for s in clips.speakers])
    first = np.arange(len(corpora)) < (test_rows or len(corpora))
    out = {}
    for c in holdout or HOLDOUT:
        tr, te = np.flatnonzero(use & (corpora != c)), np.flatnonzero(first & (corpora == c))
        head = fit((x if train_x is None else train_x)[tr], [clips.emotions[i] for i in tr],
                   [clips.corpora[i] for i in tr], labels, C, weighting, nap, [clips.speakers[i] for i in tr])  # fmt: skip
        out[c] = head(x[te]) if test_x is None else head(test_x[te], ref=True)
    return out


def summary(clips, logps: dict, labels) -> dict:
    corpora = np.array(clips.corpora)
    per = {c: scores(lp, [clips.emotions[i] for i in np.flatnonzero(corpora == c)], labels) for c, lp in logps.items()}
    uar = {c: round(m["uar"], 4) for c, m in per.items()}
    sad = {c: round(m["per_class"]["sad"]["recall"], 3) for c, m in per.items() if "sad" in m["per_class"]}
    return {"uar": uar, "mean": round(float(np.mean(list(uar.values()))), 4), "lowest": min(uar.values()), "sad": sad}


def record(name: str, result: dict) -> None:
    line = {"screen": name, "date": time.strftime("%Y-%m-%d %H:%M"), "holdout": list(HOLDOUT), **result}
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)


def cnn_logps(clips: Clips, labels, name: str, calibrated: bool = False) -> np.ndarray:
    """The CNN's log-probabilities (N, len(labels)) at temperature 1, or at its own if `calibrated`."""
    model = load_model(name)
    h = hashlib.sha1(json.dumps(model.config.__dict__, default=str).encode())
    for p in model.state_dict().values():
        h.update(p.numpy().tobytes())
    h.update(str(clips.paths).encode())
    cache = CACHE / f"cnn-{h.hexdigest()[:16]}.npy"
    if not cache.exists():  # log-probabilities at temperature 1 over `labels`
        np.save(cache, cnn_log_probs(model, clips, labels, 1.0))
    logp = np.load(cache)
    return log_softmax(logp / model.config.temperature) if calibrated else logp


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", type=Path)
    p.add_argument("--cnn", default="", help="the CNN to fuse with (default: the shipped one)")
    p.add_argument(
        "--only", nargs="+", default=["fusion", "adapt", "head"], choices=["head", "fusion", "adapt", "nap", "speed"]
    )
    p.add_argument("--holdout", nargs="+", default=list(CORPORA), choices=CORPORA, help="corpora held out in turn")
    p.add_argument(
        "--calibrated",
        action="store_true",
        help="fuse with the CNN's log-probabilities at its own "
        "temperature, as the app does, so a weight is the recipe's --head.fusion-weight (finer grid)",
    )
    p.add_argument("--features", nargs="+", help="head screen: these feature sets (e.g. L2+L3 L1+L2+L3) ...")
    p.add_argument("--C", nargs="+", type=float, help="... at these C, in place of the standard variants")
    p.add_argument("--nap", nargs="+", type=int, default=[0, 5, 10, 20, 40, 80],
                   help="nap screen: the numbers of speaker directions projected out of the head's features")  # fmt: skip
    p.add_argument("--speeds", nargs="+", type=float, default=[0.9, 1.1], help="speed screen: the copies' speeds")
    p.add_argument("--weighting", nargs="+", default=["corpus-class"], choices=["corpus-class", "class", "none"])
    args = p.parse_args(argv)
    global HOLDOUT, WEIGHTS
    HOLDOUT = tuple(args.holdout)
    if args.calibrated:  # the app's scale: the CNN's log-probabilities already flattened by its temperature
        WEIGHTS = (0.0, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0)
    torch.set_num_threads(1)
    clips, feats = load(args.data)
    labels = [e for e in EMOTIONS if e in set(clips.emotions)]
    base = columns(feats, "L2+L3")
    unseen = ("ased", "nemo", "emospeech")
    corpora = np.array(clips.corpora)
    cnn_name = (args.cnn or "shipped") + (" at its temperature" if args.calibrated else "")
    if "fusion" in args.only:
        cnn = cnn_logps(clips, labels, args.cnn, args.calibrated)
        record(
            "cnn alone",
            {"cnn": cnn_name, **summary(clips, {c: cnn[corpora == c] for c in unseen}, labels)},
        )
        fusion_screen(clips, cnn, loco(clips, base, labels, holdout=unseen), labels, cnn_name)
    if "adapt" in args.only:
        adapt(clips, base, labels)
    if "speed" in args.only:  # the shipped head trained on its clips and on copies played faster and slower
        cnn = cnn_logps(clips, labels, args.cnn, args.calibrated)
        encoder = load_encoder(Path("checkpoints/default/encoder.safetensors"), EncoderConfig(pooled=[2, 3]))
        copies = {}
        for f in args.speeds:  # speed perturbation: pitch and tempo x f (`ser.data.played_at`, as train.py does)
            copies[f] = corpus_features(encoder, [played_at(a, f) for a in clips.audio], CACHE)
        n = len(clips)
        for fs in [()] + [tuple(args.speeds)]:
            x = np.concatenate([base] + [copies[f] for f in fs])
            rep = Clips(
                **{k: getattr(clips, k) * (1 + len(fs)) for k in ("audio", "emotions", "speakers", "corpora", "paths")}
            )
            heads = loco(rep, x, labels, 0.01, "corpus-class", test_rows=n)
            name = {"features": "L2+L3", "C": 0.01, "speeds": list(fs)}
            record("head", {**name, **summary(clips, heads, labels)})
            fusion_screen(clips, cnn, heads, labels, cnn_name, name)
    if "nap" in args.only:  # the shipped head (L2+L3, --C, corpus-class) with k speaker directions projected out
        cnn = cnn_logps(clips, labels, args.cnn, args.calibrated)
        for C in args.C or [0.01]:
            for k in args.nap:
                name = {"features": "L2+L3", "C": C, "nap": k}
                heads = loco(clips, base, labels, C, "corpus-class", nap=k)
                record("head", {**name, **summary(clips, heads, labels)})
                if set(unseen) <= set(heads):
                    fusion_screen(clips, cnn, heads, labels, cnn_name, name)
    if "head" in args.only:  # L2+L3, C 0.1, corpus-class weights: the "none" line of the adapt screen
        # Each variant alone on every held-out corpus, and fused with the CNN on the three it never heard.
        cnn = cnn_logps(clips, labels, args.cnn, args.calibrated)
        if args.features or args.C:  # a grid of the features and C given
            variants = [({"features": s, "C": C, "weighting": w}, columns(feats, s), C, w)
                        for s in args.features or ["L2+L3"] for C in args.C or [0.1] for w in args.weighting]  # fmt: skip
        else:
            variants = [({"features": s, "C": 0.1}, columns(feats, s), 0.1, "corpus-class")
                        for s in ("L2+L3+emb", "emb", "L3", "L1+L2+L3")]  # fmt: skip
            variants += [({"features": "L2+L3", "C": C}, base, C, "corpus-class") for C in (0.01, 0.03, 0.3)]
            variants += [({"features": "L2+L3", "weighting": "class"}, base, 0.1, "class")]
        for name, x, C, weighting in variants:
            heads = loco(clips, x, labels, C, weighting)
            record("head", {**name, **summary(clips, heads, labels)})
            if set(unseen) <= set(heads):
                fusion_screen(clips, cnn, heads, labels, cnn_name, name)


def fusion_screen(clips, cnn, heads, labels, cnn_name, head=None) -> None:
    """The head's weight in the geometric mean with the CNN, on the corpora the CNN never heard; then nested."""
    unseen, corpora, tag = ("ased", "nemo", "emospeech"), np.array(clips.corpora), {"head": head} if head else {}
    screened = {}
    for w in WEIGHTS:
        fused = {c: fuse_log_probs(cnn[corpora == c], heads[c], w) for c in unseen}
        screened[w] = summary(clips, fused, labels)
        record("fusion", {"cnn": cnn_name, **tag, "weight": w, **screened[w]})
    # Nested: each corpus scored at the weight that did best on the other two, so no corpus picks its own.
    picked = {c: max(screened, key=lambda w: np.mean([screened[w]["uar"][k] for k in unseen if k != c]))
              for c in unseen}  # fmt: skip
    uar = {c: screened[picked[c]]["uar"][c] for c in unseen}
    record("fusion, weight chosen on the other two", {"cnn": cnn_name, **tag, "weights": picked, "uar": uar,
                                                      "mean": round(float(np.mean(list(uar.values()))), 4)})  # fmt: skip


def reference_stats(x: np.ndarray, idx: np.ndarray, fallback_scale: np.ndarray) -> np.ndarray:
    """Row x standardised by the mean of rows idx (and their spread, when there are at least 20 of them)."""
    ref = x[idx]
    scale = ref.std(0) + 1e-6 if len(idx) >= 20 else fallback_scale
    return ref.mean(0), scale


def adapt(clips: Clips, x: np.ndarray, labels) -> None:
    corpora, speakers, emotions = np.array(clips.corpora), np.array(clips.speakers), np.array(clips.emotions)
    rng = np.random.default_rng(0)
    record("adapt", {"setting": "none", **summary(clips, loco(clips, x, labels), labels)})
    by_speaker = standardise_by(x, speakers)
    # Spread of features within one speaker, for references too small to estimate it.
    within = np.sqrt(np.mean([x[speakers == s].var(0) for s in np.unique(speakers)], axis=0)) + 1e-6
    # Oracle: all of a speaker's clips (balanced emotions, the test clip included): the optimistic setting.
    record("adapt", {"setting": "all clips of the speaker (optimistic)",
                     **summary(clips, loco(clips, x, labels, train_x=by_speaker, test_x=by_speaker), labels)})  # fmt: skip
    for k in (2, 3, 5):
        test = np.empty_like(x)
        for i in range(len(x)):
            others = np.flatnonzero((speakers == speakers[i]) & (np.arange(len(x)) != i))
            pick = rng.choice(others, size=min(k, len(others)), replace=False) if len(others) else np.array([i])
            mean, scale = reference_stats(x, pick, within)
            test[i] = (x[i] - mean) / scale
        record("adapt", {"setting": f"(a) {k} random other clips of the speaker",
                         **summary(clips, loco(clips, x, labels, train_x=by_speaker, test_x=test), labels)})  # fmt: skip
    test = np.empty_like(x)
    for i in range(len(x)):
        same = (speakers == speakers[i]) & (np.arange(len(x)) != i)
        moods = rng.choice(np.unique(emotions[same]), size=min(2, len(np.unique(emotions[same]))), replace=False)
        others = np.flatnonzero(same & np.isin(emotions, moods))
        pick = rng.choice(others, size=min(10, len(others)), replace=False)
        mean, scale = reference_stats(x, pick, within)
        test[i] = (x[i] - mean) / scale
    record("adapt", {"setting": "(b) 10 other clips of the speaker in at most 2 emotions",
                     **summary(clips, loco(clips, x, labels, train_x=by_speaker, test_x=test), labels)})  # fmt: skip
    by_corpus = standardise_by(x, corpora)
    record("adapt", {"setting": "(c) the whole test corpus as one batch",
                     **summary(clips, loco(clips, x, labels, train_x=by_corpus, test_x=by_corpus), labels)})  # fmt: skip
    # (c) with batches of 50 random clips of the test corpus (a class's recordings, say)
    test = np.empty_like(x)
    for c in np.unique(corpora):
        idx = rng.permutation(np.flatnonzero(corpora == c))
        for chunk in np.array_split(idx, max(1, len(idx) // 50)):
            test[chunk] = (x[chunk] - x[chunk].mean(0)) / (x[chunk].std(0) + 1e-6)
    record("adapt", {"setting": "(c) batches of ~50 random clips of the test corpus",
                     **summary(clips, loco(clips, x, labels, train_x=by_corpus, test_x=test), labels)})  # fmt: skip


if __name__ == "__main__":
    main()
