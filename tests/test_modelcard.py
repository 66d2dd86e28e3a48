"""Model cards rendered from manifests: Tables 2 and 3, replicates, the scanner-shift and the ablation sections."""

from __future__ import annotations

import json

from research.ablation import ablation_arm
from softmass_core.weights.card_data import format_estimate
from softmass_core.weights.modelcard import (
    ablation_markdown,
    render_model_card,
    replicates_markdown,
    shift_markdown,
    table2_markdown,
    write_model_card,
)


def _est(v, lo, hi):
    return {"value": v, "ci_low": lo, "ci_high": hi}


def _metrics():
    m = {k: _est(0.5, 0.4, 0.6) for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv")}
    m["auc"] = _est(0.912, 0.85, 0.97)
    m["f1"] = _est(0.7, 0.6, 0.8)
    return {"cohorts": {"validation": {"dlm1": {"n": 10, "n_positive": 3, "metrics": m}}}}


def _manifest():
    return {
        "id": "demo",
        "version": "2.0.0",
        "intended_use": "Teaching.",
        "data_kind": "simulated",
        "models": {},
        "metrics": _metrics(),
        "scanner_shift": {
            "description": "Same patients on another scanner.",
            "rescans": {
                "h3": {
                    "original": "validation",
                    "rescan": "validation_h3",
                    "command": "python -m softmass_core shift --weights W --original A --rescan B",
                    "rows": [
                        {
                            "task": "dlm1",
                            "n": 154,
                            "n_positive": 8,
                            "auc_original": 0.943,
                            "auc_rescan": 0.825,
                            "difference": -0.118,
                            "ci_low": -0.191,
                            "ci_high": -0.045,
                            "p_value": 0.0021,
                        },
                        {
                            "task": "lipoma",
                            "n": 146,
                            "n_positive": 30,
                            "auc_original": 0.8,
                            "auc_rescan": 0.8,
                            "difference": 0.0,
                            "ci_low": None,
                            "ci_high": None,
                            "p_value": 0.0004,
                        },
                    ],
                }
            },
        },
        "replicates": {
            "seed7": {
                "cohort_csv": "fresh/cohort.csv",
                "source": {
                    "generator": "softmass phantom",
                    "generator_version": 2,
                    "seed": 7,
                    "scale": 5.0,
                    "difficulty": 0.2,
                    "cohorts": {"validation": 770, "test_b": 615},
                    "rescan_hospital": None,
                },
                "command": "python -m softmass_core evaluate --record-replicate seed7",
                "cohorts": {
                    "validation": {
                        "dlm1": {"n": 770, "n_positive": 40, "metrics": {"auc": _est(0.962, 0.938, 0.987)}},
                        "dlm2": {"lipoma": {"n": 730, "n_positive": 150, "metrics": {"auc": _est(0.93, 0.903, 0.957)}}},
                    },
                    "test_b": {"dlm1": {"n": 615, "n_positive": 50, "metrics": {"auc": _est(0.9, None, None)}}},
                },
            }
        },
        "ablation": {
            "description": "Same recipe, one change at a time.",
            "arms": [
                {
                    "name": "BUSI init",
                    "auc": {"validation": {"dlm1": 0.9, "lipoma": 0.8}, "test_a": {"dlm1": 0.95}},
                    "command": "python -m softmass_core train --init checkpoint:X",
                },
                {"name": "scratch", "auc": {"validation": {"dlm1": 0.7, "lipoma": None}}},
            ],
        },
        "changelog": [{"version": "2.0.0", "date": "2026-11-26", "changes": "Longer."}],
    }


def test_table2_and_estimates_format_as_the_paper_prints_them():
    assert format_estimate(_est(0.912, 0.85, 0.97)) == "0.912 [0.850, 0.970]"
    assert format_estimate(_est(0.875, 0.847, 0.9), percent=True) == "87.5 [84.7, 90.0]"
    table = table2_markdown(_metrics())
    assert "0.912 [0.850, 0.970]" in table and "50.0 [40.0, 60.0]" in table


def test_shift_section_shows_each_rescan_with_signed_differences():
    lines = shift_markdown(_manifest()["scanner_shift"])
    text = "\n".join(lines)
    assert "## Scanner shift on identical lesions" in text
    assert "### `validation` re-scanned as `validation_h3`" in text
    assert "| dlm1 | 154 (8) | 0.943 | 0.825 | -0.118 [-0.191, -0.045] | 0.002 |" in text
    assert "| lipoma | 146 (30) | 0.800 | 0.800 | +0.000 | <0.001 |" in text  # no CI: the cell says so by omission
    assert "python -m softmass_core shift" in text
    assert shift_markdown(None) == [] and shift_markdown({"rescans": {}}) == []


def test_replicate_section_puts_each_fresh_sample_beside_the_recorded_auc():
    m = _manifest()
    text = "\n".join(replicates_markdown(m["replicates"], m["metrics"]))
    assert "## Larger independent samples (replicates)" in text and "### `seed7`" in text
    assert "1385 simulated cases drawn afresh with `phantom --seed 7 --scale 5` (difficulty 0.2" in text
    assert (
        "| task | validation, recorded | validation, replicate | external test B, recorded | external test B, replicate |"
        in text
    )
    # recorded validation 0.912 beside the replicate; no recorded test_b, and a replicate AUC without a CI
    assert (
        "| DLM-1 (malignant) | 0.912 [0.850, 0.970] 10 (3) | 0.962 [0.938, 0.987] 770 (40) | n/a | 0.900 615 (50) |"
        in text
    )
    assert "| Lipoma | n/a | 0.930 [0.903, 0.957] 730 (150) | n/a | n/a |" in text
    assert "python -m softmass_core evaluate --record-replicate seed7" in text
    # a CSV that did not come from the generator is named instead
    plain = {"k": {"cohort_csv": "own.csv", "cohorts": m["replicates"]["seed7"]["cohorts"]}}
    assert "Cases from `own.csv`." in "\n".join(replicates_markdown(plain, None))
    assert replicates_markdown(None, m["metrics"]) == [] and replicates_markdown({}, None) == []


def test_ablation_section_has_one_table_per_cohort_and_marks_missing_values():
    text = "\n".join(ablation_markdown(_manifest()["ablation"]))
    assert "AUC on `validation`:" in text and "AUC on `test_a`:" in text
    assert "| variant | dlm1 | lipoma |" in text
    assert "| BUSI init | 0.900 | 0.800 |" in text
    assert "| scratch | 0.700 | n/a |" in text
    assert "| scratch | n/a | n/a |" in text  # no test_a numbers for that arm
    assert "- BUSI init: `python -m softmass_core train --init checkpoint:X`" in text
    assert ablation_markdown({}) == []


def test_write_model_card_renders_every_section_in_order(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    write_model_card(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert card == render_model_card(_manifest())
    order = [
        "# Weight set `demo` 2.0.0",
        "## Measured performance",
        "## Larger independent samples (replicates)",
        "## Scanner shift on identical lesions",
        "## What the starting point bought (ablation)",
        "## Changelog",
    ]
    positions = [card.index(h) for h in order]
    assert positions == sorted(positions)
    assert "- 2.0.0 (2026-11-26): Longer." in card


def test_ablation_arm_reads_aucs_and_the_training_command_from_a_manifest():
    manifest = {
        "id": "abl",
        "version": "1.0.0",
        "metrics": {
            "cohorts": {
                "test_a": {"dlm1": {"metrics": {"auc": _est(0.8, 0.7, 0.9)}}},
                "validation": {
                    "dlm1": {"metrics": {"auc": _est(0.9, 0.8, 1.0)}},
                    "dlm2": {"lipoma": {"metrics": {"auc": _est(0.7, 0.6, 0.8)}}},
                },
            }
        },
        "training": {"reproduce": "python -m softmass_core phantom --out d\npython -m softmass_core train --id abl"},
    }
    arm = ablation_arm("scratch", manifest)
    assert arm["name"] == "scratch" and arm["weight_set"] == "abl 1.0.0"
    assert list(arm["auc"]) == ["validation", "test_a"]  # the paper's cohort order
    assert arm["auc"]["validation"] == {"dlm1": 0.9, "lipoma": 0.7}
    assert arm["auc"]["test_a"] == {"dlm1": 0.8}
    assert arm["command"] == "python -m softmass_core train --id abl"
    assert list(ablation_arm("x", manifest, cohorts=["test_a"])["auc"]) == ["test_a"]


def test_pretraining_line_says_where_a_limited_run_stopped():
    from softmass_core.weights.card_data import pretrain_text

    assert pretrain_text({"pretrain_epochs": 160}, {}) == "160 epochs"
    pre = {"epochs_run": 118, "epochs_scheduled": 124, "stopped_by": "time limit 270 s", "best_epoch": 88}
    assert pretrain_text({"pretrain_epochs": 160}, pre) == (
        "up to 160 epochs (ran 118, schedule fitted to 124, stopped by time limit 270 s, best epoch 88)"
    )
    assert pretrain_text({"pretrain_epochs": 40}, {"epochs_run": 25, "stopped_by": "early stop", "best_epoch": 15}) == (
        "up to 40 epochs (ran 25, stopped by early stop, best epoch 15)"
    )


# --------------------------------------------------------------------------- plain-language summary


def _two_cohort_manifest():
    m = _manifest()
    train = {k: _est(1.0, 0.99, 1.0) for k in ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")}
    m["metrics"]["cohorts"] = {
        "training": {"dlm1": {"n": 600, "n_positive": 30, "metrics": train}},
        **m["metrics"]["cohorts"],
        "test_a": {"dlm1": {"n": 20, "n_positive": 5, "metrics": {"auc": _est(0.801, 0.7, 0.9)}}},
    }
    m["training"] = {"n_train_cases": 600, "n_train_images": 1200, "n_validation_cases": 10}
    m["summary"] = {"learned": "To tell A from B.", "trust_for": "Demos only."}
    return m


def test_card_opens_with_a_plain_summary_whose_figures_come_from_the_metrics():
    from softmass_core.weights.card_data import plain_summary

    m = _two_cohort_manifest()
    card = render_model_card(m)
    assert card.index("## In short") < card.index("## Data and limitations") < card.index("## Model")
    assert "**What it learned.** To tell A from B. Models: DLM-1 only" in card
    assert "Trained on 600 cases (1200 images), checked on 10 validation cases." in card
    assert "**What to trust it for.** Demos only." in card
    assert "- **validation** (10 cases, 3 malignant): DLM-1 AUC 0.912 [0.850, 0.970]" in card
    assert "sensitivity 50.0% [40.0, 60.0]" in card
    assert "- **external test A** (20 cases, 5 malignant): DLM-1 AUC 0.801 [0.700, 0.900]." in card
    short = card[card.index("## In short") : card.index("## Data and limitations")]
    assert "training" not in short.replace("training figures are left out", "")  # no optimistic headline
    # Change the recorded metric and the headline follows: nothing is typed in.
    m["metrics"]["cohorts"]["test_a"]["dlm1"]["metrics"]["auc"] = _est(0.655, 0.5, 0.8)
    figures = plain_summary(m)["figures"]
    assert [f["cohort"] for f in figures] == ["validation", "test_a"]
    assert figures[1]["auc"]["value"] == 0.655
    # Without a summary block the data kind says what to trust it for.
    del m["summary"]
    assert plain_summary(m)["trust_for"].startswith("Seeing how the cascade")


def test_metrics_rows_put_validation_first_and_training_last_labelled_optimistic():
    from softmass_core.weights.card_data import metrics_rows

    rows = metrics_rows(_two_cohort_manifest()["metrics"])
    assert [r["cohort"] for r in rows] == ["validation", "external test A", "training (optimistic)"]
    assert rows[0]["AUC"] == "0.912 [0.850, 0.970]" and rows[0]["n (positive)"] == "10 (3)"
    assert rows[-1]["AUC"] == "1.000 [0.990, 1.000]"
    # The Table 2 columns follow the same order.
    head = table2_markdown(_two_cohort_manifest()["metrics"]).splitlines()[0]
    assert head.index("validation") < head.index("external test A") < head.index("training (optimistic)")


def test_training_fields_are_readable_pairs():
    from softmass_core.weights.card_data import training_fields

    m = json.loads((__import__("pathlib").Path(__file__).parent.parent / "weights/phantom/manifest.json").read_text())
    fields = dict(training_fields(m))
    assert fields["training cases (images)"] == f"{m['training']['n_train_cases']} ({m['training']['n_train_images']})"
    assert fields["architecture"] == "convnext_atto" and fields["input (W x H)"] == "282 x 168 px"
    assert all(isinstance(v, str) and not v.startswith(("{", "[")) for v in fields.values())
    assert training_fields({"training_data": "Some words."}) == [("training data", "Some words.")]


def test_round3_rule_needs_the_auc_kept_and_both_localisation_figures_higher():
    from research.busi_round3 import decide

    paired = {"auc_a": 0.88, "auc_b": 0.89, "auc_difference": -0.01, "ci_low": -0.04, "ci_high": 0.02, "p_value": 0.5}
    base = {"pooled": {"hits": 100, "n": 439, "energy_inside": 0.30}}
    better = {"pooled": {"hits": 140, "n": 439, "energy_inside": 0.35}}
    assert decide(paired, base, better)[0] is True
    assert decide({**paired, "auc_difference": -0.021}, base, better)[0] is False  # AUC dropped by more than 0.02
    assert decide(paired, base, {"pooled": {**better["pooled"], "energy_inside": 0.30}})[0] is False  # a tie loses
    adopted, reasons = decide(paired, base, {"pooled": {**better["pooled"], "hits": 99}})
    assert adopted is False and reasons[1] == "(b) pointing game 99/439 vs 100/439: not higher"


def test_selection_and_roi_margin_sections_show_every_candidate_and_the_rule():
    from research.busi_select import choose
    from softmass_core.weights.card_selection import roi_margin_markdown, selection_markdown

    summaries = {
        "lite0": {"oof_auc": 0.861},
        "lite0_strong": {"oof_auc": 0.866},  # within 0.01 of lite0: the simpler recipe wins
        "atto_scratch": {"oof_auc": 0.80},
    }
    assert choose(summaries)[0] == "lite0"
    assert choose({**summaries, "lite0_strong": {"oof_auc": 0.9}})[0] == "lite0_strong"
    winner, why = choose({"lite0_strong": {"oof_auc": 0.79}, "atto_scratch": {"oof_auc": 0.80}})
    assert winner is None and "does not beat atto_scratch" in why
    sel = {
        "protocol": "docs/busi-2.0-protocol.md", "winner": "lite0", "rule": "highest pooled AUC",
        "candidates": [
            {"recipe": "lite0", "network": "lite0", "oof_auc": 0.861, "oof_auc_ci": [0.82, 0.90],
             "fold_aucs": [0.85, 0.87, 0.86], "seconds": 1200},
            {"recipe": "atto_scratch", "network": "atto", "oof_auc": None, "why": "out of time"},
        ],
    }  # fmt: skip
    text = "\n".join(selection_markdown(sel))
    assert "`lite0` (chosen) | lite0 | 0.861 [0.820, 0.900] | 0.850, 0.870, 0.860 | 20 min |" in text
    assert "not run: out of time" in text and "Rule: highest pooled AUC" in text
    assert selection_markdown(None) == [] and roi_margin_markdown(None) == []
    rm = {"cohort": "validation", "n": 96, "margins": [{"margin": 0.4, "auc": 0.9, "ci": [0.85, 0.95]}]}
    assert "| 40% | 0.900 [0.850, 0.950] |" in roi_margin_markdown(rm)
