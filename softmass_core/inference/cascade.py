"""The DLM system: DLM-1 (benign vs malignant), then DLM-2 when benign.

For each available image of a case (grayscale B-mode and/or CDFI) DLM-1 gives
P(malignant).  The case score fuses the images by the weight set's rule
(``mean`` of the available images by default; ``max``; or one image kind
only).  If the fused score is below DLM-1's operating threshold the case is
benign and DLM-2's five one-vs-rest sub-models (SM-1 lipoma .. SM-5
calcifying epithelioma) score it, fused the same way; the highest-scoring
sub-model names the subtype.  ``run_all=True`` runs every model whatever
DLM-1 says (cohort ROC curves of DLM-2 need every score).

The result records every stage: per-image and fused probabilities, the
threshold, which models ran, the diagnosis and why the cascade stopped.
It also gives the operating point (rule-out / balanced / rule-in, from the
manifest), the score's interval and a verdict that is ``indeterminate`` when
the interval straddles the threshold; DLM-2 then runs too, for the subtype
"if benign" (``softmass_core.weights.operating``).

A model may be an ensemble (``members`` in the manifest): its probability of
an image is the mean of its members' (:meth:`Cascade.probabilities`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from softmass_core.errors import SoftmassError
from softmass_core.inference import tta
from softmass_core.inference.input_check import InputCheck, check_images
from softmass_core.io.roi import Prepared, Roi, prepare
from softmass_core.labels import BENIGN, DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS
from softmass_core.weights import operating
from softmass_core.weights.backbone import forward_with_check, stage_index, tail_forward, trunk_forward
from softmass_core.weights.manifest import FUSION_RULES
from softmass_core.weights.models import resolve_device
from softmass_core.weights.weight_set import WeightSet

#: The input of a model's Grad-CAM target stage for a batch: one tensor, or one per member of an ensemble.
Features = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class CaseImages:
    """A case: RGB uint8 arrays (H, W, 3) and their ROIs in image pixels."""

    gray: np.ndarray | None = None
    cdfi: np.ndarray | None = None
    gray_roi: Roi | None = None
    cdfi_roi: Roi | None = None

    def available(self) -> list[tuple[str, np.ndarray, Roi | None]]:
        out = []
        if self.gray is not None:
            out.append(("gray", self.gray, self.gray_roi))
        if self.cdfi is not None:
            out.append(("cdfi", self.cdfi, self.cdfi_roi))
        return out


def fuse(per_image: dict[str, float], rule: str) -> float:
    """Fuse per-image probabilities ``{modality: p}`` into one case score."""
    if not per_image:
        raise SoftmassError("No image to fuse: give a grayscale and/or a CDFI image.")
    if rule == "mean":
        return float(np.mean(list(per_image.values())))
    if rule == "max":
        return float(max(per_image.values()))
    if rule in MODALITIES:
        if rule not in per_image:
            raise SoftmassError(
                f"The fusion rule '{rule}' uses the {rule} image only, and this case has none. "
                "Add that image or choose the 'mean' rule."
            )
        return float(per_image[rule])
    raise SoftmassError(f"Unknown fusion rule {rule!r}; use one of {FUSION_RULES}.")


@dataclass(frozen=True)
class Decision:
    """The cascade's verdict for one case."""

    p_malignant: float
    malignant: bool
    sub_scores: dict[str, float] | None
    diagnosis: str
    reason: str


