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
from safetensors.torch import load_file, save_file

import ser.hub
from ser.hub import ModelError, load_model, push
from ser.inference import analyse
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
    model = load_model(model_dir)
    assert isinstance(model, SERModel) and model.source_dir == model_dir
    assert model.labels == json.loads((model_dir / "config.json").read_text())["labels"]
    assert sum(analyse(model, speech_like(1.0), 16000).probs.values()) == pytest.approx(1, abs=1e-5)


def test_folder_without_a_checkpoint_is_a_clear_error(tmp_path, offline):
    (tmp_path / "config.json").write_text("{}")
    for name in (tmp_path, tmp_path / "missing", "./relative/missing/model"):
        with pytest.raises(ModelError, match="config.json and model.safetensors") as err:
            load_model(name)
        assert "\n" not in str(err.value)


def test_a_typo_in_a_local_path_is_an_error_not_another_model(model_dir, tmp_path, offline, monkeypatch):
    """`runs/heldot` for `runs/heldout`: two parts like a Hub id, but runs/ is a folder here, so it is a folder."""
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)
    shutil.copytree(model_dir, tmp_path / "runs" / "heldout")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="no model at 'runs/heldot'.*did you mean 'runs/heldout'") as err:
        load_model("runs/heldot")
    assert "\n" not in str(err.value)
    assert load_model("runs/heldout").labels == SERModel.from_pretrained(model_dir).labels
    assert ser.hub.hub_id("someone/ser-model") == ("someone/ser-model", None)  # no such folder: a Hub id


@pytest.mark.parametrize(
    "url",
    [
        "https://huggingface.co/someone/ser-model",
        "https://huggingface.co/someone/ser-model/",
        "https://huggingface.co/someone/ser-model/tree/main",
        "hf://someone/ser-model",
    ],
)
def test_hub_urls_name_the_hub_model(url, model_dir, monkeypatch):
    """A URL copied from the browser loads the model it shows (the Hub is intercepted: it hands out `model_dir`)."""
    asked = []
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, **kw: asked.append(("info", repo_id, kw))
                        or huggingface_hub.hf_api.ModelInfo(id=repo_id, sha="0" * 40))  # fmt: skip

    def snapshot_download(repo_id, **kw):
        asked.append(("download", repo_id, kw))
        return str(model_dir)

    monkeypatch.setattr(ser.hub, "snapshot_download", snapshot_download)
    model = load_model(url)
    assert model.labels == SERModel.from_pretrained(model_dir).labels
    assert [(a[0], a[1]) for a in asked] == [("info", "someone/ser-model"), ("download", "someone/ser-model")]
    assert asked[0][2]["revision"] == ("main" if "tree" in url else None)
    assert asked[1][2]["revision"] == "0" * 40 and not asked[1][2]["local_files_only"]
    assert asked[0][2]["timeout"] <= 10  # one short probe


@pytest.mark.parametrize(
    "url",
    [
        "https://huggingface.co/spaces/someone/demo",
        "https://huggingface.co/someone/x/blob/main/a.py",
        "https://example.com/a/b",
    ],
)
def test_urls_that_are_not_hub_models_are_clear_errors(url, offline):
    with pytest.raises(ModelError, match="not the address of a Hugging Face model"):
        load_model(url)


def test_hub_id_offline_is_a_model_error_never_another_model(offline, model_dir, monkeypatch):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)
    probes = []
    monkeypatch.setattr(HfApi, "model_info", lambda *a, **kw: probes.append(a))
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set.*'someone/ser-model' is not in the local") as err:
        load_model("someone/ser-model")
    assert "\n" not in str(err.value) and probes == []  # offline means no request at all


def test_unreachable_hub_fails_after_one_request(model_dir, tmp_path, monkeypatch):
    """No network: one short probe fails, the cache is tried, and no download (with its retries) is attempted."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    calls = []

    def model_info(self, repo_id, **kw):
        calls.append(repo_id)
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", model_info)
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub.*not in the local Hugging Face cache") as e:
        load_model("someone/ser-model")
    assert calls == ["someone/ser-model"]
    # a folder the README's commands would have made, run before they made it: both readings are named
    assert "'someone/ser-model' is neither a checkpoint folder here nor a model from the" in str(e.value)
    with pytest.raises(ModelError) as e:
        load_model("hf://someone/ser-model")  # an address names the Hub only
    assert "neither" not in str(e.value) and "not in the local Hugging Face cache" in str(e.value)


def test_a_cached_hub_model_loads_offline(model_dir, tmp_path, monkeypatch, offline):
    seen = []

    def snapshot_download(repo_id, **kw):
        seen.append(kw)
        return str(model_dir)

    monkeypatch.setattr(ser.hub, "snapshot_download", snapshot_download)
    assert load_model("someone/ser-model").labels == SERModel.from_pretrained(model_dir).labels
    assert seen[0]["local_files_only"] and "model.safetensors" in seen[0]["allow_patterns"]


def test_weights_missing_tensors_are_a_clear_error_not_random_weights(model_dir, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(model_dir, folder)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("head.")}, folder / "model.safetensors")
    with pytest.raises(ModelError, match="does not fit config.json: it lacks 4 of the model's") as err:
        load_model(folder)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
    with pytest.raises(ValueError, match="lacks 4"):
        SERModel.from_pretrained(folder)  # strict by default, also without ser.hub


def test_weights_of_another_shape_or_damaged_are_clear_errors(model_dir, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(model_dir, folder)
    tensors = load_file(folder / "model.safetensors")
    save_file({**tensors, "head.4.bias": torch.zeros(7)}, folder / "model.safetensors")
    with pytest.raises(ModelError, match="1 tensor\\(s\\) of another shape"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(ModelError, match="model.safetensors is damaged"):
        load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json is not valid JSON"):
        load_model(folder)


def test_none_means_the_default_model(model_dir, monkeypatch, offline):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", model_dir)
    assert load_model(None).labels == load_model("").labels == SERModel.from_pretrained(model_dir).labels


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
