"""Training state on disk, so a killed run continues where it stopped (`train.py --resume`).

One safetensors file per fit, rewritten atomically (temp file + rename) after every epoch: model, weight average,
optimizer moments and the torch RNG as tensors; epoch, history and the optimizer's and scheduler's settings as
JSON metadata. No pickles. Batches are drawn from generators seeded by (seed, epoch), so a resumed fit sees the
same batches as one that was never interrupted.
"""

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file


class StateError(RuntimeError):
    """A resume state that cannot be read; the message says what to do."""


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write `tensors` and JSON-able `meta` to `path` atomically: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) written by `save_state`; `StateError` if the file is damaged."""
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = json.loads(f.metadata()["meta"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise StateError(
            f"the saved training state '{path}' is damaged ({type(e).__name__}); delete it to start that fit again"
        ) from None
    return tensors, meta


def pack_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as flat tensors ('opt.<param>.<key>') and JSON (its param groups)."""
    sd = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v for i, state in sd["state"].items() for k, v in state.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def unpack_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, i, key = name.split(".", 2)
            state.setdefault(int(i), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
