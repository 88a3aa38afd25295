"""The "How it works" tab (`ser.app.how_it_works`): each step's picture is what the model's own functions computed."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import speech_like, write

from ser import walkthrough
from ser.app.how_it_works import decibel_chart, layers_chart, mel_scale_chart, stft_chart, waveform_chart
from ser.app.serving import Result, analyse_upload
from ser.features import power_to_log_mel


@pytest.fixture(scope="module")
def analysed(model, tmp_path_factory):
    path = write(tmp_path_factory.mktemp("clip") / "voice.wav", speech_like(2.0, f0=160))
    return analyse_upload(model, str(path))


def test_waveform_has_seconds_axis(model, wav):
    result = analyse_upload(model, str(wav))
    ax = waveform_chart(result).axes[0]
    assert ax.get_xlabel() == "seconds" and ax.get_ylabel() == "air pressure" and not ax.get_yticks().size
    assert ax.get_xlim()[1] == pytest.approx(len(result.analysis.audio) / model.feature_config.sample_rate, rel=1e-3)


def test_each_step_is_what_the_models_own_functions_computed(model, analysed):
    a, cfg = analysed.analysis, analysed.analysis.features
    power = walkthrough.power_spectrogram(a)
    assert power.shape == (cfg.n_fft // 2 + 1, a.mel.shape[1])
    mel_power = walkthrough.mel_power(a)
    assert mel_power.shape == a.mel.shape
    # the log of step 3 is step 4, the model's input
    np.testing.assert_allclose(power_to_log_mel(torch.from_numpy(power), cfg).numpy(), a.mel, atol=1e-4)

    stft = stft_chart(analysed).axes[0]
    np.testing.assert_allclose(np.asarray(stft.images[0].get_array()), power / power.max(), rtol=1e-6)
    assert stft.get_ylabel() == "pitch (Hz)" and stft.images[0].get_extent()[3] == cfg.sample_rate / 2
    assert f"{cfg.frames_per_second:g} slices a second" in stft.get_title().replace("\n", " ")
    mel = mel_scale_chart(analysed).axes[0]
    np.testing.assert_allclose(np.asarray(mel.images[0].get_array()), mel_power / mel_power.max(), rtol=1e-6)
    db = decibel_chart(analysed)
    np.testing.assert_array_equal(np.asarray(db.axes[0].images[0].get_array()), a.mel)
    assert [t.get_text() for t in db.axes[1].get_yticklabels()] == ["quiet", "loud"]


def test_layers_show_the_most_active_feature_maps_of_the_first_and_last_block(model, analysed):
    a = analysed.analysis
    blocks = model.block_outputs(torch.from_numpy(a.mel))
    assert len(blocks) == sum(w != "M" for w in model.config.widths)
    last_relu = max(i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.ReLU))
    with torch.inference_mode():  # the last block's output: what the head reads (after a max-pool, if any)
        x = model.features[: last_relu + 1](model.normalize(torch.from_numpy(a.mel)[None]).unsqueeze(1))[0]
    torch.testing.assert_close(blocks[-1], x)
    assert blocks[0].shape[1:] == a.mel.shape
    (first_name, first, first_ch), (last_name, last, last_ch) = walkthrough.layer_maps(model, a)
    assert first.shape == (walkthrough.MAPS_SHOWN, *a.mel.shape) and first_name == "first layer"
    means = blocks[0].mean(dim=(1, 2))
    assert means[first_ch[0]] == means.max() and list(means[first_ch]) == sorted(means[first_ch], reverse=True)
    assert last.shape[0] == min(walkthrough.MAPS_SHOWN, blocks[-1].shape[0]) and last_name == "last layer"

    before = set(plt.get_fignums())
    fig = layers_chart(analysed)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(first) + len(last)
    np.testing.assert_array_equal(np.asarray(images[0].get_array()), first[0])
    assert not any(ax.get_title() for ax in fig.axes)  # no "filter 238": the rows say which layer
    assert layers_chart(Result(a)) is None  # no model: nothing to look inside
    assert set(plt.get_fignums()) == before
