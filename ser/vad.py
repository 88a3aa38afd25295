"""Voice activity: which parts of a recording are speech, from Silero VAD.

The detector is the model that ships inside the `silero-vad` package (MIT licence, a few MB, loaded from the
installed package, never downloaded). It scores every 32 ms frame of 16 kHz audio with a speech probability.

We run the package's own layers and weights, scheduled for speed: its `audio_forward` calls the whole network
once per frame (14 ms per 3 s clip on an idle core); the frames' convolutional front end does not depend on
earlier frames, so here it runs on all frames at once and only the small recurrent layer steps through time
(2.5 ms). The network's probabilities are the same to 1e-5 (tests/test_quality.py checks this against
`audio_forward`; `python bench/bench_vad.py` times both).

Two things are done to the input first. Its level is normalised: scaled down 40 dB, a third of 150 real clips
sounded like no speech to the detector (under 5 % of frames), and how loud a recording is gets its own note in
`quality`. And it starts after 256 ms of silence: the detector misses speech that begins in its very first
frames, which is how clips trimmed by `audio.prepare` begin.
"""

import importlib.util
import threading
import warnings
from pathlib import Path

import librosa
import numpy as np
import torch

VAD_RATE = 16000  # the detector's rate; other rates are resampled to it
FRAME = 512  # samples the detector scores at once at 16 kHz (its fixed window)
FRAME_SECONDS = FRAME / VAD_RATE  # 32 ms: the time step of `speech_probabilities`
SPEECH_THRESHOLD = 0.5  # Silero's own default: a frame at or above it is speech
VAD_PEAK = 0.5  # inputs are scaled to this peak first: the detector judges the sound, not how loud it is
LEAD_FRAMES = 8  # 256 ms of silence put before the audio: the detector misses speech that starts at its first frame
BATCH_FRAMES = 512  # frames per pass (16 s): bounds memory for long recordings, same result as one pass
ENCODER_STRIDES = (1, 2, 2, 1)  # of the network's four convolutions (its TorchScript code, `_conv_forward`)

# torch 2.13 deprecates TorchScript loading; silero-vad ships its model as TorchScript (or ONNX, which would need
# onnxruntime). Filtered once here, not with catch_warnings, which is not thread-safe.
warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)

_LOCK = threading.Lock()
_DETECTOR = None


