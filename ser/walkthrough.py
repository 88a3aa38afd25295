"""How the model hears one clip, step by step: the intermediate results its own front end and network compute.

    waveform (`Analysis.audio`) -> power spectrogram (STFT, linear frequency) -> mel power (mel scale) -> log-mel in
    dB (`Analysis.mel`, the model's input) -> feature maps of the conv blocks -> probabilities (`Analysis.probs`)

Each step is recomputed by the very functions inference uses (`ser.features`, `SERModel`) with the analysis' own
feature settings, so a picture drawn from it is what the model computed, not an illustration of it.
"""

import numpy as np
import torch

from .features import power_to_mel, stft_power
from .inference import Analysis
from .model import SERModel

MAPS_SHOWN = 4  # feature maps per block: enough to see that filters differ, few enough to read on a phone


def power_spectrogram(analysis: Analysis) -> np.ndarray:
    """STFT power of the analysed audio, (n_fft // 2 + 1, frames): linear frequency, linear loudness."""
    audio = torch.from_numpy(np.ascontiguousarray(analysis.audio, dtype=np.float32))
    return stft_power(audio, analysis.features).numpy()


def mel_power(analysis: Analysis) -> np.ndarray:
    """The STFT power summed into the model's mel bands, (n_mels, frames), before the logarithm."""
    return power_to_mel(torch.from_numpy(power_spectrogram(analysis)), analysis.features).numpy()


def most_active(maps: torch.Tensor, n: int = MAPS_SHOWN) -> tuple[np.ndarray, list[int]]:
    """The `n` feature maps of (C, F, T) with the highest mean activation, strongest first, and their channels."""
    order = torch.argsort(maps.mean(dim=(1, 2)), descending=True)[:n].tolist()
    return maps[order].numpy(), order


def layer_maps(model: SERModel, analysis: Analysis) -> list[tuple[str, np.ndarray, list[int]]]:
    """(name, maps (n, F, T), channels) of the first and the last conv block ("first layer", "last layer"): their
    most active feature maps for the analysis' log-mel, from the model that made the analysis."""
    blocks = model.block_outputs(torch.from_numpy(analysis.mel))
    first, last = most_active(blocks[0]), most_active(blocks[-1])
    return [("first layer", *first), ("last layer", *last)]
