"""Figures: waveform, the model's log-mel input, emotion probabilities, confusion matrix, and the app's pictures.

Drawn for a phone first and labelled in plain words: WIDTH inches wide with text of at least 13 points, so a
picture shown 326 px wide on a 390 px phone keeps its smallest text above 14 px; a projector shows the same
picture larger. Axes say "pitch", "seconds", "quiet" and "loud" rather than Hz scales, decibels and amplitudes.
"""

import textwrap

import matplotlib

matplotlib.use("Agg")
import librosa  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .features import FeatureConfig, mel_frequencies  # noqa: E402
from .words import PICTURE_TITLE  # noqa: E402

plt.rcParams.update({"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "legend.fontsize": 13})
HIGHLIGHT, MUTED = "#d9480f", "#868e96"
LOG_MEL_COLOURS = "magma"  # the model's input, from dark (quiet) to bright (loud); the offline page draws it alike
# Inches: 13-point text in a picture this wide stays >= 14 px when a 390 px phone shows it 326 px wide
# (13 pt = 18 px at 100 dpi; 326 / 400 = 0.82 of that).
WIDTH = 4.0
TICK_GAP = 0.15  # the least distance between two pitch labels, as a share of the axis: 13-point labels never touch


def titled(ax: plt.Axes, title: str, width: float = WIDTH) -> None:
    """`title` wrapped to the picture's width (a phone-width picture holds about 9 characters an inch)."""
    ax.set_title(textwrap.fill(title, max(20, int(9 * width))))


def loudness_bar(fig: plt.Figure, img, ax, low: float, high: float, labels=("quiet", "loud")):
    """A colour bar that says what its colours mean in words, at its two ends."""
    bar = fig.colorbar(img, ax=ax, pad=0.02, fraction=0.06)
    bar.set_ticks([low, high], labels=list(labels))
    return bar


def waveform(audio: np.ndarray, sample_rate: int, title: str = "The sound wave") -> plt.Figure:
    """The samples over time: how the air pressure wobbled (no numbers on that axis: they mean nothing to a reader)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.4), layout="constrained")
    t = np.arange(len(audio)) / sample_rate
    ax.plot(t, audio, color="#1c7ed6", linewidth=0.6)
    ax.set(xlabel="seconds", ylabel="air pressure", xlim=(0, max(t[-1], 1e-3) if len(t) else 1), yticks=[])
    ax.set_ylim(-1.05 * max(np.abs(audio).max(), 1e-3), 1.05 * max(np.abs(audio).max(), 1e-3))
    titled(ax, title)
    return fig


def log_mel(mel: np.ndarray, cfg: FeatureConfig, title: str = PICTURE_TITLE) -> plt.Figure:
    """mel: (n_mels, frames) in dB, from `features.log_mel_spectrogram` with the model's own settings."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9), layout="constrained")
    seconds = mel.shape[1] / cfg.frames_per_second
    img = ax.imshow(mel, origin="lower", aspect="auto", cmap=LOG_MEL_COLOURS, extent=(0, seconds, 0, cfg.n_mels))
    mel_ticks(ax, cfg)
    ax.set(xlabel="seconds", ylabel="pitch (Hz)")
    titled(ax, title)
    loudness_bar(fig, img, ax, *img.get_clim())
    return fig


def mel_ticks(ax: plt.Axes, cfg: FeatureConfig, gap: float = TICK_GAP) -> None:
    """Label an image of mel bands (band i spans y = i to i + 1) in Hz, from the top edge of the highest band down,
    leaving out any label nearer than `gap` of the axis to one already placed (100, 250 and 500 Hz sit close)."""
    centres = librosa.hz_to_mel(mel_frequencies(cfg))  # equally spaced on the mel scale
    step = centres[1] - centres[0]
    top = float(librosa.mel_to_hz(centres[-1] + step / 2))  # where the highest band's image ends
    ticks, ys = [], []
    for f in (top, 4000, 2000, 1000, 500, 250, 100):
        y = 0.5 + (librosa.hz_to_mel(f) - centres[0]) / step
        if mel_frequencies(cfg)[0] <= f <= top and all(abs(y - other) >= gap * cfg.n_mels for other in ys):
            ticks.append(f)
            ys.append(y)
    ys, ticks = zip(*sorted(zip(ys, ticks, strict=True)), strict=True)  # bottom up
    ax.set_yticks(ys, [f"{f / 1000:.2g}k" if f >= 1000 else f"{f:.0f}" for f in ticks])


def probabilities(probs: dict[str, float], title: str = "Emotion probabilities") -> plt.Figure:
    """Horizontal bars, highest first and highlighted, with percentages."""
    items = sorted(probs.items(), key=lambda kv: kv[1])
    labels, values = [k for k, _ in items], [v * 100 for _, v in items]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * len(items) + 1.2), layout="constrained")
    colors = [MUTED] * (len(items) - 1) + [HIGHLIGHT]
    bars = ax.barh(labels, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=4)
    ax.set(xlim=(0, 125), xticks=[0, 50, 100], xlabel="how likely (%)")
    titled(ax, title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def confusion(cm: np.ndarray, labels: list[str], title: str = "Confusion matrix") -> plt.Figure:
    """Row-normalised confusion matrix as a heatmap of percentages (rows: the emotion acted, each row sums to 100)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    # 0.8 inch a cell: 13-point numbers stay readable when a phone or a narrow column shrinks the picture
    fig, ax = plt.subplots(figsize=(0.8 * len(labels) + 2.2, 0.8 * len(labels) + 2.0), layout="constrained")
    img = ax.imshow(100 * norm, cmap="cividis", vmin=0, vmax=100)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=13,
                    color="black" if norm[i, j] > 0.5 else "white")  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="the model said", ylabel="the actor meant", title=title)
    fig.colorbar(img, ax=ax, fraction=0.04, label="% of the actor's clips")
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- "How it works", step by step


def spectrogram(power: np.ndarray, cfg: FeatureConfig, title: str = "Pitches over time") -> plt.Figure:
    """STFT power (n_fft // 2 + 1, frames) on linear axes: pitch in Hz, loudness as a share of the loudest."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9), layout="constrained")
    seconds = power.shape[1] / cfg.frames_per_second
    img = ax.imshow(power / max(power.max(), 1e-20), origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                    extent=(0, seconds, 0, cfg.sample_rate / 2))  # fmt: skip
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ax.yaxis.set_major_formatter(lambda f, _: f"{f / 1000:g}k" if f >= 1000 else f"{f:.0f}")
    ax.set(xlabel="seconds", ylabel="pitch (Hz)")
    titled(ax, title)
    loudness_bar(fig, img, ax, 0, 1)
    return fig


def mel_power(power: np.ndarray, cfg: FeatureConfig, title: str = "The same, in pitch bands") -> plt.Figure:
    """Mel-band power (n_mels, frames) on a linear loudness scale, bands spaced as in `log_mel`."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9), layout="constrained")
    seconds = power.shape[1] / cfg.frames_per_second
    img = ax.imshow(power / max(power.max(), 1e-20), origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                    extent=(0, seconds, 0, cfg.n_mels))  # fmt: skip
    mel_ticks(ax, cfg)
    ax.set(xlabel="seconds", ylabel="pitch (Hz)")
    titled(ax, title)
    loudness_bar(fig, img, ax, 0, 1)
    return fig


def feature_maps(rows: list[tuple[str, np.ndarray, list[int]]], title: str = "Where filters light up"):
    """One row of images per block: (name, maps (n, F, T), channel numbers). Bright: the filter responds."""
    n = max(len(maps) for _, maps, _ in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(WIDTH, 1.5 * len(rows) + 0.6), layout="constrained",
                             squeeze=False)  # fmt: skip
    for row, (name, maps, _) in zip(axes, rows, strict=True):
        for ax, m in zip(row, maps, strict=False):
            ax.imshow(m, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=max(m.max(), 1e-6))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name)
    fig.suptitle(title, fontsize=plt.rcParams["axes.titlesize"])
    return fig


# ----------------------------------------------------------------------------- two voices side by side


def compare_log_mels(mels: list[tuple[str, np.ndarray]], cfg: FeatureConfig) -> plt.Figure:
    """Log-mels (n_mels, frames) above each other on one time axis, each coloured from its own loudest point."""
    seconds = max(m.shape[1] for _, m in mels) / cfg.frames_per_second
    fig, axes = plt.subplots(len(mels), 1, figsize=(WIDTH, 2.5 * len(mels) + 0.5), layout="constrained",
                             sharex=True)  # fmt: skip
    for ax, (title, mel) in zip(np.atleast_1d(axes), mels, strict=True):
        img = ax.imshow(mel - mel.max(), origin="lower", aspect="auto", cmap="magma", vmin=-cfg.top_db, vmax=0,
                        extent=(0, mel.shape[1] / cfg.frames_per_second, 0, cfg.n_mels))  # fmt: skip
        mel_ticks(ax, cfg, gap=1.6 * TICK_GAP)  # a shorter axis each
        ax.set(ylabel="pitch (Hz)", xlim=(0, seconds))
        titled(ax, title, width=0.8 * WIDTH)  # within its axes: the colour bar beside them spans both
    ax.set_xlabel("seconds")
    loudness_bar(fig, img, list(np.atleast_1d(axes)), -cfg.top_db, 0)
    return fig


def compare_probabilities(
    probs: list[tuple[str, dict[str, float]]], title: str = "Emotion probabilities"
) -> plt.Figure:
    """Grouped horizontal bars: one group per emotion (first dict's order, top down), one bar per voice."""
    labels = list(probs[0][1])[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.7 * len(labels) + 1.9), layout="constrained")
    height = 0.8 / len(probs)
    styles = [dict(color=MUTED, hatch="//", edgecolor="white"), dict(color=HIGHLIGHT)]  # told apart without colour
    y = np.arange(len(labels))
    for k, (name, p) in enumerate(probs):
        values = [100 * p.get(e, 0.0) for e in labels]
        offset = (len(probs) - 1 - k - (len(probs) - 1) / 2) * height  # the first voice on top in each group
        bars = ax.barh(y + offset, values, height, label=name, **styles[k % len(styles)])
        ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=3)
    ax.set_yticks(y, labels)
    ax.set(xlim=(0, 125), xticks=[0, 50, 100], xlabel="how likely (%)")
    titled(ax, title)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0 + 0.35 / fig.get_figheight()), ncols=len(probs),
              frameon=False)  # fmt: skip
    ax.spines[["top", "right"]].set_visible(False)
    return fig


