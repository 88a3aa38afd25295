"""Loading models from a folder or the Hugging Face Hub, and pushing checkpoint folders to it."""

import os
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from .model import SERModel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "default"


class ModelError(RuntimeError):
    """A model that cannot be loaded or pushed; the message says what to do."""


def _is_local(name: str | os.PathLike) -> bool:
    p = Path(name)
    return p.exists() or p.is_absolute() or str(name).startswith((".", "~")) or len(p.parts) != 2


def load_model(name: str | os.PathLike | None = None, fallback: bool = True) -> tuple[SERModel, str | None]:
    """A model from a checkpoint folder or a Hub id ("user/name"); None means the shipped default.

    Returns (model, notice). When a Hub model cannot be fetched and `fallback` is set, the shipped
    default is loaded instead and `notice` says so; otherwise notice is None.
    """
    if name is None or str(name) == "":
        name = DEFAULT_MODEL
    if _is_local(name):
        folder = Path(name).expanduser()
        if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
            raise ModelError(
                f"no model at '{folder}': expected a folder with config.json and model.safetensors "
                "(train one with train.py, or give a Hugging Face Hub id like user/name)"
            )
        return SERModel.from_pretrained(folder), None
    try:
        return SERModel.from_pretrained(str(name)), None
    except Exception as e:  # offline, unknown repo, gated repo, bad files: all mean "not usable"
        reason = f"'{name}' is not a local folder, and could not be loaded from the Hugging Face Hub ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        if not fallback or Path(name) == DEFAULT_MODEL:
            raise ModelError(f"{reason}; check the id and your network, or pass a local folder") from None
        model, _ = load_model(DEFAULT_MODEL, fallback=False)
        return model, f"{reason}; using the shipped default model instead"


def push(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload a checkpoint folder (weights, config, model card, metrics) as one Hub commit; returns its URL.

    Checks the token and the network before creating anything, so a failure leaves no half-made repo.
    """
    model, _ = load_model(folder, fallback=False)
    token = token or get_token()
    if not token:
        raise ModelError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again")
    try:
        HfApi(token=token).whoami()
    except HfHubHTTPError as e:
        raise ModelError(
            f"the Hub rejected the token ({e.response.status_code if e.response is not None else e}); check HF_TOKEN"
        ) from None
    except Exception as e:
        raise ModelError(
            f"cannot reach the Hugging Face Hub ({type(e).__name__}); check the network and push again"
        ) from None
    try:
        return str(model.push_to_hub(repo_id, token=token, private=private, commit_message="Upload SER checkpoint"))
    except Exception as e:
        raise ModelError(f"push to '{repo_id}' failed ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
