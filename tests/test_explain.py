"""Why this emotion: the saliency map points where the class evidence is, on a task where we know where it is."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ser import plots
from ser.explain import CAM_ROWS, cam_layer, explain
from ser.features import FeatureConfig
from ser.model import ModelConfig, SERModel

# Synthetic log-mels (64 bands x 100 frames of noise in dB): class "low" carries a 25 dB patch in bands 8-15 over
# frames 20-39, class "high" one in bands 44-51 over frames 60-79, class "none" neither. Only the patch tells
# "low" and "high" from "none", so the evidence for each sits in its patch and nowhere else.
REGIONS = {"low": (slice(8, 16), slice(20, 40)), "high": (slice(44, 52), slice(60, 80))}
LABELS = ["low", "high", "none"]


def mels(classes: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    x = rng.normal(-50, 6, size=(len(classes), 64, 100)).astype(np.float32)
    for m, c in zip(x, classes):
        if LABELS[c] in REGIONS:
            m[REGIONS[LABELS[c]]] += 25
    return torch.from_numpy(x)


@pytest.fixture(scope="module")
def trained():
    """A small SERModel trained for 60 steps (seconds) on the synthetic task; seeds 0 to 5 all learn it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest, and spares a busy machine
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = SERModel(ModelConfig(labels=LABELS, features=FeatureConfig(), widths=[8, "M", 16, "M"], hidden=16))
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        model.train()
        for _ in range(60):
            y = rng.integers(0, 3, 12)
            loss = torch.nn.functional.cross_entropy(model(mels(y, rng)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()
    finally:
        torch.set_num_threads(threads)


def region_mask(name: str) -> np.ndarray:
    mask = np.zeros((64, 100), bool)
    mask[REGIONS[name]] = True
    return mask


@pytest.mark.parametrize("name", ["low", "high"])
def test_the_heatmap_points_at_the_region_that_carries_the_class(trained, name):
    rng = np.random.default_rng(7)
    inside = region_mask(name)
    for mel in mels(np.full(4, LABELS.index(name)), rng):
        e = explain(trained, mel)
        assert e.label == name and e.probability > 0.5  # the model learned the task
        assert e.heat[inside].mean() > 5 * e.heat[~inside].mean()
        row, frame = np.unravel_index(e.heat.argmax(), e.heat.shape)
        assert REGIONS[name][0].start - 2 <= row < REGIONS[name][0].stop + 2  # the brightest spot: its bands


def test_a_chosen_class_is_explained_instead_of_the_top_one(trained):
    mel = mels(np.array([LABELS.index("high")]), np.random.default_rng(8))[0]
    top, other = explain(trained, mel), explain(trained, mel, "low")
    assert top.label == "high" and other.label == "low" and other.probability < top.probability
    inside = region_mask("high")
    assert other.heat[inside].mean() < top.heat[inside].mean()  # the patch speaks for "high", not for "low"
    assert "'low'" in other.guide and "'high'" in top.guide


def test_unknown_emotion_is_refused_with_the_known_ones(trained):
    with pytest.raises(ValueError, match="this model knows: low, high, none"):
        explain(trained, torch.zeros(64, 100), "bored")


def test_heat_is_the_spectrogram_shape_in_zero_to_one():
    torch.manual_seed(0)
    model = SERModel(ModelConfig(labels=LABELS, widths=[8, "M", 16, "M", 32], hidden=8)).eval()
    mel = torch.randn(64, 137) * 10 - 40
    e = explain(model, mel)
    assert e.heat.shape == (64, 137) and e.mel.shape == (64, 137) and np.isfinite(e.heat).all()
    assert e.heat.min() >= 0 and (e.heat.max() == pytest.approx(1) or not e.heat.any())
    probs = model.probabilities(mel)
    assert e.probability == pytest.approx(float(probs.max()), abs=1e-5) and e.label == LABELS[int(probs.argmax())]


def test_the_explained_block_keeps_eight_frequency_rows():
    model = SERModel(ModelConfig(labels=LABELS))  # the default architecture: 64, 32, 16, 8, 4 rows
    i = cam_layer(model)
    assert isinstance(model.features[i], torch.nn.ReLU)
    x = model.features[: i + 1](torch.zeros(1, 1, 64, 40))
    assert x.shape[2] == CAM_ROWS == 8 and x.shape[1] == 128


def test_the_picture_overlays_the_heat_on_the_spectrogram(trained):
    e = explain(trained, mels(np.array([0]), np.random.default_rng(9))[0])
    fig = plots.saliency(e, FeatureConfig())
    ax = fig.axes[0]
    grey, overlay = ax.images
    np.testing.assert_array_equal(np.asarray(grey.get_array()), e.mel)
    alpha = np.asarray(overlay.get_array())[..., 3]
    assert alpha.shape == e.heat.shape and alpha[region_mask("low")].mean() > 3 * alpha[~region_mask("low")].mean()
    assert " ".join(ax.get_title().split()) == e.guide  # wrapped to the picture's width (plots.titled)
    assert e.guide.startswith("Brighter: this part pushed the model towards 'low'")
    plt.close(fig)
