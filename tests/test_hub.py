"""Loading from folders and Hub ids (offline here), and pushing, intercepted at the huggingface_hub boundary."""

import hashlib
import json
import shutil

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch
from conftest import speech_like
from huggingface_hub import HfApi

import ser.hub
from ser.hub import ModelError, load_model, push
from ser.model import SERModel


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and no token: HF_HUB_OFFLINE for this process (the constant is read at import) and an empty cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def hub_calls(monkeypatch):
    """Record every call that would create or change something on the Hub instead of making it."""
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kw):
        files = {p.name: p.read_bytes() for p in sorted(folder_path.iterdir())}
        calls.append(("upload_folder", repo_id, files))
        return f"https://huggingface.co/{repo_id}/commit/0123abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.fixture
def checkpoint(model_dir, tmp_path):
    """A full checkpoint folder: weights, config, model card and metrics."""
    folder = tmp_path / "ckpt"
    shutil.copytree(model_dir, folder)
    (folder / "README.md").write_text("---\nlibrary_name: ser\nlicense: other\n---\n# Our own model card\n")
    (folder / "metrics.json").write_text(json.dumps({"validation": {"folder": {"uar": 0.5}}}))
    return folder


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_load_model_from_a_folder(model_dir, offline):
    model, notice = load_model(model_dir)
    assert notice is None and isinstance(model, SERModel)
    assert model.labels == json.loads((model_dir / "config.json").read_text())["labels"]
    assert model.predict_proba(speech_like(1.0)).sum().item() == pytest.approx(1, abs=1e-5)


def test_folder_without_a_checkpoint_is_a_clear_error(tmp_path, offline):
    (tmp_path / "config.json").write_text("{}")
    for name in (tmp_path, tmp_path / "missing", "./relative/missing/model"):
        with pytest.raises(ModelError, match="config.json and model.safetensors"):
            load_model(name)


def test_hub_id_offline_falls_back_to_the_shipped_default_with_a_notice(model_dir, offline, monkeypatch):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)

    model, notice = load_model("someone/ser-model")

    assert "someone/ser-model" in notice and "default" in notice and "\n" not in notice
    expected = SERModel.from_pretrained(model_dir)
    clip = speech_like(1.0)
    assert torch.equal(model.predict_proba(clip), expected.predict_proba(clip))


def test_hub_id_offline_without_fallback_is_a_model_error(offline, model_dir, monkeypatch):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)
    with pytest.raises(
        ModelError, match="'someone/ser-model' is not a local folder.*could not be loaded.*pass a local folder"
    ):
        load_model("someone/ser-model", fallback=False)


def test_none_means_the_default_model(model_dir, monkeypatch, offline):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)
    model, notice = load_model(None)
    assert notice is None and model.labels == SERModel.from_pretrained(model_dir).labels


def test_push_without_token_creates_nothing(checkpoint, offline, hub_calls):
    before = digests(checkpoint)
    with pytest.raises(ModelError, match="no Hugging Face token.*HF_TOKEN") as err:
        push(checkpoint, "someone/ser-model")
    assert "\n" not in str(err.value)
    assert hub_calls == []
    assert digests(checkpoint) == before


def test_push_with_a_token_but_no_network_creates_nothing(checkpoint, offline, hub_calls):
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub"):
        push(checkpoint, "someone/ser-model", token="hf_fake")
    assert hub_calls == []


def test_push_with_a_rejected_token_creates_nothing(checkpoint, hub_calls, monkeypatch):
    import httpx

    def whoami(self, *a, **kw):
        response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/whoami-v2"))
        raise huggingface_hub.errors.HfHubHTTPError("Invalid credentials", response=response)

    monkeypatch.setattr(HfApi, "whoami", whoami)
    with pytest.raises(ModelError, match="rejected the token \\(401\\)"):
        push(checkpoint, "someone/ser-model", token="hf_bad")
    assert hub_calls == []


def test_push_uploads_the_whole_checkpoint_folder_in_one_commit(checkpoint, hub_calls, monkeypatch):
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **kw: {"name": "someone"})
    before = digests(checkpoint)

    url = push(checkpoint, "someone/ser-model", token="hf_fake", private=True)

    assert url.startswith("https://huggingface.co/someone/ser-model")
    assert [c[0] for c in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[0][1] == "someone/ser-model" and hub_calls[0][2]["private"] is True
    uploaded = hub_calls[1][2]
    assert {"config.json", "model.safetensors", "README.md", "metrics.json"} <= set(uploaded)
    assert uploaded["README.md"] == (checkpoint / "README.md").read_bytes()  # our card, not a generated one
    assert uploaded["metrics.json"] == (checkpoint / "metrics.json").read_bytes()
    assert uploaded["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()
    assert json.loads(uploaded["config.json"]) == json.loads((checkpoint / "config.json").read_text())
    assert not [n for n in uploaded if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert digests(checkpoint) == before


def test_push_failure_during_upload_is_a_model_error(checkpoint, hub_calls, monkeypatch):
    monkeypatch.setattr(HfApi, "whoami", lambda self, *a, **kw: {"name": "someone"})

    def upload_folder(self, **kw):
        raise huggingface_hub.errors.HfHubHTTPError("403 Forbidden: you cannot write to this repo\nmore detail")

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    with pytest.raises(ModelError, match="push to 'someone/ser-model' failed") as err:
        push(checkpoint, "someone/ser-model", token="hf_fake")
    assert "\n" not in str(err.value)


def test_push_of_a_folder_that_is_not_a_checkpoint_fails_before_the_hub(tmp_path, hub_calls):
    with pytest.raises(ModelError, match="no model at"):
        push(tmp_path, "someone/ser-model", token="hf_fake")
    assert hub_calls == []
