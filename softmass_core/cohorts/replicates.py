"""Independent replicates of a set's metrics: ``evaluate --record-replicate KEY``.

A fresh, larger draw of cohorts a set was already measured on is stored
beside its tables (manifest ``replicates.<KEY>``, its own model-card
section) instead of replacing them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from softmass_core.cohorts.evaluate import Evaluation, _ci_methods
from softmass_core.errors import SoftmassError

REPLICATE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def check_replicate(folder, key: str, cohort_csv: str | Path) -> None:
    """Refuse (:class:`SoftmassError`) a replicate :func:`record_replicate` would refuse, before any scoring."""
    if not REPLICATE_KEY.fullmatch(str(key)):
        raise SoftmassError(
            f"Replicate name {key!r} is not allowed: use up to 40 letters, digits, '_', '-' or '.', e.g. seed7x5."
        )
    from softmass_core.data.phantom import read_provenance

    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    training = manifest.get("training") or {}
    trained_on = training.get("cohort_csv")
    if not trained_on:
        return
    if Path(trained_on).resolve() == Path(cohort_csv).resolve():
        raise SoftmassError(
            f"{cohort_csv} is the cohort CSV this set was trained and selected on, not an independent sample: "
            "record it with --record, or draw a fresh one (e.g. phantom --seed 7 --scale 5) for a replicate."
        )
    # The training cohorts' own record, kept in the manifest, serves where their folder is not at hand.
    ours, theirs = training.get("source") or read_provenance(trained_on), read_provenance(cohort_csv)
    if ours and theirs and ours.get("seed") == theirs.get("seed"):
        raise SoftmassError(
            f"{cohort_csv} was drawn with --seed {theirs.get('seed')}, as were the cohorts this set was trained and "
            f"selected on ({trained_on}), so its cases repeat theirs: draw the replicate with another --seed."
        )


def record_replicate(
    folder,
    key: str,
    ev: Evaluation,
    *,
    cohort_csv: str | Path,
    n_boot: int = 2000,
    seed: int = 0,
    command: str | None = None,
) -> dict[str, Any]:
    """Store ``ev``'s metrics as an independent replicate: ``manifest["replicates"][key]``.

    A replicate is a fresh sample of cohorts the set was already measured on
    (e.g. the simulated hospitals drawn again with another ``phantom --seed``,
    and larger), scored at the set's own operating point.  It sits beside the
    recorded tables instead of replacing them, so the model card can show how
    far the paper-sized cohorts' figures move on new cases.  The generator's
    ``phantom.json`` beside the CSV, when there is one, is kept as the source.
    Refused (:class:`SoftmassError`): a key that is not a short plain name,
    the cohort CSV the set was trained and selected on, and one the generator
    drew with the training cohorts' seed (known from the manifest's
    ``training.source`` or the ``phantom.json`` beside the training CSV).
    """
    from softmass_core.data.phantom import read_provenance
    from softmass_core.weights.modelcard import update_manifest

    check_replicate(folder, key, cohort_csv)
    entry: dict[str, Any] = {
        "cohort_csv": str(cohort_csv),
        "source": read_provenance(cohort_csv),
        "ci_methods": _ci_methods(n_boot, seed),
        "threshold_dlm1": ev.threshold,
        "fusion_rule": ev.fusion_rule,
        "cohorts": ev.metrics,
    }
    if command:
        entry["command"] = command

    def edit(m: dict[str, Any]) -> None:
        m.setdefault("replicates", {})[str(key)] = entry

    return update_manifest(folder, edit)
