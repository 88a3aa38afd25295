"""The VGG-style CNN over log-mel spectrograms, saved and loaded through PyTorchModelHubMixin.

A checkpoint is a folder with `config.json` (architecture, labels, feature settings, temperature)
and `model.safetensors`, the same locally, in `checkpoints/` and on the Hugging Face Hub; and, when the model has
a second listener (`ser.voice`), its three files beside them, loaded into `SERModel.voice`.
"""

import contextlib
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors import safe_open

from .features import FeatureConfig
from .voice import LISTENER_FILES, Voice, load_voice

# Files that travel with a checkpoint folder (model card, metrics, plots) when a loaded model is saved or pushed.
ARTIFACT_SUFFIXES = (".md", ".json", ".png")


@dataclass
class ModelConfig:
    labels: list[str]
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # VGG stack as data: an int is a 3x3 conv + batch-norm + ReLU block of that width, "M" a 2x2 max-pool.
    widths: list = field(default_factory=lambda: [16, "M", 32, "M", 64, "M", 128, "M", 256])
    hidden: int = 256  # width of the head's hidden layer
    dropout: float = 0.3
    norm: str = "band"  # per-utterance input normalisation: "band" (each mel band's mean) or "global"
    temperature: float = 1.0  # divides logits; fitted on held-out speakers after training (train.py)

    def __post_init__(self):
        if isinstance(self.features, dict):  # read back from config.json
            self.features = FeatureConfig(**self.features)
        self.labels = list(self.labels)


class SERModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="ser",
    tags=["audio-classification", "speech-emotion-recognition", "pytorch"],
    pipeline_tag="audio-classification",
):
    """Log-mel (B, n_mels, T) in dB -> emotion logits (B, n_classes); T may be any length."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        layers, in_ch, n_freq = [], 1, config.features.n_mels
        for w in config.widths:
            if w == "M":
                layers.append(nn.MaxPool2d(2))
                n_freq //= 2
            else:
                layers += [nn.Conv2d(in_ch, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                in_ch = w
        self.features = nn.Sequential(*layers)
        # Mean and standard deviation over time of every (channel, frequency) unit: a fixed-size
        # summary of any clip length, keeping where in frequency the energy sits.
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(2 * in_ch * n_freq, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, len(config.labels)),
        )
        self.source_dir: Path | None = None  # the folder it was loaded from, for its artifacts
        self.voice: Voice | None = None  # the second listener, when the checkpoint has one (ser.voice)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @property
    def feature_config(self) -> FeatureConfig:
        return self.config.features

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Per-utterance normalisation, (B, n_mels, T) -> same: remove the mean ("band": each band's
        mean over time, which cancels gain and microphone EQ; "global": one mean, which cancels gain)
        and scale by the clip's overall standard deviation."""
        mel = mel - mel.mean(dim=-1 if self.config.norm == "band" else (-2, -1), keepdim=True)
        return mel / (mel.std(dim=(-2, -1), keepdim=True) + 1e-5)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 2 * C * F') utterance embedding."""
        return self.pool(self.features(self.normalize(mel).unsqueeze(1)))

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, C, F', T') -> (B, 2 * C * F'): each unit's mean and standard deviation over time."""
        x = maps.flatten(1, 2)  # (B, C * F', T')
        return torch.cat([x.mean(dim=-1), x.std(dim=-1)], dim=1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits (B, n_classes); divide by `config.temperature` for calibrated ones."""
        return self.head(self.embed(mel))

    @torch.inference_mode()
    def probabilities(self, mel: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities (n_classes,) from one log-mel (n_mels, T) made with `feature_config`, or
        (B, n_classes) from a batch (B, n_mels, T) of equally long ones."""
        self.eval()
        logits = self(mel if mel.dim() == 3 else mel.unsqueeze(0)) / self.config.temperature
        return F.softmax(logits if mel.dim() == 3 else logits[0], dim=-1)

    @torch.inference_mode()
    def block_outputs(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """What each conv block responds to in one log-mel (n_mels, T): its feature maps after the ReLU, one
        (C, F', T') tensor per block, first to last (F' and T' halve after each max-pool)."""
        self.eval()
        x, maps = self.normalize(mel.unsqueeze(0)).unsqueeze(1), []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                maps.append(x[0].clone())  # the ReLU works in place: keep a copy of this block's output
        return maps

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        if self.source_dir is not None and Path(self.source_dir).resolve() != Path(save_directory).resolve():
            for f in sorted(self.source_dir.iterdir()):
                if (
                    f.is_file()
                    and (f.suffix in ARTIFACT_SUFFIXES or f.name in LISTENER_FILES)
                    and f.name != "config.json"
                ):
                    shutil.copy2(f, Path(save_directory) / f.name)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs) -> "SERModel":
        # Strict by default: a weights file that lacks some of the model's tensors must fail, not leave them random.
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints a notice; stdout carries CLI results
                model = super()._from_pretrained(model_id=model_id, strict=strict, **kwargs)
        except RuntimeError as e:  # safetensors' strict check, or a tensor of the wrong shape
            raise ValueError(weights_mismatch(cls(kwargs["config"]), Path(model_id), e)) from None
        if Path(model_id).is_dir():
            model.source_dir = Path(model_id)
            model.voice = load_voice(model_id)  # None for a CNN-only checkpoint
        return model


def weights_mismatch(model: SERModel, folder: Path, error: RuntimeError) -> str:
    """One line on why `folder`'s model.safetensors does not fit `model` (built from its config.json)."""
    expected = model.state_dict()
    try:
        with safe_open(folder / "model.safetensors", "pt") as f:
            found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception:  # not a folder (a Hub id loaded by the mixin) or an unreadable file: torch's own words
        return " ".join(str(error).split())
    missing = [n for n in expected if n not in found]
    unexpected = [n for n in found if n not in expected]
    wrong = [n for n in expected if n in found and found[n] != tuple(expected[n].shape)]
    parts = [f"lacks {len(missing)} of the model's {len(expected)} tensors"] if missing else []
    parts += [f"holds {len(unexpected)} tensor(s) the model does not have"] if unexpected else []
    parts += [f"has {len(wrong)} tensor(s) of another shape"] if wrong else []
    first = (missing or unexpected or wrong or ["?"])[0]
    return f"model.safetensors does not fit config.json: it {' and '.join(parts) or 'differs'} (e.g. '{first}')"
