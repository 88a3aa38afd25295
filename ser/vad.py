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

# torch 2.13 deprecates TorchScript loading; silero-vad ships its model as TorchScript (or ONNX, which would need
# onnxruntime). Filtered once here, not with catch_warnings, which is not thread-safe.
warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)

_LOCK = threading.Lock()
_DETECTOR = None


class _Detector(torch.nn.Module):
    """Silero VAD's 16 kHz network with its frame loop reordered: front end over all frames, then the LSTM."""

    def __init__(self, jit: torch.jit.ScriptModule):
        super().__init__()
        net = jit._model  # the 16 kHz network: STFT -> conv encoder -> LSTM cell -> 1x1 conv + sigmoid
        self.context = int(net.context_size_samples)  # samples of the previous frame each frame also sees
        self.front, self.encoder, self.head = net.run_extractors, net.encoder, net.decoder.decoder
        cell = net.decoder.rnn
        self.lstm = torch.nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True)
        with torch.no_grad():  # an LSTM over a sequence is exactly the cell stepped through it
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.lstm, f"{name}_l0").copy_(getattr(cell, name))
        self.eval()

    @torch.inference_mode()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech probability per frame, (frames,), of 16 kHz audio (samples,); the last frame zero-padded."""
        frames = -(-len(audio) // FRAME)
        padded = torch.nn.functional.pad(audio, (self.context, frames * FRAME - len(audio)))
        windows = padded.unfold(0, FRAME + self.context, FRAME)  # (frames, context + FRAME), a view
        state, probs = None, []
        for start in range(0, frames, BATCH_FRAMES):
            features = self.encoder(self.front(windows[start : start + BATCH_FRAMES])).squeeze(-1)  # (b, 128)
            hidden, state = self.lstm(features.unsqueeze(0), state)  # (1, b, 128)
            probs.append(self.head(hidden.squeeze(0).unsqueeze(-1)).reshape(-1))  # (b,)
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
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (VAD_PEAK / peak)
    if sample_rate != VAD_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=VAD_RATE, res_type="soxr_hq")
    lead = np.zeros(LEAD_FRAMES * FRAME, np.float32)
    return _detector()(torch.from_numpy(np.concatenate([lead, audio])))[LEAD_FRAMES:].numpy()


def speech_fraction(audio: np.ndarray, sample_rate: int, threshold: float = SPEECH_THRESHOLD) -> float:
    """Share of the 32 ms frames of mono audio (samples,) that the detector judges speech, in [0, 1]."""
    probs = speech_probabilities(audio, sample_rate)
    return float(np.mean(probs >= threshold)) if probs.size else 0.0
