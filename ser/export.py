"""The whole analysis as one ONNX graph: 16 kHz mono samples in, every listener's probabilities out.

    python -m ser export checkpoints/default model.onnx

What `ser.analyse` does after decoding and resampling is inside the graph, with the checkpoint's own settings:
trimming the silent ends and cutting to `max_seconds` (`audio.prepare`), the CNN's log-mel, the CNN; and, when the
checkpoint has a voice listener, its front end (loudness raised, pauses cut with Silero VAD), the encoder's LSTM,
the head and the fusion. Short-time Fourier transforms are fixed convolutions (a Hann-windowed Fourier basis), so
the graph needs only ordinary ONNX operators and runs in onnxruntime and onnxruntime-web alike.

Inputs and outputs (names are the graph's):
    audio    (samples,) float32 at 16 kHz, mono, in [-1, 1]; not silent (the caller checks, as `audio.prepare` does)
    probs    (labels,) the answer: fused when the voice listener heard the clip, else the CNN's
    cnn      (cnn labels,) the picture listener's probabilities
    voice    (voice labels,) the voice listener's (only with one); meaningless when `seconds` < its minimum
    mel      (n_mels, frames) the CNN's input in dB, the spectrogram a page draws
    seconds  () seconds of sound once the silent ends are trimmed, before the cut to `max_seconds`: under
             `min_seconds` the clip is too short (the graph still answers, on the clip padded with silence)
    speech   () the share of 32 ms frames the voice detector judged speech (the app's "does not sound like
             someone talking" note fires under 5 %)
The metadata key "ser" holds a JSON object with the labels of each output, the feature settings and everything a
page needs to word the answer as the app does.

What is not in the graph: decoding and resampling (the caller's), the quality notes' wording, and adaptation to a
voice (`Reference`).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .audio import SILENCE_DBFS
from .card import CONFIDENT_TOP, UNSURE_MARGIN, UNSURE_TOP, confident_share, may_say_confident
from .encoder import _mel_filters as encoder_filters
from .features import _mel_filters
from .model import SERModel
from .quality import CLIP_FRACTION, CLIP_LEVEL, MIN_SPEECH_FRACTION, QUIET_DBFS
from .vad import FRAME, FRAME_SECONDS, LEAD_FRAMES, SPEECH_THRESHOLD, VAD_PEAK, VAD_RATE, _detector

# The TorchScript exporter's notes on LSTM batch sizes and Slice folding concern graphs unlike this one (batch 1).
warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")

OPSET = 17
TRIM_FRAME, TRIM_HOP = 512, 128  # audio.trim_silence's framing (librosa.effects.trim's RMS frames)
# onnxruntime and PyTorch agree to ~1e-6 on probabilities (float32 sums in another order); 1e-4 leaves room for
# other processors' kernels while still catching any real difference (a wrong setting moves them by 1e-2 or more).
TOLERANCE = 1e-4
OUTPUTS = ["probs", "cnn", "voice", "mel", "seconds", "speech"]


class ExportError(ValueError):
    """A checkpoint the graph cannot represent, said in one line."""


def fourier_basis(n_fft: int) -> torch.Tensor:
    """Hann-windowed real and imaginary Fourier rows as a conv1d weight (2 * (n_fft // 2 + 1), 1, n_fft): a
    strided convolution with it is torch.stft's (periodic Hann window, no normalisation)."""
    n, k = torch.arange(n_fft, dtype=torch.float64), torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * torch.pi * k[:, None] * n[None, :] / n_fft
    window = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).unsqueeze(1).float()


def size(x: torch.Tensor) -> torch.Tensor:
    """len(x) as a tensor that stays a computation in the traced graph (torch.tensor(len) would be a constant)."""
    return torch.ones_like(x.reshape(x.shape[0], -1)[:, 0], dtype=torch.int64).sum()


def select(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The entries of x (n, ...) where the boolean keep (n,) is true (NonZero + Gather in the graph)."""
    return x.index_select(0, torch.nonzero(keep).reshape(-1))


class Spectrum(nn.Module):
    """Power spectrogram (n_fft // 2 + 1, frames) of audio (samples,), centred frames as torch.stft's."""

    def __init__(self, n_fft: int, hop: int, pad_mode: str):
        super().__init__()
        self.n_fft, self.hop, self.pad_mode = n_fft, hop, pad_mode
        self.register_buffer("basis", fourier_basis(n_fft))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = F.pad(audio.reshape(1, 1, -1), (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        spec = F.conv1d(x, self.basis, stride=self.hop)[0]
        bins = self.n_fft // 2 + 1
        return spec[:bins] ** 2 + spec[bins:] ** 2


class Graph(nn.Module):
    """`ser.analyse` from 16 kHz samples on, as one module that exports (see the module docstring)."""

    def __init__(self, model: SERModel):
        super().__init__()
        refuse_unless_representable(model)
        self.model, self.cfg, voice = model.eval(), model.feature_config, model.voice
        cfg = self.cfg
        self.spectrum = Spectrum(cfg.n_fft, cfg.hop_length, "reflect")  # torch.stft's default padding
        fb = _mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.register_buffer("cnn_mel", fb.clone())
        self.vad = _detector()
        self.has_voice = voice is not None
        if self.has_voice:
            ecfg, head = voice.encoder.cfg, voice.head
            self.ecfg, self.encoder = ecfg, voice.encoder
            self.voice_spectrum = Spectrum(ecfg.n_fft, ecfg.hop_length, "constant")  # librosa's zero padding
            self.register_buffer("voice_mel", encoder_filters(ecfg.sample_rate, ecfg.n_fft, ecfg.n_mels).clone())
            for name in ("mean", "scale", "weight", "bias"):
                self.register_buffer(f"head_{name}", torch.from_numpy(np.asarray(getattr(head, name), np.float32)))
            common = [lab for lab in model.labels if lab in head.labels]
            self.register_buffer("cnn_index", torch.tensor([model.labels.index(lab) for lab in common]))
            self.register_buffer("voice_index", torch.tensor([head.labels.index(lab) for lab in common]))
            self.weight, self.temperature = float(voice.fusion_weight), float(voice.temperature)

    # ------------------------------------------------------------------ audio.prepare, as masks
    def trimmed(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip, seconds): `audio.prepare`'s trim and cut, then silence appended up to `min_seconds` (a clip
        that short is refused by the caller; the graph still answers). `seconds` is the sound before the cut."""
        cfg = self.cfg
        square = F.pad((audio * audio).reshape(1, 1, -1), (TRIM_FRAME // 2, TRIM_FRAME // 2))
        mse = F.avg_pool1d(square, TRIM_FRAME, TRIM_HOP).reshape(-1)  # librosa's rms ** 2, centred frames
        db = 10 * torch.log10(mse.clamp(min=1e-10))
        loud = torch.nonzero(db - db.max() > -cfg.trim_db).reshape(-1)
        start = loud.min() * TRIM_HOP
        end = torch.minimum((loud.max() + 1) * TRIM_HOP, size(audio))
        i = torch.arange(audio.shape[0])
        clip = select(audio, (i >= start) & (i < end) & (i < start + int(cfg.max_seconds * cfg.sample_rate)))
        padded = torch.cat([clip, clip.new_zeros(cfg.min_samples)])
        length = size(clip).clamp(min=cfg.min_samples)
        clip = select(padded, torch.arange(padded.shape[0]) < length)
        return clip, (end - start).float() / cfg.sample_rate

    # ------------------------------------------------------------------ the picture listener
    def log_mel(self, clip: torch.Tensor) -> torch.Tensor:
        """features.log_mel_spectrogram: (n_mels, frames) in dB, floored at the clip's peak less top_db."""
        db = 10 * torch.log10((self.cnn_mel @ self.spectrum(clip)).clamp(min=1e-10))
        return torch.maximum(db, db.max() - self.cfg.top_db)

    # ------------------------------------------------------------------ the voice listener
    def speech_flags(self, audio: torch.Tensor) -> torch.Tensor:
        """vad.speech_probabilities >= SPEECH_THRESHOLD per 32 ms frame, (frames,)."""
        x = audio * (VAD_PEAK / audio.abs().max().clamp(min=1e-12))
        x = torch.cat([x.new_zeros(LEAD_FRAMES * FRAME), x])
        probs, _ = self.vad.scores(self.vad.front(self.vad.windows(x)))
        return probs[LEAD_FRAMES:] >= SPEECH_THRESHOLD

    def heard(self, clip: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
        """encoder.preprocess: loudness raised to target_dbfs (never lowered), pauses cut (`encoder.cut_pauses`)."""
        e = self.ecfg
        rms = torch.sqrt(torch.mean(clip * clip)).clamp(min=1e-12)
        gain_db = e.target_dbfs - 20 * torch.log10(rms)
        clip = clip * torch.where(gain_db > 0, 10 ** (gain_db / 20), torch.ones_like(gain_db))
        if not e.trim_pauses:
            return clip
        width = max(1, int(round(e.smooth / FRAME_SECONDS)))
        counts = F.conv1d(F.pad(flags.float().reshape(1, 1, -1), ((width - 1) // 2, width // 2)),
                          torch.ones(1, 1, width))  # fmt: skip
        mask = counts * 2 > width  # np.round(mean) == 1: more than half the window (0.5 rounds to 0)
        reach = int(round(e.max_pause / 2 / FRAME_SECONDS))
        if reach:
            mask = F.max_pool1d(mask.float(), 2 * reach + 1, 1, reach) > 0
        frame = int(round(FRAME_SECONDS * e.sample_rate))
        keep = mask.reshape(-1)[torch.arange(clip.shape[0]) // frame]
        return select(clip, keep | (keep.sum() == 0))  # nothing kept: keep everything, as cut_pauses does

    def voice_features(self, audio: torch.Tensor) -> torch.Tensor:
        """VoiceEncoder.pooled for one clip: mean and spread over time of the pooled layers' outputs, (dim,)."""
        mel = (self.voice_mel @ self.voice_spectrum(audio)).T.unsqueeze(0)  # (1, T, n_mels)
        outs, x = [], mel
        for layer in self.encoder.lstm:
            x, _ = layer(x)
            outs.append(x[0])
        n = size(outs[0]).float()
        stats = []
        for k in self.ecfg.pooled:
            h = outs[k - 1]
            mean = h.sum(0) / n
            var = (h.square().sum(0) / n - mean.square()).clamp(min=0) * n / (n - 1).clamp(min=1)
            stats += [mean, var.sqrt()]
        if self.ecfg.speaker_embedding:
            e = torch.relu(self.encoder.linear(outs[-1][-1]))
            stats.append(e / e.norm().clamp(min=1e-8))
        return torch.cat(stats)

    def forward(self, audio: torch.Tensor):
        clip, seconds = self.trimmed(audio)
        mel = self.log_mel(clip)
        logits = self.model(mel.unsqueeze(0))[0] / self.model.config.temperature
        cnn = torch.softmax(logits, -1)
        flags = self.speech_flags(clip)
        speech = flags.float().mean()
        if not self.has_voice:
            return cnn, cnn, cnn, mel, seconds, speech
        features = self.voice_features(self.heard(clip, flags))
        voice = torch.softmax((features - self.head_mean) / self.head_scale @ self.head_weight.T + self.head_bias, -1)
        log_cnn, log_voice = torch.log(cnn.clamp(min=1e-12)), torch.log(voice.clamp(min=1e-12))
        z = (1 - self.weight) * log_cnn[self.cnn_index] + self.weight * log_voice[self.voice_index]
        fused = torch.softmax(z / self.temperature, -1)
        heard_enough = seconds >= self.ecfg.min_seconds  # analyse: the voice listener needs min_seconds of the clip
        probs = torch.where(heard_enough, fused, cnn[self.cnn_index])
        return probs, cnn, voice, mel, seconds, speech


def refuse_unless_representable(model: SERModel) -> None:
    """Raise ExportError (one line) for a checkpoint the graph cannot represent."""
    cfg, voice = model.feature_config, model.voice
    if cfg.sample_rate != VAD_RATE:
        raise ExportError(
            f"the export takes 16 kHz models only (the voice detector inside the graph is 16 kHz); "
            f"this one is {cfg.sample_rate} Hz"
        )
    if model.config.norm not in ("band", "global"):
        raise ExportError(f"unknown input normalisation '{model.config.norm}' in config.json")
    if voice is None:
        return
    if voice.encoder.cfg.sample_rate != cfg.sample_rate:
        raise ExportError("the voice listener's encoder runs at another sample rate than the CNN: export both at one")
    if missing := [lab for lab in model.labels if lab not in voice.labels]:
        raise ExportError(f"the voice listener lacks the CNN's label(s) {', '.join(missing)}: retrain its head")


def metadata(model: SERModel) -> dict:
    """What a page or program needs beside the graph: each output's labels, the settings, the app's wording rules."""
    cfg, voice = model.feature_config, model.voice
    folder = model.source_dir
    metrics = (
        json.loads((folder / "metrics.json").read_text()) if folder and (folder / "metrics.json").is_file() else {}
    )
    meta = {
        "format": 1,
        "inputs": {"audio": "float32 (samples,), mono, at sample_rate, in [-1, 1]"},
        "sample_rate": cfg.sample_rate,
        "labels": [lab for lab in model.labels if voice is None or lab in voice.labels],
        "cnn_labels": list(model.labels),
        "listeners": ["cnn", "voice"] if voice else ["cnn"],
        "features": cfg.to_dict(),
        "temperature": model.config.temperature,
        # audio.prepare and quality: what the caller refuses or notes, with the app's thresholds
        "min_seconds": cfg.min_seconds,
        "max_seconds": cfg.max_seconds,
        "silence_dbfs": SILENCE_DBFS,
        "quiet_dbfs": QUIET_DBFS,
        "clip_level": CLIP_LEVEL,
        "clip_fraction": CLIP_FRACTION,
        "min_speech_fraction": MIN_SPEECH_FRACTION,
        # the app's words for how sure the answer is (ser.card): "confident" only where the model card allows it
        "unsure_top": UNSURE_TOP,
        "unsure_margin": UNSURE_MARGIN,
        "confident_top": CONFIDENT_TOP,
        "may_say_confident": may_say_confident(metrics),
        "confident_share": (confident_share(metrics) or (None,))[0],  # share right of answers that sure, unseen corpora
    }
    if voice is not None:
        meta |= {
            "voice_labels": list(voice.labels),
            "voice_min_seconds": voice.min_seconds,
            "fusion_weight": voice.fusion_weight,
            "fused_temperature": voice.temperature,
            "encoder": voice.encoder.cfg.to_dict(),
        }
    return meta


def export(model: SERModel, out: str | Path) -> Path:
    """Write `model` as one ONNX graph (see the module docstring) to `out`. Raises ExportError when it cannot."""
    import onnx

    graph = Graph(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(_example_audio(model.feature_config.sample_rate))
    with torch.no_grad():
        torch.onnx.export(graph, (example,), str(out), input_names=["audio"], output_names=OUTPUTS,
                          dynamic_axes={"audio": {0: "samples"}, "mel": {1: "frames"}},
                          opset_version=OPSET, dynamo=False)  # fmt: skip
    proto = onnx.load(str(out))
    _store_half(proto)
    del proto.metadata_props[:]
    proto.metadata_props.add(key="ser", value=json.dumps(metadata(model)))
    proto.doc_string = "ser: speech emotion recognition; inputs and outputs in metadata 'ser' and ser/export.py"
    onnx.save(proto, str(out))
    return out


def _example_audio(rate: int, seconds: float = 2.0, f0: float = 140.0) -> np.ndarray:
    """A voiced, syllable-like tone with a pause in its middle: to trace the graph with (any audio would do, no
    branch depends on it) and to check the export against PyTorch."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.05 * np.sin(2 * np.pi * t))) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.abs(t - seconds / 2) > 0.3)
    noise = 0.002 * np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * envelope * voiced / 3 + noise).astype(np.float32)


def _store_half(proto) -> None:
    """Store float32 weights that are exactly float16 values (the encoder's, saved as float16) as float16, cast
    back to float32 in the graph: the same numbers in half the bytes."""
    from onnx import helper, numpy_helper

    graph, casts = proto.graph, []
    for init in list(graph.initializer):
        values = numpy_helper.to_array(init)
        if values.dtype != np.float32 or values.size < 1024:
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, f"{name}.half"))
        casts.append(helper.make_node("Cast", [f"{name}.half"], [name], to=onnx_float()))
    for node in reversed(casts):
        graph.node.insert(0, node)


def onnx_float() -> int:
    from onnx import TensorProto

    return TensorProto.FLOAT


def session(path: str | Path, threads: int = 1):
    """An onnxruntime session of an exported graph, on `threads` CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, audio: np.ndarray) -> dict:
    """The graph's outputs for 16 kHz mono audio (samples,), by name."""
    values = sess.run(None, {"audio": np.ascontiguousarray(audio, np.float32)})
    return dict(zip([o.name for o in sess.get_outputs()], values))


def read_metadata(sess) -> dict:
    return json.loads(sess.get_modelmeta().custom_metadata_map["ser"])


def check(model: SERModel, path: str | Path) -> float:
    """Largest difference between onnxruntime's probabilities (every listener) and `ser.analyse`'s on a few seconds
    of a synthetic voice; raises ExportError over `TOLERANCE` (an export that would answer otherwise)."""
    from .inference import analyse

    sess, worst = session(path), 0.0
    rate = model.feature_config.sample_rate
    for audio in (_example_audio(rate, 1.5, 120.0), _example_audio(rate, 4.0, 220.0)):
        out, ours = run(sess, audio), analyse(model, audio, rate)
        for name, probs in [("probs", ours.probs), *ours.listeners.items()]:
            worst = max(worst, float(np.abs(out[name] - np.array(list(probs.values()))).max()))
    if worst > TOLERANCE:
        raise ExportError(f"the exported graph answers otherwise than PyTorch (by {worst:.1e}); please report this")
    return worst
