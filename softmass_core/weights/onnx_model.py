"""ONNX models of a weight set, run by ONNX Runtime behind a ``torch.nn.Module`` face.

A model entry with ``"format": "onnx"`` names an ``.onnx`` file.  The
cascade calls it like any other model, ``model(x) -> logits`` on a
(N, 3, H, W) float32 batch, so fusion, test-time views and thresholds work
unchanged.  ONNX Runtime computes no gradients and the graph has no stages
to hook, so Grad-CAM is not available for such a model
(:data:`GRADCAM_UNAVAILABLE` says why wherever a map would be shown).

The file is checked when it loads: one float input of rank 4 with three
channels and, where the export fixed them, the manifest's input height and
width; one output of the manifest's number of classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from softmass_core.errors import WeightsError

GRADCAM_UNAVAILABLE = (
    "Grad-CAM is not available for this model: it is an ONNX export, run by ONNX Runtime, which computes no "
    "gradients. Its probabilities are exact; for heatmaps, pack the same network from its PyTorch weights."
)


class OnnxModel(torch.nn.Module):
    """``forward(x)`` runs the ONNX graph on the CPU; no parameters, no gradients."""

    supports_gradcam = False

    def __init__(self, path: str | Path, *, num_classes: int, height: int, width: int) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a requirement; only a broken install lacks it
            raise WeightsError("ONNX models need onnxruntime: pip install -r requirements.txt.") from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own error types for bad files
            raise WeightsError(f"{Path(path).name} is not a model ONNX Runtime can load ({exc}).") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise WeightsError(f"{Path(path).name} has {len(inputs)} inputs; a model entry needs one image input.")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or inputs[0].type != "tensor(float)":
            raise WeightsError(
                f"{Path(path).name}: its input is {inputs[0].type} of shape {shape}; a (N, 3, H, W) float input "
                "is needed. Export the model with a float32 image batch."
            )
        fixed = {"channels": (shape[1], 3), "height": (shape[2], height), "width": (shape[3], width)}
        for name, (have, want) in fixed.items():
            if isinstance(have, int) and have != want:
                raise WeightsError(
                    f"{Path(path).name}: the graph's input {name} is {have}, the manifest's input gives {want}. "
                    "Give the size the model was exported at."
                )
        out_shape = list(outputs[0].shape)
        if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != num_classes):
            raise WeightsError(
                f"{Path(path).name}: its output has shape {out_shape}; (N, {num_classes}) logits are needed, one per "
                "label of the model entry."
            )
        if isinstance(shape[0], int) and shape[0] != 1:
            raise WeightsError(
                f"{Path(path).name} takes batches of exactly {shape[0]} images; export it with a dynamic batch "
                "axis (torch.onnx.export(..., dynamic_axes={'input': {0: 'n'}})) or with batch 1."
            )
        self.input_name = inputs[0].name
        self.one_at_a_time = shape[0] == 1
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        if self.one_at_a_time and array.shape[0] != 1:  # exported with batch 1: one image per run
            return torch.from_numpy(np.concatenate([self._run(array[i : i + 1]) for i in range(array.shape[0])]))
        return torch.from_numpy(self._run(array))

    def _run(self, array: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(array)})[0]
        if out.ndim != 2 or out.shape[1] != self.num_classes:
            raise WeightsError(f"The ONNX model returned shape {out.shape}; (N, {self.num_classes}) logits expected.")
        return np.asarray(out, dtype=np.float32)


def supports_gradcam(model: torch.nn.Module) -> bool:
    """False for models Grad-CAM cannot explain (ONNX graphs)."""
    return getattr(model, "supports_gradcam", True)
