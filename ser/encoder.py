"""The second listener's ears: Resemblyzer's GE2E voice encoder, frozen, re-implemented in torch.

Source: the `resemblyzer` 0.1.4 wheel (Corentin Jemine, Resemble AI; Apache-2.0), whose `pretrained.pt` holds a
speaker encoder trained with the GE2E loss (Wan et al. 2018) on thousands of speakers. Its weights are converted
once, without the optimiser state, into `encoder.safetensors` in the checkpoint folder (`convert`; float16, read
back as float32). The package itself is not needed at run time.

Front end (resemblyzer's audio.py, same settings): 16 kHz mono; loudness raised to -30 dBFS (never lowered);
pauses longer than about 0.2 s cut (resemblyzer uses webrtcvad; here the project's Silero detector, `ser.vad`,
with the same smoothing); then a 40-band mel **power** spectrogram (librosa's melspectrogram: 25 ms Hann windows,
10 ms hop, zero padding at the ends, Slaney mel filters), not a log-mel.

Network: 3 LSTM layers of 256 units over the whole clip (not resemblyzer's 1.6 s partials). What the emotion head
reads (`EncoderConfig.pooled`): the mean and standard deviation over time of layers 2 and 3's outputs, 1,024
numbers: the layers carry how the voice moves, which a single speaker embedding is trained to ignore.
"""

import importlib.util
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .vad import FRAME_SECONDS, SPEECH_THRESHOLD, speech_probabilities

ENCODER_FILE = "encoder.safetensors"


@dataclass
class EncoderConfig:
    """The encoder's front end and shape; saved with the voice head (voice.json) and read back from it."""

    sample_rate: int = 16000  # the encoder was trained at 16 kHz
    n_fft: int = 400  # 25 ms windows (resemblyzer's mel_window_length)
    hop_length: int = 160  # 10 ms hop (mel_window_step)
    n_mels: int = 40  # mel_n_channels
    target_dbfs: float = -30.0  # quiet clips are raised to this RMS level, loud ones left alone
    trim_pauses: bool = True  # cut pauses longer than `max_pause` seconds, as resemblyzer's preprocess_wav does
    max_pause: float = 0.2  # about resemblyzer's 6 silent 30 ms windows of dilation
    smooth: float = 0.24  # seconds of the voice-flag moving average (resemblyzer: 8 windows of 30 ms)
    hidden: int = 256
    layers: int = 3
    embedding: int = 256
    pooled: list = field(default_factory=lambda: [2, 3])  # 1-based LSTM layers whose outputs are pooled
    speaker_embedding: bool = False  # also append resemblyzer's 256-number speaker embedding of the whole clip
    min_seconds: float = 1.0  # shorter speech gives too few frames for a stable mean and spread

    @property
    def dim(self) -> int:
        """Length of the feature vector: mean and std of each pooled layer, then the embedding if asked."""
        return 2 * self.hidden * len(self.pooled) + self.embedding * self.speaker_embedding

    def to_dict(self) -> dict:
        return asdict(self)


