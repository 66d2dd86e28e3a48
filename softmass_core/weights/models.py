"""Model construction and safetensors I/O for weight sets.

Every model is a timm classifier whose classifier was replaced, as the paper
only changes the fully connected layer: a ConvNeXt as in the paper, or a
network of timm's EfficientNet family (the split forward the cascade and
Grad-CAM need is :mod:`softmass_core.weights.backbone`).  A model may be an
ensemble: several member files of one architecture (``members`` in the
manifest), each loaded here as its own network.  Weights are stored as
safetensors (optionally fp16 for size) and computed in fp32.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch
from torch import nn

from softmass_core.errors import SoftmassError, WeightsError
from softmass_core.weights.checkpoint import shapes_of, tensor_mismatch
from softmass_core.weights.manifest import Architecture, ModelEntry, sha256_file

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(name: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` (or ``cuda:N``) or ``auto`` (a GPU when one is visible) as a torch device.

    Anything else, or cuda without a visible GPU, is a :class:`SoftmassError`
    that says what to pass instead.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise SoftmassError(f"Unknown device {str(name)!r}; use cpu or cuda.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SoftmassError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu.")
    return device


def build_model(arch: Architecture, num_classes: int) -> nn.Module:
    """A freshly initialised timm model with a ``num_classes`` head (never downloads)."""
    import timm

    try:
        model = timm.create_model(arch.timm_name, pretrained=False, num_classes=num_classes, **arch.timm_args)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise WeightsError(
            f"timm cannot build '{arch.timm_name}' with {arch.timm_args}: {exc}. "
            "Check architecture.timm_name / timm_args in the manifest."
        ) from exc
    return model


def load_model(entry: ModelEntry, path: str | Path, input_size: tuple[int, int] | None = None) -> nn.Module:
    """Build ``entry``'s architecture and load its safetensors file (strict), or open its ONNX graph.

    ``input_size`` (height, width) is checked against an ONNX graph's fixed input size.
    """
    if entry.format == "onnx":
        from softmass_core.weights.onnx_model import OnnxModel

        height, width = input_size or (None, None)
        return OnnxModel(path, num_classes=entry.num_classes, height=height, width=width)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    # Built on the meta device: no random initialisation (most of the time a model took to load),
    # since every tensor is then assigned from the file.
    with torch.device("meta"):
        model = build_model(entry.architecture, entry.num_classes)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from exc
    expected = model.state_dict()
    missing, unexpected, wrong = tensor_mismatch(shapes_of(expected), shapes_of(state))
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not fit {entry.architecture.timm_name} with {entry.num_classes} classes: "
            f"{len(missing)} missing tensors (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}). Check architecture and labels in the manifest."
        )
    for key in wrong:
        raise WeightsError(
            f"{path}: tensor '{key}' has shape {tuple(state[key].shape)}, the model expects "
            f"{tuple(expected[key].shape)}. Check architecture and labels in the manifest."
        )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a tensor the file does not hold
        model = build_model(entry.architecture, entry.num_classes)
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tensor_problems(manifest) -> dict[str, str]:
    """``{model_id: what is wrong}`` for every model whose files do not fit its architecture (empty when all fit).

    Reads only the safetensors headers (names and shapes) and builds each
    architecture on the meta device, so a set is checked without loading
    its weights; every member of an ensemble is checked, and the
    architecture must be one the split forward can cut
    (:func:`~softmass_core.weights.backbone.backbone`).  An ONNX file is
    opened and its input and output checked.
    """
    from softmass_core.weights.backbone import backbone

    folder = manifest.path.parent
    problems: dict[str, str] = {}
    expected_by_arch: dict[tuple[str, str, int], dict[str, tuple[int, ...]]] = {}
    for model_id, entry in manifest.models.items():
        if entry.format == "onnx":
            from softmass_core.weights.onnx_model import OnnxModel

            try:
                OnnxModel(folder / entry.file, num_classes=entry.num_classes, height=manifest.input_spec.height,
                          width=manifest.input_spec.width)  # fmt: skip
            except WeightsError as exc:
                problems[model_id] = str(exc)
            continue
        key = (entry.architecture.timm_name, repr(sorted(entry.architecture.timm_args.items())), entry.num_classes)
        if key not in expected_by_arch:
            try:
                with torch.device("meta"):
                    net = build_model(entry.architecture, entry.num_classes)
                backbone(net)
            except WeightsError as exc:
                problems[model_id] = str(exc)
                continue
            expected_by_arch[key] = shapes_of(net.state_dict())
        found = [_file_problem(folder, file, entry, expected_by_arch[key]) for file, _ in entry.members]
        found = [p for p in found if p]
        if found:
            member = f" ({len(found)} of the ensemble's {len(entry.members)} members)" if entry.is_ensemble else ""
            problems[model_id] = found[0] + member
    return problems


def _file_problem(folder: Path, file: str, entry: ModelEntry, expected: dict[str, tuple[int, ...]]) -> str | None:
    """What is wrong with one safetensors file of ``entry`` against the tensors ``expected``, or None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(folder / file), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        return f"{file} is not a readable safetensors file ({exc})."
    missing, unexpected, wrong = tensor_mismatch(expected, found)
    if not (missing or unexpected or wrong):
        return None
    example = (missing or unexpected or wrong)[0]
    return (
        f"{file} does not fit {entry.architecture.timm_name} with {entry.num_classes} classes: "
        f"{len(missing)} tensors missing, {len(unexpected)} unexpected, {len(wrong)} of another shape "
        f"(e.g. {example!r}). Check architecture and labels in the manifest."
    )


def save_safetensors(model: nn.Module, path: str | Path, *, dtype: str = "float32") -> str:
    """Write ``model``'s state dict as safetensors in ``dtype``; return the sha256."""
    from safetensors.torch import save_file

    torch_dtype = _DTYPES[dtype]
    state = {}
    for key, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch_dtype)
        state[key] = t.contiguous()
    save_file(state, str(path))
    return sha256_file(path)


def framework_versions() -> dict[str, str]:
    """Versions recorded in manifests."""
    import numpy
    import timm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
    }
