"""The second listener: a frozen voice encoder (`ser.encoder`), a linear head trained on many corpora, and the
fusion of its answer with the CNN's.

In a checkpoint folder the listener is three files beside the CNN's config.json and model.safetensors:
`encoder.safetensors` (the converted Resemblyzer weights), `voice.safetensors` (the head: the features'
standardisation and a logistic regression) and `voice.json` (labels, encoder settings, fusion weight and
temperature, how the head was trained). A folder without them is a CNN-only model and loads as one.

Fusion: the weighted geometric mean of the two listeners' probabilities over the labels both know,
softmax(((1 - w) log p_cnn + w log p_voice) / T), with w and T fitted on corpora held out of training.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .encoder import ENCODER_FILE, EncoderConfig, VoiceEncoder, encoder_features, load_encoder

VOICE_FILE = "voice.safetensors"
VOICE_CONFIG = "voice.json"
LISTENER_FILES = (ENCODER_FILE, VOICE_FILE, VOICE_CONFIG)


@dataclass
class HeadConfig:
    """How the voice head is trained (train.py's `--head.*` flags)."""

    # Inverse strength of the L2 penalty: strong, 1,024 features against ~10,000 clips of ~200 speakers. 0.01 of
    # 0.001 ... 0.3 (bench/screen_voice.py; docs/experiments.md): harder regularisation carries better to new corpora.
    C: float = 0.01
    # Every corpus counts this much in the loss (missing: 1), and within a corpus every class equally: no corpus
    # dominates by size and no class is rare because one corpus lacks it (as the CNN's sampling does).
    corpus_weights: dict = field(default_factory=dict)
    # The head's share of the geometric mean with the CNN's temperature-scaled log-probabilities: chosen on two of
    # the corpora the CNN never heard and scored on the third, 0.1 to 0.15 (the head alone is weaker there); of
    # those, the one best on new speakers of the corpora it learnt from (speaker folds; docs/experiments.md).
    fusion_weight: float = 0.15
    max_iter: int = 3000  # L-BFGS iterations; converges in a few hundred on the five corpora
    # The head also learns from every training clip played at these speeds (tempo and pitch together: another
    # voice saying it), so it hears more voices than the corpora hold; the features are computed once, like the
    # clips'. [] for none. Lifts sad on a language never heard (bench/screen_voice.py --only speed).
    speeds: list = field(default_factory=lambda: [0.8, 0.9, 1.1, 1.2])

    def check(self) -> None:
        """Raise ValueError, saying what would work, for settings no head can be trained with."""
        if not isinstance(self.speeds, list) or not all(
            isinstance(f, int | float) and 0.5 <= f <= 2 for f in self.speeds
        ):
            raise ValueError(f"head.speeds must be a list of speeds from 0.5 to 2, e.g. [0.9, 1.1] ([] for none), "
                             f"not {self.speeds!r}")  # fmt: skip
        if not 0 <= self.fusion_weight <= 1:
            raise ValueError(
                f"head.fusion_weight must be from 0 (the CNN alone) to 1 (the head alone), not {self.fusion_weight}"
            )
        if self.C <= 0:
            raise ValueError(f"head.C must be above 0 (0.01 is the shipped one), not {self.C}")


@dataclass
class VoiceHead:
    """Standardisation then a linear layer: features (N, dim) -> logits (N, n_labels)."""

    labels: list[str]
    mean: np.ndarray  # (dim,) of the training features
    scale: np.ndarray  # (dim,) their standard deviation
    weight: np.ndarray  # (n_labels, dim)
    bias: np.ndarray  # (n_labels,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits (N, n_labels) of features (N, dim)."""
        return ((features - self.mean) / self.scale) @ self.weight.T + self.bias

    def log_probabilities(self, features: np.ndarray) -> np.ndarray:
        return log_softmax(self.logits(features))


# Adaptation: the features standardised by a reference set's own statistics before a head trained the same way
# (each training speaker, or corpus, by its own), which removes much of what a voice, room or microphone adds.
ADAPT_KINDS = {
    "voice": "a few other recordings of the same speaker",  # heads trained on per-speaker standardised features
    "batch": "many recordings from one place, e.g. a class",  # heads trained on per-corpus standardised features
}
ADAPT_K = 3  # "voice" adaptation is measured, and offered in the app, with this many recordings of the speaker
MIN_SPREAD = 20  # a reference of fewer clips gives its mean; the spread is then the training set's within-group one


@dataclass
class Reference:
    """What to standardise a clip's voice features by: a reference set's mean and spread (dim,), and its kind."""

    kind: str  # one of ADAPT_KINDS
    mean: np.ndarray
    scale: np.ndarray
    n: int  # clips it was made from


def standardise_by_group(features: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each group's rows (N, dim) standardised by the group's own mean and spread."""
    out, groups = np.empty_like(features), np.asarray(groups)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = (features[rows] - features[rows].mean(0)) / (features[rows].std(0) + 1e-6)
    return out


def within_spread(features: np.ndarray, groups: list[str]) -> np.ndarray:
    """The features' pooled spread within groups (dim,): the scale for references too small to have their own."""
    groups = np.asarray(groups)
    return np.sqrt(np.mean([features[groups == g].var(0) for g in np.unique(groups)], axis=0)) + 1e-6


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def class_weights(emotions: list[str], corpora: list[str], corpus_weights: dict | None = None) -> np.ndarray:
    """Per-clip loss weights (N,), mean 1: each corpus its weight (default 1), each of its classes an equal share."""
    corpora_a, emotions_a = np.asarray(corpora), np.asarray(emotions)
    w = np.zeros(len(emotions))
    for c in sorted(set(corpora)):
        in_c = corpora_a == c
        classes = sorted(set(emotions_a[in_c]))
        for e in classes:
            cell = in_c & (emotions_a == e)
            w[cell] = (corpus_weights or {}).get(c, 1.0) / len(classes) / cell.sum()
    return w * len(w) / w.sum()


def fit_head(
    features: np.ndarray, emotions: list[str], corpora: list[str], labels: list[str], cfg: HeadConfig
) -> VoiceHead:
    """Standardise, then a multinomial logistic regression (scikit-learn, L-BFGS) with `class_weights`."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0) + 1e-6
    y = np.array([labels.index(e) for e in emotions])
    lr = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
    lr.fit((features - mean) / scale, y, sample_weight=class_weights(emotions, corpora, cfg.corpus_weights))
    weight = np.zeros((len(labels), features.shape[1]), np.float32)
    bias = np.full(len(labels), -1e4, np.float32)  # a label without training clips is never chosen
    weight[lr.classes_], bias[lr.classes_] = lr.coef_, lr.intercept_
    return VoiceHead(list(labels), mean.astype(np.float32), scale.astype(np.float32), weight, bias)


def fuse(cnn: dict[str, float], voice: dict[str, float], weight: float, temperature: float = 1.0) -> dict[str, float]:
    """Weighted geometric mean of two probability dicts over the labels both have (in `cnn`'s order), renormalised
    after dividing the mixed log-probabilities by `temperature`."""
    labels = [lab for lab in cnn if lab in voice]
    z = np.array(
        [(1 - weight) * np.log(max(cnn[lab], 1e-12)) + weight * np.log(max(voice[lab], 1e-12)) for lab in labels]
    )
    p = np.exp(log_softmax(z / temperature))
    return dict(zip(labels, p.tolist()))


def fuse_log_probs(cnn_logp: np.ndarray, voice_logp: np.ndarray, weight: float, temperature: float = 1.0) -> np.ndarray:
    """Batch form of `fuse` on aligned log-probabilities (N, L) -> fused log-probabilities (N, L)."""
    return log_softmax(((1 - weight) * cnn_logp + weight * voice_logp) / temperature)


@dataclass
class Voice:
    """The second listener as loaded from a checkpoint folder."""

    encoder: VoiceEncoder
    head: VoiceHead
    fusion_weight: float
    temperature: float  # of the fused log-probabilities
    info: dict  # the rest of voice.json: how the head was trained and measured
    adapted: dict[str, tuple[VoiceHead, np.ndarray]] = field(default_factory=dict)  # kind -> (head, within spread)

    @property
    def labels(self) -> list[str]:
        return self.head.labels

    @property
    def min_seconds(self) -> float:
        return self.encoder.cfg.min_seconds

    def features(self, audio: np.ndarray, speech: np.ndarray | None = None) -> np.ndarray:
        """Pooled encoder features (dim,) of one mono clip at the encoder's rate (`speech`: its
        `vad.speech_probabilities`, if already computed)."""
        return encoder_features(self.encoder, [audio], speech=None if speech is None else [speech])[0]

    def reference(self, kind: str, features: np.ndarray) -> Reference:
        """A Reference of `kind` from the features (n, dim) of its recordings. Raises ValueError when this model
        has no head for that kind or there are no recordings."""
        if kind not in self.adapted:
            raise ValueError(f"this model cannot adapt to {ADAPT_KINDS.get(kind, kind)}: it has no '{kind}' head")
        if len(features) == 0:
            raise ValueError("adapting needs at least one recording to compare with")
        spread = features.std(0) + 1e-6 if len(features) >= MIN_SPREAD else self.adapted[kind][1]
        return Reference(kind, features.mean(0), spread, len(features))

    def log_probabilities(self, features: np.ndarray, reference: Reference | None = None) -> np.ndarray:
        """The head's log-probabilities (N, n_labels) of features (N, dim): standardised by `reference` for the
        head of its kind, if given."""
        if reference is None:
            return self.head.log_probabilities(features)
        head = self.adapted[reference.kind][0]
        return head.log_probabilities((features - reference.mean) / reference.scale)

    def probabilities(self, features: np.ndarray, reference: Reference | None = None) -> dict[str, float]:
        """The head's probabilities for one clip's features (dim,), as a label -> probability dict."""
        p = np.exp(self.log_probabilities(features[None], reference)[0])
        return dict(zip(self.labels, p.tolist()))


HEAD_TENSORS = ("mean", "scale", "weight", "bias")


def save_voice(folder: str | Path, head: VoiceHead, encoder_cfg: EncoderConfig, fusion_weight: float,
               temperature: float, info: dict, adapted: dict | None = None) -> None:  # fmt: skip
    """Write voice.safetensors and voice.json into `folder` (encoder.safetensors is written by `encoder.convert`).
    `adapted`: kind -> (VoiceHead, within spread), stored under the kind's prefix ("voice.weight", ...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float32))
    tensors = {k: as_tensor(getattr(head, k)) for k in HEAD_TENSORS}
    for kind, (h, within) in (adapted or {}).items():
        tensors.update({f"{kind}.{k}": as_tensor(getattr(h, k)) for k in HEAD_TENSORS})
        tensors[f"{kind}.within"] = as_tensor(within)
    save_file(tensors, folder / VOICE_FILE)
    (folder / VOICE_FILE).chmod(0o644)
    config = {"labels": head.labels, "encoder": asdict(encoder_cfg), "fusion_weight": fusion_weight,
              "temperature": temperature, **info}  # fmt: skip
    (folder / VOICE_CONFIG).write_text(json.dumps(config, indent=2))


def load_voice(folder: str | Path) -> Voice | None:
    """The listener in `folder`, or None when the folder has none of its files (a CNN-only model).

    Raises ValueError naming the missing file when only some of them are there."""
    folder = Path(folder)
    present = [f for f in LISTENER_FILES if (folder / f).is_file()]
    if not present:
        return None
    missing = [f for f in LISTENER_FILES if f not in present]
    if missing:
        raise ValueError(f"the voice listener is incomplete: {', '.join(missing)} missing beside {', '.join(present)}")
    config = json.loads((folder / VOICE_CONFIG).read_text())
    encoder = load_encoder(folder / ENCODER_FILE, EncoderConfig(**config.pop("encoder")))
    t = {k: v.numpy() for k, v in load_file(str(folder / VOICE_FILE)).items()}
    labels = config.pop("labels")
    head = VoiceHead(labels, *(t[k] for k in HEAD_TENSORS))
    kinds = sorted({k.split(".")[0] for k in t if "." in k})
    adapted = {
        kind: (VoiceHead(labels, *(t[f"{kind}.{k}"] for k in HEAD_TENSORS)), t[f"{kind}.within"]) for kind in kinds
    }
    for h in [head, *(a[0] for a in adapted.values())]:
        if h.mean.shape != (encoder.cfg.dim,) or h.weight.shape != (len(labels), encoder.cfg.dim):
            raise ValueError(f"voice.safetensors does not fit voice.json: features of {encoder.cfg.dim} expected")
    return Voice(encoder, head, config.pop("fusion_weight"), config.pop("temperature"), config, adapted)


def corpus_features(
    encoder: VoiceEncoder, audio: list[np.ndarray], cache_dir: str | Path | None = None, log=print
) -> np.ndarray:
    """Encoder features (N, dim) of decoded clips, computed once: cached under `cache_dir` by a hash of the audio,
    the encoder's weights and its settings, so a second run (every screen of the head) reads them back."""
    h = hashlib.sha1(json.dumps(asdict(encoder.cfg), sort_keys=True).encode())
    for p in encoder.state_dict().values():
        h.update(p.numpy().tobytes())
    for a in audio:
        h.update(np.ascontiguousarray(a).tobytes())
    cache = Path(cache_dir) / f"encoder-{h.hexdigest()[:16]}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        feats = np.load(cache)
        if feats.shape == (len(audio), encoder.cfg.dim):
            return feats
    from tqdm import tqdm

    chunks, step = [], 256
    for start in tqdm(range(0, len(audio), step), desc="voice features", unit="x256 clips", leave=False):
        chunks.append(encoder_features(encoder, audio[start : start + step]))
    feats = np.concatenate(chunks) if chunks else np.zeros((0, encoder.cfg.dim), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.replace(cache)
    log(f"voice features of {len(audio)} clips" + (f" cached in {cache}" if cache else ""))
    return feats
