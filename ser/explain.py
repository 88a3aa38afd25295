"""Why this emotion? A LayerCAM saliency map over the log-mel spectrogram the model read.

LayerCAM (Jiang et al., 2021), a refinement of Grad-CAM: take the feature maps of one conv block, weight every
unit by how much the class's score rises when that unit rises (the positive part of its gradient), add over
channels. Bright regions are where the block found what pushed the score of that class up. One forward and one
backward pass, so it costs about three analyses, even for a 30 s clip. Grad-CAM's one weight per channel (the
gradient averaged over the map) would miss half of this model: the gradient of the standard-deviation pooling
averages to zero over time, so evidence the model reads through it would not show.

The block is the deepest one that still resolves CAM_ROWS frequency rows: the last block sees the most but only 4
rows of 64 mel bands; one block earlier keeps 8 rows (about 8 mel bands each) and 80 ms in time. The map is
interpolated back to the spectrogram's bands and frames.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import SERModel

CAM_ROWS = 8  # frequency rows the explained block must keep; see the module docstring


@dataclass
class Explanation:
    """Where in a log-mel the model found evidence for one class."""

    label: str  # the class explained
    probability: float  # its calibrated probability for this input
    heat: np.ndarray  # (n_mels, frames) in [0, 1]: 1 where the evidence for `label` was strongest; all 0 if none
    mel: np.ndarray  # (n_mels, frames) the log-mel in dB that was explained

    @property
    def guide(self) -> str:
        """One line on how to read the picture."""
        if not self.heat.any():
            return f"Nothing in particular pushed the model towards '{self.label}' ({self.probability:.0%})."
        return f"Brighter: this part pushed the model towards '{self.label}' ({self.probability:.0%})."


def cam_layer(model: SERModel) -> int:
    """Index in `model.features` of the ReLU that ends the deepest block with at least CAM_ROWS frequency rows."""
    rows, best = model.feature_config.n_mels, None
    for i, layer in enumerate(model.features):
        if isinstance(layer, nn.MaxPool2d):
            rows //= 2
        elif isinstance(layer, nn.ReLU) and (rows >= CAM_ROWS or best is None):
            best = i
    assert best is not None, "a model has at least one conv block"
    return best


def explain(model: SERModel, mel: np.ndarray | torch.Tensor, label: str | None = None) -> Explanation:
    """Grad-CAM of `label` (default: the most probable class) for one log-mel (n_mels, frames) in dB, made with
    the model's `feature_config`. Raises ValueError for a label the model does not know."""
    if label is not None and label not in model.labels:
        raise ValueError(f"unknown emotion '{label}'; this model knows: {', '.join(model.labels)}")
    mel = torch.as_tensor(mel, dtype=torch.float32)
    model.eval()
    split = cam_layer(model) + 1
    with torch.enable_grad():
        maps = model.features[:split](model.normalize(mel[None]).unsqueeze(1))  # (1, C, F', T')
        logits = model.head(model.pool(model.features[split:](maps)))[0]  # (n_classes,)
        target = int(logits.argmax()) if label is None else model.labels.index(label)
        (grad,) = torch.autograd.grad(logits[target], maps)
    with torch.no_grad():
        cam = (F.relu(grad) * maps).sum(dim=1, keepdim=True)  # (1, 1, F', T'); maps >= 0 after the ReLU
        cam = F.interpolate(cam, size=mel.shape, mode="bilinear", align_corners=False)[0, 0]
        peak = float(cam.max())
        heat = (cam / peak if peak > 0 else torch.zeros_like(cam)).numpy()
        probability = float(F.softmax(logits / model.config.temperature, dim=-1)[target])
    return Explanation(model.labels[target], probability, heat, mel.numpy())