class _Detector(torch.nn.Module):
    """Silero VAD's 16 kHz network with its frame loop reordered: front end over all frames, then the LSTM.

    Rebuilt from the package's TorchScript file as plain layers with its weights (a Fourier basis as a strided
    convolution, four 1-D convolutions, an LSTM cell run as an LSTM, a 1x1 convolution), so that it also exports
    to ONNX (`ser.export`)."""

    def __init__(self, jit: torch.jit.ScriptModule):
        super().__init__()
        net = jit._model  # the 16 kHz network: STFT -> conv encoder -> LSTM cell -> ReLU, 1x1 conv, sigmoid
        self.context = int(net.context_size_samples)  # samples of the previous frame each frame also sees
        self.hop, self.n_fft = int(net.stft.hop_length), int(net.stft.filter_length)
        self.register_buffer("basis", net.stft.forward_basis_buffer.detach().clone())  # (2 * bins, 1, n_fft)
        convs = [block.reparam_conv for block in net.encoder.children()]
        self.encoder = torch.nn.ModuleList()
        for conv, stride in zip(convs, ENCODER_STRIDES):  # each a 3-wide conv + ReLU
            layer = torch.nn.Conv1d(conv.weight.shape[1], conv.weight.shape[0], 3, stride=stride, padding=1)
            layer.load_state_dict({"weight": conv.weight, "bias": conv.bias})
            self.encoder.append(layer)
        cell, out = net.decoder.rnn, dict(net.decoder.decoder.named_children())["2"]
        self.lstm = torch.nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True)
        self.out = torch.nn.Conv1d(out.weight.shape[1], 1, 1)
        with torch.no_grad():  # an LSTM over a sequence is exactly the cell stepped through it
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.lstm, f"{name}_l0").copy_(getattr(cell, name))
            self.out.load_state_dict({"weight": out.weight, "bias": out.bias})
        self.requires_grad_(False)
        self.eval()

    def front(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows (frames, context + FRAME) -> features (frames, 128): magnitude spectrum, then the encoder."""
        x = torch.nn.functional.pad(windows, (0, self.n_fft // 4), mode="reflect").unsqueeze(1)
        spec = torch.nn.functional.conv1d(x, self.basis, stride=self.hop)
        bins = self.n_fft // 2 + 1
        x = torch.sqrt(spec[:, :bins] ** 2 + spec[:, bins:] ** 2)
        for layer in self.encoder:
            x = torch.relu(layer(x))
        return x.squeeze(-1)

    def windows(self, audio: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> (..., frames, context + FRAME): each frame with the context before it; the last
        zero-padded."""
        lead, tail = audio.new_zeros(*audio.shape[:-1], self.context), audio.new_zeros(*audio.shape[:-1], FRAME - 1)
        padded = torch.cat([lead, audio, tail], dim=-1)
        frames = (audio.shape[-1] + FRAME - 1) // FRAME
        index = torch.arange(frames).unsqueeze(1) * FRAME + torch.arange(self.context + FRAME).unsqueeze(0)
        return padded[..., index]

    def scores(self, features: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        """Features (frames, 128) -> speech probability per frame (frames,), and the LSTM's state after them."""
        hidden, state = self.lstm(features.unsqueeze(0), state)  # (1, frames, 128)
        return torch.sigmoid(self.out(torch.relu(hidden[0]).unsqueeze(-1))).reshape(-1), state

    @torch.inference_mode()
    def batch(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech probability per frame (B, frames) of B rows of 16 kHz audio (B, samples), each row judged on its own
        from a fresh state, as `forward` judges one (the rows share the passes; a row's zeros past its end do not
        change its frames before them)."""
        windows = self.windows(audio)  # (rows, frames, context + FRAME)
        rows, frames = windows.shape[:2]
        features = self.front(windows.reshape(rows * frames, -1)).reshape(rows, frames, -1)
        hidden, _ = self.lstm(features)  # (rows, frames, 128)
        return torch.sigmoid(self.out(torch.relu(hidden).transpose(1, 2))).squeeze(1)

    @torch.inference_mode()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech probability per frame, (frames,), of 16 kHz audio (samples,); the last frame zero-padded."""
        windows, state, probs = self.windows(audio), None, []
        for start in range(0, len(windows), BATCH_FRAMES):
            p, state = self.scores(self.front(windows[start : start + BATCH_FRAMES]), state)
            probs.append(p)
        return torch.cat(probs) if probs else torch.zeros(0)


def _detector() -> _Detector:
    global _DETECTOR
    with _LOCK:
        if _DETECTOR is None:
            # Load the packaged model file without importing silero_vad: its import calls
            # torch.set_num_threads(1), which would slow every other torch computation in the process.
            spec = importlib.util.find_spec("silero_vad")
            if spec is None or spec.origin is None:
                raise ImportError("speech detection needs the silero-vad package: pip install -r requirements.txt")
            path = Path(spec.origin).parent / "data" / "silero_vad.jit"
            _DETECTOR = _Detector(torch.jit.load(str(path), map_location="cpu"))
        return _DETECTOR


def speech_probabilities(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Probability that each 32 ms frame (`FRAME_SECONDS`) of mono audio (samples,) is speech, shape (frames,).

    Frame i covers seconds [i * FRAME_SECONDS, (i + 1) * FRAME_SECONDS). Each call judges its input at its own
    level (scaled to a peak of `VAD_PEAK`). Thread-safe. Long inputs are fine (about 1 ms per second of audio on an
    idle core); for very long recordings feed blocks of a minute or so, e.g. from `audio.stream_audio`: each block
    starts the detector afresh and at its own level.
    """
    return _detector()(torch.from_numpy(_prepared(audio, sample_rate)))[LEAD_FRAMES:].numpy()


def block_speech_probabilities(blocks: list[np.ndarray], sample_rate: int, side_by_side: int = 32) -> list[np.ndarray]:
    """`speech_probabilities` of each block (samples_i,), the same to float rounding, `side_by_side` blocks at a
    time: each block starts the detector afresh, so blocks of one recording are independent and share its passes
    (for 2 s blocks about 5 times faster than one at a time)."""
    out = []
    for start in range(0, len(blocks), side_by_side):
        part = [_prepared(b, sample_rate) for b in blocks[start : start + side_by_side]]
        width = max(len(p) for p in part)
        probs = _detector().batch(torch.from_numpy(np.stack([np.pad(p, (0, width - len(p))) for p in part])))
        out += [row[LEAD_FRAMES : (len(p) + FRAME - 1) // FRAME].numpy() for row, p in zip(probs, part)]
    return out


def _prepared(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """What the detector is fed: mono audio (samples,) scaled to its peak level, at its rate, after its lead-in."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (VAD_PEAK / peak)
    if sample_rate != VAD_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=VAD_RATE, res_type="soxr_hq")
    return np.concatenate([np.zeros(LEAD_FRAMES * FRAME, np.float32), audio])


def speech_fraction(audio: np.ndarray, sample_rate: int, threshold: float = SPEECH_THRESHOLD) -> float:
    """Share of the 32 ms frames of mono audio (samples,) that the detector judges speech, in [0, 1]."""
    return speech_share(speech_probabilities(audio, sample_rate), threshold)


def speech_share(probs: np.ndarray, threshold: float = SPEECH_THRESHOLD) -> float:
    """Share of frames whose speech probabilities (frames,) are at least `threshold`, in [0, 1]; 0 for none."""
    return float(np.mean(probs >= threshold)) if probs.size else 0.0