@dataclass(frozen=True)
class CascadeResult:
    """Everything the cascade did for one case."""

    weight_set_id: str
    weight_set_version: str
    fusion_rule: str
    threshold: float
    per_image: dict[str, dict[str, float]]
    p_malignant: float
    malignant: bool
    sub_scores: dict[str, float] | None
    diagnosis: str
    models_run: list[str]
    stopped_because: str
    rois: dict[str, Roi] = field(default_factory=dict)
    test_time_views: tuple[str, ...] = ()
    operating_point: str = "balanced"
    p_malignant_interval: tuple[float, float] | None = None
    verdict: str = ""
    subtype_if_benign: str | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict, repr=False)
    #: Per model, the input of its Grad-CAM target stage (a tuple, one per member, for an ensemble).
    features: dict[str, Features] = field(default_factory=dict, repr=False)
    input_check: InputCheck | None = None

    @property
    def diagnosing_model(self) -> str | None:
        """The sub-model id that named the subtype (None when DLM-2 did not decide)."""
        if self.malignant or self.sub_scores is None:
            return None
        return next((sm for sm, subtype in SUBMODEL_IDS.items() if subtype == self.diagnosis), None)

    def per_image_p_malignant(self) -> dict[str, float]:
        return {m: probs[DLM1] for m, probs in self.per_image.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no arrays)."""
        return {
            "weight_set": {
                "id": self.weight_set_id,
                "version": self.weight_set_version,
            },
            "diagnosis": self.diagnosis,
            "p_malignant": self.p_malignant,
            "malignant": self.malignant,
            "threshold": self.threshold,
            "fusion_rule": self.fusion_rule,
            "test_time_augmentation": list(self.test_time_views),
            "per_image": {m: dict(p) for m, p in self.per_image.items()},
            "per_image_p_malignant": self.per_image_p_malignant(),
            "sub_scores": dict(self.sub_scores) if self.sub_scores is not None else None,
            "models_run": list(self.models_run),
            "stopped_because": self.stopped_because,
            "rois": {m: r.as_string() for m, r in self.rois.items()},
            "input_check": self.input_check.to_dict() if self.input_check is not None else None,
            "operating_point": {"name": self.operating_point, "threshold": self.threshold},
            "p_malignant_interval": list(self.p_malignant_interval or (self.p_malignant, self.p_malignant)),
            "p_malignant_interval_measured": self.p_malignant_interval is not None,
            "verdict": self.verdict,
            "subtype_if_benign": self.subtype_if_benign,
        }


def _per_case(value: bool | Sequence[bool], n: int, name: str) -> list[bool]:
    if isinstance(value, bool):
        return [value] * n
    out = [bool(v) for v in value]
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} values for {n} cases.")
    return out


class Cascade:
    """Runs a :class:`WeightSet` on cases.  Thread-safe for inference."""

    def __init__(
        self,
        weight_set: WeightSet,
        *,
        fusion_rule: str | None = None,
        threshold: float | None = None,
        device: str | torch.device = "cpu",
        operating_point: str | None = None,
    ):
        """``device`` (e.g. ``"cuda"``) runs the models there for scoring;
        Grad-CAM features (``keep_features``) need the CPU.  ``operating_point``
        (rule_out, balanced, rule_in) picks DLM-1's threshold from the set;
        ``threshold`` overrides it (point "custom"); give one, not both."""
        self.weight_set = weight_set
        self.device = resolve_device(device)
        self._device_models: dict[str, tuple[torch.nn.Module, ...]] = {}
        self.fusion_rule = fusion_rule or weight_set.manifest.fusion_rule
        if self.fusion_rule not in FUSION_RULES:
            raise SoftmassError(f"Unknown fusion rule {self.fusion_rule!r}; use one of {FUSION_RULES}.")
        dlm1 = weight_set.entry(DLM1)
        self.threshold = dlm1.threshold if threshold is None else float(threshold)
        if threshold is not None and operating_point is not None:
            raise SoftmassError("Give an operating point or a threshold, not both.")
        self.operating_point = "custom" if threshold is not None else operating.DEFAULT_POINT
        if threshold is None:
            self.operating_point, self.threshold = operating.resolve_point(weight_set.manifest, operating_point)
        self.interval_halfwidth = operating.interval_halfwidth(weight_set.manifest)
        #: False for a set without a measured interval: results then carry no range (None), not [p, p].
        self.has_interval = operating.interval_info(weight_set.manifest) is not None
        if not 0.0 <= self.threshold <= 1.0:
            raise SoftmassError(f"Threshold must be in [0, 1], got {self.threshold}.")

    # ------------------------------------------------------------------ tensors

    def prepare(self, case: CaseImages) -> dict[str, Prepared]:
        """Crop each available image to its ROI and resize as the manifest says."""
        items = case.available()
        if not items:
            raise SoftmassError("A case needs a grayscale B-mode image, a CDFI image or both.")
        spec = self.weight_set.input_spec
        return {m: prepare(rgb, roi, spec) for m, rgb, roi in items}

    def probabilities(
        self,
        model_id: str,
        batch: torch.Tensor,
        *,
        keep_features: bool = False,
        expanded: bool = False,
        check_features: list[torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, Features | None]:
        """P(positive) of ``model_id`` for a (N, 3, H, W) batch.

        With the weight set's test-time views (e.g. ``hflip``) every image is
        scored once per view in a single batch and the probabilities are
        averaged.  ``expanded=True`` says ``batch`` already holds every view
        (:meth:`expand`), so several models can share one expanded batch.
        With ``keep_features`` also returns the input of the Grad-CAM target
        stage for the whole expanded batch (for an ensemble a tuple, one per
        member), so a later CAM reuses the forward pass instead of repeating
        it.  ``check_features`` (a list) receives the input check's features
        for the whole expanded batch, from the same forward pass
        (:func:`~softmass_core.weights.backbone.check_features`).

        An ensemble (``members`` in the manifest) scores every image with each
        member: the model's temperature divides each member's logits before
        its softmax, and the probability is the mean of the members'.  The
        input check's features come from the first member only, the one
        :func:`~softmass_core.training.input_stats.fit_input_check` fits them
        on (it calls this method).
        """
        entry = self.weight_set.entry(model_id)
        members = self._members(model_id)
        views = self.weight_set.manifest.tta
        x = batch if expanded else tta.expand(batch, views)
        if self.device.type != "cpu":
            if keep_features:
                raise SoftmassError("Grad-CAM features are computed on the CPU; use a CPU cascade for them.")
            x = x.to(self.device)
        split = getattr(members[0], "supports_gradcam", True)  # an ONNX graph (never an ensemble) has no stages
        keep_features = keep_features and split
        feats: list[torch.Tensor] = []
        member_probs: list[torch.Tensor] = []
        with torch.no_grad():
            for k, model in enumerate(members):
                out = check_features if k == 0 else None  # the input check reads the first member
                if keep_features:
                    index = stage_index(model, entry.gradcam_target_layer)
                    feats.append(trunk_forward(model, x, index, out))
                    logits = tail_forward(model, feats[-1], index, out)
                elif out is None or not split:
                    logits = model(x)
                else:
                    logits = forward_with_check(model, x, out)
                # Temperature scaling (manifest ``temperature``, kept only where it lowered validation ECE): 1.0
                # otherwise; for an ensemble, each member's logits before its softmax.
                member_probs.append(torch.softmax(logits.float() / entry.temperature, dim=1)[:, entry.positive_index])
            probs = member_probs[0] if len(members) == 1 else torch.stack(member_probs).mean(0)
        kept = None if not keep_features else feats[0] if len(members) == 1 else tuple(feats)
        return tta.average(probs.cpu().numpy().astype(np.float64), views), kept

    def expand(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (V*N, 3, H, W): every test-time view of the set, as :meth:`probabilities` scores them."""
        return tta.expand(batch, self.weight_set.manifest.tta)

    def _members(self, model_id: str) -> tuple[torch.nn.Module, ...]:
        """The weight set's networks of ``model_id`` (one, or an ensemble's members), or this cascade's own
        copies of them on ``self.device``."""
        members = self.weight_set.members(model_id)
        if self.device.type == "cpu":
            return members
        if model_id not in self._device_models:
            self._device_models[model_id] = tuple(copy.deepcopy(m).to(self.device).eval() for m in members)
        return self._device_models[model_id]

    # ------------------------------------------------------------------ cases

    def run(self, case: CaseImages, *, run_all: bool = False, keep_features: bool = False) -> CascadeResult:
        """Run the cascade on one case."""
        return self.run_prepared(self.prepare(case), run_all=run_all, keep_features=keep_features)

    def run_prepared(
        self,
        prepared: dict[str, Prepared],
        *,
        run_all: bool = False,
        keep_features: bool = False,
    ) -> CascadeResult:
        """Run the cascade on already prepared images ``{modality: Prepared}``."""
        return self.run_batch([prepared], run_all=run_all, keep_features=keep_features)[0]

    def run_batch(
        self,
        cases: Sequence[dict[str, Prepared]],
        *,
        run_all: bool | Sequence[bool] = False,
        keep_features: bool | Sequence[bool] = False,
    ) -> list[CascadeResult]:
        """Run the cascade on several prepared cases at once, one batch per model.

        DLM-1 scores every image of every case in one batch; DLM-2's
        sub-models then score, again in one batch each, the images of the
        cases that are benign (or have ``run_all``).  Each case's result is
        what :meth:`run_prepared` gives for it alone, up to floating-point
        rounding of the batched kernels.  ``run_all`` and ``keep_features``
        may be given per case.  A case without any image is refused before
        anything runs.
        """
        n = len(cases)
        want_all = _per_case(run_all, n, "run_all")
        want_feats = _per_case(keep_features, n, "keep_features")
        index: list[tuple[int, str]] = []  # (case, modality) of each row of the batch
        for i, prepared in enumerate(cases):
            modalities = [m for m in MODALITIES if m in prepared]
            if not modalities:
                raise SoftmassError("A case needs a grayscale B-mode image, a CDFI image or both.")
            index += [(i, m) for m in modalities]
        if not index:
            return []
        batch = torch.from_numpy(np.stack([cases[i][m].array for i, m in index]))
        per_image: list[dict[str, dict[str, float]]] = [{m: {} for m in MODALITIES if m in c} for c in cases]
        features: list[dict[str, Features]] = [{} for _ in cases]
        models_run: list[list[str]] = [[] for _ in cases]
        n_views = tta.n_passes(self.weight_set.manifest.tta)

        expanded: dict[tuple[int, ...], torch.Tensor] = {}  # every view of the rows, made once for all models
        pooled: list[torch.Tensor] = []  # DLM-1's input-check features, from its forward pass

        def score(model_id: str, rows: list[int]) -> None:
            key = tuple(rows)
            if key not in expanded:
                expanded[key] = self.expand(batch if len(rows) == len(index) else batch[rows])
            probs, feats = self.probabilities(
                model_id, expanded[key], keep_features=any(want_feats[index[r][0]] for r in rows), expanded=True,
                check_features=pooled if model_id == DLM1 else None,
            )  # fmt: skip
            for j, r in enumerate(rows):
                i, m = index[r]
                per_image[i][m][model_id] = float(probs[j])
            for i in dict.fromkeys(index[r][0] for r in rows):
                models_run[i].append(model_id)
                if feats is None or not want_feats[i]:
                    continue
                if len(rows) == len(index) and n == 1:
                    features[i][model_id] = feats  # one case alone: its features as computed
                    continue
                mine = [j for j, r in enumerate(rows) if index[r][0] == i]
                # The expanded batch is view-major ([x, flip(x)]): take this case's rows of every view.
                take = torch.tensor([v * len(rows) + j for v in range(n_views) for j in mine])
                if isinstance(feats, torch.Tensor):
                    features[i][model_id] = feats.index_select(0, take)
                else:  # an ensemble: each member's
                    features[i][model_id] = tuple(f.index_select(0, take) for f in feats)

        score(DLM1, list(range(len(index))))
        if self.weight_set.has_dlm2:
            go_on = {
                i
                for i in range(n)
                if want_all[i] or self._low(fuse({m: p[DLM1] for m, p in per_image[i].items()}, self.fusion_rule))
            }
            rows = [r for r, (i, _) in enumerate(index) if i in go_on]
            if rows:
                for sm_id in SUBMODEL_IDS:
                    score(sm_id, rows)
        checks = self.input_checks(cases, index, pooled)
        return [self._result(cases[i], per_image[i], models_run[i], features[i], checks[i]) for i in range(n)]

    def input_checks(self, cases, index: list[tuple[int, str]], pooled: list[torch.Tensor]) -> list[InputCheck]:
        """Each case's input check from the first (unmirrored) view's DLM-1 features of its images.

        ``index[r] = (case, modality)`` of row ``r`` of the batch, ``pooled`` what
        :meth:`probabilities` put in its ``check_features`` list for that batch.
        """
        feats: list[dict[str, np.ndarray]] = [{} for _ in cases]
        stats, spec = self.weight_set.input_stats, self.weight_set.input_spec
        if not pooled:  # an ONNX DLM-1 has no stages to read: only the plausibility checks run
            stats = None
        else:
            first = pooled[0][: len(index)].cpu().numpy()
            for r, (i, m) in enumerate(index):
                feats[i][m] = first[r]
        return [check_images(stats, cases[i], feats[i], spec) for i in range(len(cases))]

    def _low(self, p: float) -> bool:
        """DLM-2 runs when the case may be benign: its interval's low end is below the threshold."""
        return operating.score_interval(p, self.interval_halfwidth)[0] < self.threshold

    def _result(
        self,
        prepared: dict[str, Prepared],
        per_image: dict[str, dict[str, float]],
        models_run: list[str],
        features: dict[str, Features],
        input_check: InputCheck | None = None,
    ) -> CascadeResult:
        decision = self.decide(per_image)
        return CascadeResult(
            weight_set_id=self.weight_set.id,
            weight_set_version=self.weight_set.version,
            fusion_rule=self.fusion_rule,
            threshold=self.threshold,
            per_image=per_image,
            p_malignant=decision.p_malignant,
            malignant=decision.malignant,
            sub_scores=decision.sub_scores,
            diagnosis=decision.diagnosis,
            models_run=models_run,
            stopped_because=decision.reason,
            rois={m: prepared[m].roi for m in per_image},
            test_time_views=self.weight_set.manifest.tta,
            prepared=dict(prepared),
            features=features,
            input_check=input_check,
            **self.verdict_fields(decision),
        )

    def verdict_fields(self, decision: Decision) -> dict[str, Any]:
        """Operating point, score interval, verdict and subtype-if-benign of a :class:`Decision`."""
        interval = operating.score_interval(decision.p_malignant, self.interval_halfwidth)
        subs = decision.sub_scores
        return {
            "operating_point": self.operating_point,
            "p_malignant_interval": interval if self.has_interval else None,
            "verdict": operating.verdict(decision.p_malignant, interval, self.threshold),
            "subtype_if_benign": max(subs, key=subs.__getitem__) if subs else None,
        }

    def decide(self, per_image: dict[str, dict[str, float]]) -> Decision:
        """The cascade's decision from per-image probabilities ``{modality: {model_id: p}}``.

        Sub-model scores are used when present for every image; a benign case
        without them (a DLM-1-only weight set) is diagnosed ``benign``.
        """
        p = fuse({m: probs[DLM1] for m, probs in per_image.items()}, self.fusion_rule)
        malignant = p >= self.threshold
        have_subs = bool(per_image) and all(all(sm in probs for sm in SUBMODEL_IDS) for probs in per_image.values())
        sub_scores = (
            {
                st: fuse({m: probs[sm] for m, probs in per_image.items()}, self.fusion_rule)
                for sm, st in SUBMODEL_IDS.items()
            }
            if have_subs
            else None
        )
        if malignant:
            diagnosis = MALIGNANT
            reason = f"DLM-1 P(malignant) {p:.3f} >= threshold {self.threshold:.3f}: malignant, so DLM-2 was not needed"
            if sub_scores is not None:
                reason += " (its scores are shown for reference only)"
        elif sub_scores is not None:
            diagnosis = max(sub_scores, key=sub_scores.__getitem__)
            reason = (
                f"DLM-1 P(malignant) {p:.3f} < threshold {self.threshold:.3f}: benign; DLM-2's highest "
                f"sub-model score ({sub_scores[diagnosis]:.3f}) names the subtype"
            )
        else:
            diagnosis = BENIGN
            reason = (
                f"DLM-1 P(malignant) {p:.3f} < threshold {self.threshold:.3f}: benign; this weight set has "
                "DLM-1 only, so no subtype is given"
            )
        return Decision(
            p_malignant=p,
            malignant=bool(malignant),
            sub_scores=sub_scores,
            diagnosis=diagnosis,
            reason=reason,
        )
