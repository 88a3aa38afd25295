"""Figures: waveform, the model's log-mel input, emotion probabilities, confusion matrix.

Sized and labelled to stay readable on a classroom projector and a phone.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .features import FeatureConfig, mel_frequencies  # noqa: E402

plt.rcParams.update({"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 13})
HIGHLIGHT, MUTED = "#d9480f", "#868e96"


def waveform(audio: np.ndarray, sample_rate: int, title: str = "Waveform") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(9, 2.6), layout="constrained")
    t = np.arange(len(audio)) / sample_rate
    ax.plot(t, audio, color="#1c7ed6", linewidth=0.6)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title, xlim=(0, max(t[-1], 1e-3) if len(t) else 1))
    ax.set_ylim(-1.05 * max(np.abs(audio).max(), 1e-3), 1.05 * max(np.abs(audio).max(), 1e-3))
    return fig


def log_mel(mel: np.ndarray, cfg: FeatureConfig, title: str = "Log-mel spectrogram (model input)") -> plt.Figure:
    """mel: (n_mels, frames) in dB, from `features.log_mel_spectrogram` with the model's own settings."""
    fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
    seconds = mel.shape[1] / cfg.frames_per_second
    img = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, cfg.n_mels))
    freqs = mel_frequencies(cfg)
    ticks = [f for f in (100, 500, 1000, 2000, 4000, 8000) if freqs[0] <= f <= freqs[-1]]
    ax.set_yticks(
        np.interp(ticks, freqs, np.arange(cfg.n_mels) + 0.5), [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks]
    )
    ax.set(xlabel="time (s)", ylabel="frequency (Hz, mel scale)", title=title)
    fig.colorbar(img, ax=ax, label="dB", pad=0.01)
    return fig


def probabilities(probs: dict[str, float], title: str = "Emotion probabilities") -> plt.Figure:
    """Horizontal bars, highest first and highlighted, with percentages."""
    items = sorted(probs.items(), key=lambda kv: kv[1])
    labels, values = [k for k, _ in items], [v * 100 for _, v in items]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(items) + 1.2), layout="constrained")
    colors = [MUTED] * (len(items) - 1) + [HIGHLIGHT]
    bars = ax.barh(labels, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=4)
    ax.set(xlim=(0, 115), xlabel="probability (%)", title=title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def confusion(cm: np.ndarray, labels: list[str], title: str = "Confusion matrix") -> plt.Figure:
    """Row-normalised confusion matrix (rows: true emotion) with counts in each cell."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2.5, 0.9 * len(labels) + 1.8), layout="constrained")
    img = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.0%}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(img, ax=ax, fraction=0.04, label="recall share")
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