def raise_loudness(audio: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale audio (samples,) up so its RMS is `target_dbfs`; never down (resemblyzer's normalize_volume)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms <= 0:
        return audio
    gain_db = target_dbfs - 20 * np.log10(rms)
    return audio * np.float32(10 ** (gain_db / 20)) if gain_db > 0 else audio


def cut_pauses(audio: np.ndarray, cfg: EncoderConfig, speech: np.ndarray | None = None) -> np.ndarray:
    """Audio (samples,) with pauses longer than about `cfg.max_pause` seconds removed.

    resemblyzer's trim_long_silences with Silero's 32 ms frames in place of webrtcvad's 30 ms: speech flags,
    a moving average over `cfg.smooth` seconds, rounded, then dilated by `cfg.max_pause` so short pauses stay.
    `speech`: `vad.speech_probabilities` of this audio at any level, if already computed (the detector judges
    every input at its own level, so raising the loudness does not change it)."""
    speech = speech_probabilities(audio, cfg.sample_rate) if speech is None else speech
    flags = speech >= SPEECH_THRESHOLD
    if not flags.any():
        return audio  # nothing the detector calls speech: keep everything rather than nothing
    width = max(1, int(round(cfg.smooth / FRAME_SECONDS)))
    padded = np.concatenate([np.zeros((width - 1) // 2), flags.astype(float), np.zeros(width // 2)])
    smoothed = np.convolve(padded, np.ones(width) / width, mode="valid")
    mask = np.round(smoothed).astype(bool)
    reach = int(round(cfg.max_pause / 2 / FRAME_SECONDS))  # each side: a gap up to max_pause closes from both
    if reach:
        mask = np.convolve(mask.astype(float), np.ones(2 * reach + 1), mode="same") > 0  # binary dilation
    frame = int(round(FRAME_SECONDS * cfg.sample_rate))
    keep = np.repeat(mask, frame)[: len(audio)]
    keep = np.pad(keep, (0, len(audio) - len(keep)), constant_values=bool(mask[-1]))
    return audio[keep] if keep.any() else audio


def preprocess(audio: np.ndarray, cfg: EncoderConfig, speech: np.ndarray | None = None) -> np.ndarray:
    """Mono float audio (samples,) at `cfg.sample_rate` -> what the encoder hears (louder, pauses cut).
    `speech`: the audio's `vad.speech_probabilities`, if already computed."""
    audio = raise_loudness(np.asarray(audio, dtype=np.float32), cfg.target_dbfs)
    return cut_pauses(audio, cfg, speech) if cfg.trim_pauses else audio


@lru_cache(maxsize=4)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32))


def mel_power(audio: np.ndarray | torch.Tensor, cfg: EncoderConfig) -> torch.Tensor:
    """Mel power spectrogram (frames, n_mels) of preprocessed audio (samples,): librosa.feature.melspectrogram's
    defaults (centred frames, zero padding, power 2, Slaney filters from 0 Hz to Nyquist), transposed."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(cfg.n_fft)
    spec = torch.stft(audio.float(), cfg.n_fft, cfg.hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # fmt: skip
    power = spec.real**2 + spec.imag**2  # (n_freqs, frames)
    return (_mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power).T.contiguous()


class VoiceEncoder(nn.Module):
    """The GE2E LSTM, one nn.LSTM per layer so that every layer's outputs can be read.

    `forward`: mel power (B, T, n_mels) -> list of each layer's outputs (B, T, hidden), first to last."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        sizes = [cfg.n_mels] + [cfg.hidden] * cfg.layers
        self.lstm = nn.ModuleList(nn.LSTM(i, cfg.hidden, batch_first=True) for i in sizes[:-1])
        self.linear = nn.Linear(cfg.hidden, cfg.embedding)  # the speaker embedding's projection (unused by the head)
        self.eval()

    def forward(self, mels: torch.Tensor | nn.utils.rnn.PackedSequence) -> list:
        outputs, x = [], mels
        for layer in self.lstm:
            x, _ = layer(x)
            outputs.append(x)
        return outputs

    @torch.inference_mode()
    def embedding(self, mel: torch.Tensor) -> torch.Tensor:
        """resemblyzer's speaker embedding of one whole mel (T, n_mels): ReLU(linear(last hidden state)), L2-normed,
        (embedding,). Not used by the emotion head; kept to check parity with the package."""
        last = self(mel.unsqueeze(0))[-1][0, -1]
        e = torch.relu(self.linear(last))
        return e / e.norm()

    @torch.inference_mode()
    def pooled(self, mels: list[torch.Tensor]) -> torch.Tensor:
        """Mean and std over time of the `cfg.pooled` layers' outputs for each mel (T_i, n_mels), as (B, dim).

        Clips of any length share one packed batch; padding never enters the statistics."""
        lengths = torch.tensor([len(m) for m in mels])
        if len(mels) == 1:  # one clip (an app's answer): no padding, so no packing, the LSTM's faster kernel
            outs = self(mels[0].unsqueeze(0))
        else:
            padded = nn.utils.rnn.pad_sequence(list(mels), batch_first=True)
            packed = nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
            outs = [nn.utils.rnn.pad_packed_sequence(o, batch_first=True)[0] for o in self(packed)]
        stats = []
        for k in self.cfg.pooled:
            x = outs[k - 1]  # (B, T, H), zeros past each clip's end
            n = lengths.view(-1, 1).float()
            mean = x.sum(1) / n
            var = (x.square().sum(1) / n - mean.square()).clamp(min=0) * n / (n - 1).clamp(min=1)
            stats += [mean, var.sqrt()]
        if self.cfg.speaker_embedding:  # resemblyzer's embedding: the last layer's final state, projected
            e = torch.relu(self.linear(outs[-1][torch.arange(len(lengths)), lengths - 1]))
            stats.append(e / e.norm(dim=1, keepdim=True).clamp(min=1e-8))
        return torch.cat(stats, dim=1)


def encoder_features(
    encoder: VoiceEncoder, clips: list[np.ndarray], batch: int = 32, speech: list[np.ndarray] | None = None
) -> np.ndarray:
    """Pooled encoder features (N, dim) float32 of mono clips at `encoder.cfg.sample_rate`, `batch` at a time
    (clips of similar length together, so little work is spent on padding). `speech`: each clip's
    `vad.speech_probabilities`, where already computed."""
    cfg = encoder.cfg
    speech = speech or [None] * len(clips)
    mels = [mel_power(preprocess(a, cfg, s), cfg) for a, s in zip(clips, speech)]
    order = np.argsort([len(m) for m in mels])
    out = np.zeros((len(mels), cfg.dim), np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        out[idx] = encoder.pooled([mels[i] for i in idx]).numpy()
    return out


def convert(pretrained: str | Path, folder: str | Path) -> Path:
    """Write `folder/encoder.safetensors` (float16, no optimiser state) from resemblyzer's `pretrained.pt`."""
    state = torch.load(pretrained, map_location="cpu", weights_only=True)["model_state"]
    tensors = {}
    for name, value in state.items():
        if name.startswith("lstm."):  # lstm.weight_ih_l2 -> lstm.2.weight_ih_l0
            kind, layer = name[len("lstm.") :].rsplit("_l", 1)
            tensors[f"lstm.{layer}.{kind}_l0"] = value
        elif name.startswith("linear."):
            tensors[name] = value  # similarity_weight/bias belong to the GE2E loss, not the encoder
    out = Path(folder) / ENCODER_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"source": "resemblyzer 0.1.4 pretrained.pt (Apache-2.0)", "dtype": "float16"}
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, out, metadata=meta)
    return out


def load_encoder(path: str | Path, cfg: EncoderConfig | None = None) -> VoiceEncoder:
    """The frozen encoder from an `encoder.safetensors` (float16 weights, computed in float32)."""
    encoder = VoiceEncoder(cfg or EncoderConfig())
    encoder.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def resemblyzer_weights() -> Path:
    """Where the installed resemblyzer wheel keeps pretrained.pt, found without importing the package (its import
    needs webrtcvad). Raises FileNotFoundError with what to install."""
    spec = importlib.util.find_spec("resemblyzer")
    path = Path(spec.origin).parent / "pretrained.pt" if spec and spec.origin else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            "resemblyzer's pretrained.pt is not installed: `pip install --no-deps resemblyzer==0.1.4`, "
            "or pass an existing encoder.safetensors"
        )
    return path
