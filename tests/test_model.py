"""The CNN: any input length, probabilities, and the checkpoint folder format (config.json + safetensors, no pickle)."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import speech_like

from ser.evaluate import fit_temperature
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.model import ModelConfig, SERModel

LABELS = ["neutral", "happy", "sad", "angry"]
FC = FeatureConfig()
MIN_FRAMES = FC.min_samples // FC.hop_length + 1  # the shortest input prediction lets through


def small(**kw) -> SERModel:
    torch.manual_seed(0)
    return SERModel(ModelConfig(labels=LABELS, widths=[8, "M", 16, "M"], hidden=16, **kw)).eval()


@pytest.mark.parametrize("widths", [[8, "M", 16, "M"], ModelConfig(labels=LABELS).widths], ids=["small", "default"])
@pytest.mark.parametrize("frames", [MIN_FRAMES, MIN_FRAMES + 1, 137, 301, 3001])
def test_logits_shape_for_any_length_from_the_minimum(widths, frames):
    model = SERModel(ModelConfig(labels=LABELS, widths=widths)).eval()
    mel = torch.randn(2, FC.n_mels, frames) * 10 - 40
    with torch.no_grad():
        logits = model(mel)
    assert logits.shape == (2, len(LABELS))
    assert torch.isfinite(logits).all()


def probs_of(model: SERModel, clip: np.ndarray) -> torch.Tensor:
    return model.probabilities(log_mel_spectrogram(clip, model.feature_config))


def test_probabilities_sum_to_one_for_different_lengths():
    model = small()
    for seconds in (0.5, 1.3, 4.0):
        probs = probs_of(model, speech_like(seconds))
        assert probs.shape == (len(LABELS),)
        assert (probs >= 0).all() and probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_temperature_divides_logits():
    model = small()
    clip = speech_like(1.0)
    logits = model(log_mel_spectrogram(clip, FC)[None]).detach()[0]
    model.config.temperature = 2.5
    torch.testing.assert_close(probs_of(model, clip), torch.softmax(logits / 2.5, dim=-1))
    flat = probs_of(model, clip)
    model.config.temperature = 0.5
    assert probs_of(model, clip).max() > flat.max()  # colder: more confident


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.0])
def test_fitted_temperature_recovers_the_one_labels_were_drawn_with(true_t):
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 8, generator=g)
    labels = torch.multinomial(torch.softmax(logits / true_t, dim=1), 1, generator=g)[:, 0]
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)


def test_fitted_temperature_stays_in_range_when_the_logits_separate_every_clip():
    logits = 50 * torch.randn(36, 3, generator=torch.Generator().manual_seed(0))
    assert fit_temperature(logits, logits.argmax(dim=1)) == 0.05  # the lower bound, not NaN
    assert fit_temperature(logits, (logits.argmax(dim=1) + 1) % 3) == 20.0  # always wrong: as flat as allowed


def test_eval_output_does_not_depend_on_the_rest_of_the_batch():
    model = small()
    a, b = log_mel_spectrogram(np.stack([speech_like(1.0, seed=1), speech_like(1.0, seed=2, f0=250)]), FC)
    with torch.no_grad():
        torch.testing.assert_close(model(torch.stack([a, b]))[0], model(a[None])[0], atol=1e-4, rtol=0)


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path):
    model = small(temperature=1.7, features=FeatureConfig(n_mels=48, top_db=70.0))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = SERModel.from_pretrained(tmp_path / "ckpt")

    assert loaded.config == model.config
    assert isinstance(loaded.feature_config, FeatureConfig) and loaded.feature_config.n_mels == 48
    clip = speech_like(1.2, seed=9)
    assert torch.equal(probs_of(loaded, clip), probs_of(model, clip))
    state = loaded.state_dict()
    assert state.keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.equal(state[name], value), name


def test_checkpoint_folder_is_json_and_safetensors_only(tmp_path):
    model = small(temperature=0.8)
    model.save_pretrained(tmp_path)

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["labels"] == LABELS
    assert config["temperature"] == pytest.approx(0.8)
    assert config["features"] == FeatureConfig().to_dict()
    assert config["widths"] == [8, "M", 16, "M"]
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))]
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"PK")  # not a zip (torch.save) file


def test_loading_reads_features_and_labels_from_the_checkpoint(model_dir, tmp_path):
    # a checkpoint trained with other feature settings must be fed those, not the module defaults
    folder = tmp_path / "other"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["features"]["top_db"] = 50.0
    config["labels"] = ["calm", "fearful", "disgust", "surprised"]
    (folder / "config.json").write_text(json.dumps(config))

    model = SERModel.from_pretrained(folder)

    assert model.feature_config.top_db == 50.0
    assert model.labels == ["calm", "fearful", "disgust", "surprised"]


def test_artifacts_travel_when_a_loaded_model_is_saved_elsewhere(model_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(model_dir, src)
    (src / "README.md").write_text("---\nlibrary_name: ser\n---\n# my card\n")
    (src / "metrics.json").write_text('{"validation": {}}')
    (src / "confusion_matrix_folder.png").write_bytes(b"\x89PNG fake")
    (src / "notes.txt").write_text("not an artifact")

    SERModel.from_pretrained(src).save_pretrained(tmp_path / "dst")

    dst = tmp_path / "dst"
    for name in ("README.md", "metrics.json", "confusion_matrix_folder.png"):
        assert (dst / name).read_bytes() == (src / name).read_bytes(), name
    assert not (dst / "notes.txt").exists()
    assert json.loads((dst / "config.json").read_text()) == json.loads((src / "config.json").read_text())


def test_saving_a_loaded_model_in_place_keeps_its_files(model_dir, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(model_dir, folder)
    (folder / "README.md").write_text("# card\n")
    SERModel.from_pretrained(folder).save_pretrained(folder)
    assert (folder / "README.md").read_text() == "# card\n"
    assert SERModel.from_pretrained(folder).labels == LABELS
