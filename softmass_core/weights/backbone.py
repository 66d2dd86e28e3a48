"""A timm classifier as stem -> stages -> head: the split forward the cascade and Grad-CAM use.

One forward pass of the cascade also yields the input check's features (the
first stage's output, :func:`check_features`) and, for Grad-CAM, the input of
the target stage; Grad-CAM then runs on a private copy of the network's tail
(:class:`Tail`).  Both need the network cut into a stem, a list of stages and
a head, which timm families spell differently.  :func:`backbone` describes a
model in those terms (:class:`Backbone`):

* **ConvNeXt** (``timm.models.convnext.ConvNeXt``: ``convnext_*``,
  ``test_convnext``): ``stem``; ``stages[i]``; head ``norm_pre`` then
  ``head`` (what ``forward_head`` runs).
* **EfficientNet family** (``timm.models.efficientnet.EfficientNet``:
  ``efficientnet_*``, ``efficientnet_lite*``, ``tf_efficientnet_*``,
  ``mixnet_*``, ``mnasnet_*``, ``mobilenetv2_*``, ...): stem ``conv_stem`` +
  ``bn1``; ``blocks[i]``; head ``conv_head`` + ``bn2`` then ``forward_head``
  (global pool, dropout, classifier).

The stem, the stages in order and the head are the model's own modules in
the order its ``forward`` runs them, so the split forward computes exactly
``model(x)``.  Any other model is a :class:`~softmass_core.errors.WeightsError`
that names the supported families.  A manifest's ``gradcam_target_layer``
``"stages.<i>"`` indexes these stages (``"blocks.<i>"`` is accepted for an
EfficientNet).
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from softmass_core.errors import WeightsError

#: The families :func:`backbone` can split, as error messages name them.
SUPPORTED = (
    "timm ConvNeXt (convnext_*) and timm's EfficientNet family (efficientnet_*, efficientnet_lite*, "
    "tf_efficientnet_*, mixnet_*, mnasnet_*, mobilenetv2_*)"
)


class _ConvNeXtHead(nn.Module):
    """``norm_pre`` then ``head``: what ConvNeXt's ``forward_features`` ends with and ``forward_head`` runs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        norm_pre = getattr(model, "norm_pre", None)
        self.norm_pre = nn.Identity() if norm_pre is None else norm_pre
        self.head = model.head
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm_pre(x))


class _EfficientNetHead(nn.Module):
    """``conv_head`` + ``bn2`` (the end of ``forward_features``), then ``forward_head``: pool, dropout, classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.conv_head = model.conv_head
        self.bn2 = model.bn2
        self.global_pool = model.global_pool
        self.classifier = model.classifier
        self.drop_rate = float(getattr(model, "drop_rate", 0.0))
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.bn2(self.conv_head(x)))
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)


@dataclass(frozen=True)
class Backbone:
    """A model as ``head(stages[-1](... stages[0](stem(x))))``; the modules are the model's own (no copies)."""

    family: str  # "convnext" or "efficientnet"
    stem: nn.Module
    stages: tuple[nn.Module, ...]
    head: nn.Module
    #: The name of the stage list in the model (``stages`` or ``blocks``), also accepted in a target layer.
    stage_attr: str = "stages"


_CUT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def backbone(model: nn.Module) -> Backbone:
    """``model`` cut into stem, stages and head; a :class:`WeightsError` for a family it cannot cut.

    Computed once per model and kept while the model lives: the split forward asks for it on every batch.
    """
    cut = _CUT.get(model)
    if cut is None:
        cut = _CUT[model] = _cut(model)
    return cut


def _cut(model: nn.Module) -> Backbone:
    from timm.models.convnext import ConvNeXt
    from timm.models.efficientnet import EfficientNet

    if isinstance(model, ConvNeXt):
        return Backbone("convnext", model.stem, tuple(model.stages), _ConvNeXtHead(model))
    if isinstance(model, EfficientNet):
        stem = nn.Sequential(model.conv_stem, model.bn1)
        return Backbone("efficientnet", stem, tuple(model.blocks), _EfficientNetHead(model), stage_attr="blocks")
    raise WeightsError(
        f"{type(model).__name__} models cannot be split into stem, stages and head for the input check and "
        f"Grad-CAM; supported are {SUPPORTED}. Use one of those architectures, or an ONNX export (no Grad-CAM)."
    )


def stage_index(model: nn.Module, layer: str) -> int:
    """Index of the stage named by ``layer`` (``"stages.-1"`` -> the last stage; ``"blocks.<i>"`` for an EfficientNet)."""
    bb = backbone(model)
    parts = layer.split(".")
    names = ("stages", bb.stage_attr)
    if len(parts) != 2 or parts[0] not in names:
        raise WeightsError(
            f"gradcam_target_layer {layer!r} is not supported: use 'stages.<index>' (e.g. 'stages.-1', the last "
            f"stage{', or blocks.<index>' if bb.stage_attr != 'stages' else ''})."
        )
    try:
        index = int(parts[1])
    except ValueError:
        raise WeightsError(f"gradcam_target_layer {layer!r}: '{parts[1]}' is not a stage index.") from None
    n = len(bb.stages)
    if not -n <= index < n:
        raise WeightsError(f"gradcam_target_layer {layer!r}: the model has {n} stages (0..{n - 1}, or -{n}..-1).")
    return index % n


class Tail(nn.Module):
    """Stages ``index..end`` + head of a model, deep-copied: target-stage input -> logits.

    Grad-CAM runs on a private copy of the tail, so its hooks never touch
    the shared model that other sessions run inference on, and the backward
    pass stops at the target stage instead of running through the whole
    network.
    """

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        bb = backbone(model)
        self.stages = nn.Sequential(*[copy.deepcopy(s) for s in bb.stages[index:]])
        self.head_model = copy.deepcopy(bb.head)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def target_layer(self) -> nn.Module:
        return self.stages[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head_model(self.stages(features))


def check_features(x: torch.Tensor) -> torch.Tensor:
    """Channel means and standard deviations of the first stage's output, (N, 2C): the input check's features.

    Texture statistics of DLM-1's first stage separate other domains (simulated vs real ultrasound) and
    pictures from the training images far better than its pooled last-stage features, which are built
    to be invariant to them (research/input_check_eval.py, docs/experiments.md).
    """
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def forward_with_check(model: nn.Module, x: torch.Tensor, out: list[torch.Tensor]) -> torch.Tensor:
    """``model(x)`` (stem, stages, head) in one pass, appending :func:`check_features` to ``out``."""
    return tail_forward(model, trunk_forward(model, x, 0), 0, out)


def trunk_forward(model: nn.Module, x: torch.Tensor, index: int, out: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Stem and stages ``0..index-1``: the input of stage ``index``.

    ``out`` (a list) receives :func:`check_features` when stage 0 runs here.
    """
    bb = backbone(model)
    x = bb.stem(x)
    for i in range(index):
        x = bb.stages[i](x)
        if i == 0 and out is not None:
            out.append(check_features(x))
    return x


def tail_forward(
    model: nn.Module, features: torch.Tensor, index: int, out: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Stages ``index..`` + head of the shared model (no copy): logits.

    ``out`` (a list) receives :func:`check_features` when stage 0 runs here (``index`` 0).
    """
    bb = backbone(model)
    x = features
    for i in range(index, len(bb.stages)):
        x = bb.stages[i](x)
        if i == 0 and out is not None:
            out.append(check_features(x))
    return bb.head(x)