# ----------------------------------------------------------------------------- how good the model is


def right_per_emotion(recall: dict[str, float], chance: float, title: str) -> plt.Figure:
    """How often (%) the model names each emotion the actor meant, as bars, with guessing as a dashed line."""
    items = list(recall.items())[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * len(items) + 1.9), layout="constrained")
    bars = ax.barh([k for k, _ in items], [100 * v for _, v in items], color="#1c7ed6")
    ax.bar_label(bars, labels=[f"{100 * v:.0f}%" for _, v in items], padding=4)
    ax.axvline(100 * chance, color="black", linestyle="--", linewidth=1.5)
    ax.text(100 * chance, len(items) - 0.4, " guessing", va="bottom")
    ax.set(xlim=(0, 125), xticks=[0, 50, 100], ylim=(-0.6, len(items) + 0.2), xlabel="right answers (%)")
    titled(ax, title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def smallest_text(fig: plt.Figure) -> float:
    """The smallest font size (points) of any visible text in `fig`; with its dpi, the smallest text in pixels."""
    fig.canvas.draw()  # tick labels exist only once drawn
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return min(t.get_fontsize() for t in texts)


# ----------------------------------------------------------------------------- over time, why, and live

EMOTION_COLORS = {  # one colour per emotion, the same in every picture over time
    "neutral": "#adb5bd",
    "calm": "#63e6be",
    "happy": "#fcc419",
    "sad": "#4dabf7",
    "angry": "#e03131",
    "fearful": "#9c36b5",
    "disgust": "#74b816",
    "surprised": "#f76707",
}


def clock(seconds: float, _=None) -> str:
    """Seconds as m:ss for time axes longer than a couple of minutes."""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def timeline(tl, title: str = "Emotion over time") -> plt.Figure:
    """A `ser.timeline.Timeline`: the waveform above the class probabilities of each step (stacked, summing to
    100 %), on one time axis; silence shaded grey in both and left blank below; the emotions' colours below."""
    fig, (wave, probs) = plt.subplots(2, 1, figsize=(WIDTH, 5.4), layout="constrained", sharex=True,
                                      gridspec_kw={"height_ratios": [1, 2.4]})  # fmt: skip
    t = np.arange(len(tl.envelope)) * tl.envelope_step
    wave.fill_between(t, tl.envelope[:, 0], tl.envelope[:, 1], color="#1c7ed6", linewidth=0)
    wave.set(ylabel="sound", yticks=[])
    titled(wave, title)
    edges = np.arange(len(tl.probs) + 1) * tl.step  # steps drawn as flat blocks: a value holds for its whole step
    colors = [EMOTION_COLORS.get(k, f"C{i}") for i, k in enumerate(tl.labels)]
    stacked = np.nan_to_num(100 * np.repeat(tl.probs, 2, axis=0))
    probs.stackplot(np.repeat(edges, 2)[1:-1], stacked.T, labels=tl.labels, colors=colors, linewidth=0)
    for s in tl.segments:
        if s.label == "silence":
            for ax in (wave, probs):
                ax.axvspan(s.start, s.end, color="#e9ecef", zorder=0)
    probs.set(ylim=(0, 100), yticks=[0, 50, 100], xlim=(0, tl.duration), ylabel="how likely (%)", xlabel="seconds")
    if tl.duration > 120:
        probs.xaxis.set_major_formatter(clock)
        probs.set_xlabel("minutes:seconds")
    probs.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    fig.legend(*probs.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False,
               handlelength=1.0, columnspacing=1.0)  # fmt: skip
    return fig


def saliency(e, cfg: FeatureConfig) -> plt.Figure:
    """A `ser.explain.Explanation`: its log-mel in grey with the saliency in colour over it, titled with how to read
    it. Where the heat is 0 the spectrogram shows through unchanged."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2), layout="constrained")
    extent = (0, e.mel.shape[1] / cfg.frames_per_second, 0, cfg.n_mels)
    ax.imshow(e.mel, origin="lower", aspect="auto", cmap="gray", extent=extent)
    overlay = plt.get_cmap("inferno")(e.heat)  # (n_mels, frames, 4)
    overlay[..., 3] = 0.85 * np.sqrt(e.heat)  # opaque where the evidence is strong; sqrt keeps weaker parts visible
    ax.imshow(overlay, origin="lower", aspect="auto", extent=extent)
    mel_ticks(ax, cfg)
    ax.set(xlabel="seconds", ylabel="pitch (Hz)")
    titled(ax, e.guide)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(cmap="inferno"), ax=ax, pad=0.02, fraction=0.06)
    bar.set_ticks([0, 1], labels=["none", "most"])
    return fig


def mel_image(mel: np.ndarray, cfg: FeatureConfig, scale: int = 3) -> np.ndarray:
    """A log-mel (n_mels, frames) in dB as an RGB picture (scale * n_mels, frames, 3) uint8, low pitch at the
    bottom, coloured like `log_mel` over its own top_db range: cheap enough to send twice a second."""
    low = mel.max() - cfg.top_db
    rgb = plt.get_cmap("magma")(np.clip((mel[::-1] - low) / cfg.top_db, 0, 1), bytes=True)[..., :3]
    return np.repeat(rgb, scale, axis=0)
