"""Finding a model: a checkpoint folder, or a Hugging Face Hub id or URL; and pushing a checkpoint folder to the Hub.

`load_model(name)` returns the model `name` names or raises `ModelError` with one line saying why; it never
substitutes another model. Hub models are fetched (or found in the local Hugging Face cache) into a folder of the
same format as a local checkpoint, so every model loads through one path.
"""

import difflib
import json
import os
from pathlib import Path

import huggingface_hub.constants
from huggingface_hub import HfApi, get_token, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HfUriError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import parse_hf_uri
from safetensors import SafetensorError

from .model import SERModel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "default"
CHECKPOINT_FILES = ("config.json", "model.safetensors")
# What a Hub checkpoint brings with it: weights (the CNN's, and the voice listener's when it has one), config, model
# card, metrics and their plots (no pickles).
HUB_FILES = ["config.json", "model.safetensors", "encoder.safetensors", "voice.safetensors", "*.md", "*.json", "*.png"]
# One short request tells whether the Hub answers. Without it, huggingface_hub retries an unreachable Hub for
# about 25 s per file before giving up, which is how long a Space would take to start while the Hub is down.
PROBE_SECONDS = 5.0


class ModelError(RuntimeError):
    """A model that cannot be loaded or pushed; the message is one line that says what to do."""


def load_model(name: str | os.PathLike | None = None) -> SERModel:
    """The model in a checkpoint folder, or on the Hub ("user/name", "https://huggingface.co/user/name",
    "hf://user/name"); None or "" means the shipped checkpoints/default.

    A name is a folder when it exists, is absolute, starts with "." or "~", has other than two parts, or its
    first part is an existing folder (so a typo in "runs/heldout" is a missing folder, not a Hub id).
    Raises `ModelError` when that model cannot be loaded.
    """
    if name is None or str(name) == "":
        return load_folder(DEFAULT_MODEL)
    hub = hub_id(name)
    if hub is None:
        return load_folder(Path(name).expanduser())
    repo_id, revision = hub
    try:
        folder = fetch(repo_id, revision)
    except ModelError as e:
        if str(name).startswith(("hf://", "http://", "https://")):
            raise
        # "runs/mine" reads as a Hub id only because no such folder exists here: say both
        raise ModelError(
            f"'{name}' is neither a checkpoint folder here nor a model from the Hugging Face Hub: {e}"
        ) from None
    return load_folder(folder, shown_as=f"'{repo_id}' on the Hugging Face Hub")


def hub_id(name: str | os.PathLike) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `name` names a Hub model; None when it names a local folder."""
    text = str(name)
    if text.startswith(("hf://", "http://", "https://")):
        try:
            uri = parse_hf_uri(text)
        except HfUriError:
            uri = None
        if uri is None or uri.type != "model" or uri.path_in_repo:
            raise ModelError(
                f"'{text}' is not the address of a Hugging Face model; give one like https://huggingface.co/user/name"
            )
        return uri.id, uri.revision
    path = Path(text)
    local = path.exists() or path.is_absolute() or text.startswith((".", "~")) or len(path.parts) != 2
    return None if local or Path(path.parts[0]).is_dir() else (text, None)


def fetch(repo_id: str, revision: str | None = None) -> Path:
    """The folder of a Hub checkpoint's files, downloaded or found in the local Hugging Face cache.

    Offline (HF_HUB_OFFLINE=1) only the cache is read. Otherwise one short request checks that the Hub answers
    before anything is downloaded, so an unreachable Hub fails in seconds, not after a minute of retries.
    """
    reason = "HF_HUB_OFFLINE is set" if huggingface_hub.constants.HF_HUB_OFFLINE else None
    if reason is None:
        try:
            revision = HfApi().model_info(repo_id, revision=revision, timeout=PROBE_SECONDS).sha
        except RevisionNotFoundError:
            raise ModelError(f"the Hub model '{repo_id}' has no revision '{revision}'; check the address") from None
        except RepositoryNotFoundError:  # also what a private or gated repo looks like without a token
            raise ModelError(
                f"no model '{repo_id}' on the Hugging Face Hub; check the id, or set HF_TOKEN if it is private"
            ) from None
        except HFValidationError:
            raise ModelError(f"'{repo_id}' is neither a checkpoint folder nor a valid Hub id (user/name)") from None
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else "an error"
            reason = f"the Hugging Face Hub answered {status}"
        except Exception as e:  # no network, DNS, proxy, timeout: all mean "cannot reach the Hub now"
            reason = f"cannot reach the Hugging Face Hub ({type(e).__name__})"
    try:
        return Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES, local_files_only=bool(reason))
        )
    except Exception as e:
        if reason:
            raise ModelError(
                f"{reason} and '{repo_id}' is not in the local Hugging Face cache; "
                "connect to the internet once to download it, or give a local checkpoint folder"
            ) from None
        raise ModelError(f"downloading '{repo_id}' from the Hugging Face Hub failed ({one_line(e)})") from None


def load_folder(folder: Path, shown_as: str | None = None) -> SERModel:
    """The model in a checkpoint folder (config.json + model.safetensors), loaded strictly."""
    shown_as = shown_as or f"'{folder}'"
    missing = [f for f in CHECKPOINT_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(
            f"no model at {shown_as}: expected a folder with config.json and model.safetensors, "
            f"{' and '.join(missing)} missing{near_miss(folder)} "
            "(train one with train.py, or give a Hugging Face Hub id like user/name)"
        )
    try:
        return SERModel.from_pretrained(folder)
    except json.JSONDecodeError as e:
        reason = f"config.json is not valid JSON ({e})"
    except SafetensorError as e:
        reason = f"model.safetensors is damaged ({e})"
    except Exception as e:  # a config from another program, weights that do not fit it
        reason = one_line(e)
    raise ModelError(f"cannot load the model at {shown_as}: {reason}; copy or download the checkpoint again")


def near_miss(folder: Path) -> str:
    """'; did you mean ...?' naming a checkpoint folder beside `folder` with a similar name, or ''."""
    parent = folder.parent if folder.parent.is_dir() else None
    if parent is None or folder.is_dir():
        return ""
    siblings = [p.name for p in parent.iterdir() if (p / "config.json").is_file()]
    match = difflib.get_close_matches(folder.name, siblings, n=1)
    return f"; did you mean '{parent / match[0]}'?" if match else ""


def one_line(e: BaseException) -> str:
    """An exception as one line: its first non-empty line, or its type when it has no message."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def push(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload a checkpoint folder (weights, config, model card, metrics) as one Hub commit; returns its URL.

    Checks the token and the network before creating anything, so a failure leaves no half-made repo.
    """
    model = load_folder(Path(folder).expanduser())
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
        raise ModelError(f"push to '{repo_id}' failed ({one_line(e)})") from None
