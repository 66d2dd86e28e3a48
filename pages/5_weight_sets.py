"""Weight sets: each set's plain-language summary first, then its details (collapsed); invalid sets with their error."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from softmass_core.labels import DATA_KIND_NAMES, cohort_label
from softmass_core.weights.card_data import (
    GLOSSARY,
    METRIC_ROWS,
    format_estimate,
    metrics_rows,
    percent_estimate,
    plain_summary,
    training_fields,
)
from softmass_core.weights.manifest import discover_with_errors
from ui.add_weight_set import add_weight_set_form
from ui.common import (
    DISCLAIMER,
    active_weight_set_dir,
    checksum_status,
    input_spec_frame,
    models_frame,
    read_model_card,
    require_frame,
    weight_set_models,
    weights_root,
)

require_frame()

#: Tooltip of each metrics-table column.
COLUMN_HELP = {
    "AUC": GLOSSARY["AUC"],
    "ACC (%)": GLOSSARY["ACC"],
    "Sensitivity (%)": GLOSSARY["sensitivity"],
    "Specificity (%)": GLOSSARY["specificity"],
    "PPV (%)": GLOSSARY["PPV"],
    "NPV (%)": GLOSSARY["NPV"],
    "F1-score": GLOSSARY["F1"],
    "cohort": "validation: " + GLOSSARY["validation"] + " External test: " + GLOSSARY["external test"],
    "n (positive)": "Cases measured, and how many of them were positive (malignant, or the sub-model's subtype).",
}


def _escape(text: str) -> str:
    """``text`` shown as written in Markdown (``test_a ... test_b`` must not turn italic)."""
    for ch in "\\`*_[]<>#|":
        text = text.replace(ch, "\\" + ch)
    return text


def cohort_help(cohort: str) -> str:
    """What a cohort's figures mean, for a tooltip."""
    if cohort.startswith("test_") and cohort != "test_internal":
        return GLOSSARY["external test"]
    return GLOSSARY.get(cohort_label(cohort).split(" (")[0], "")


def headline(figures: list[dict]) -> None:
    """One card per measured cohort: DLM-1's AUC with its CI, cases, sensitivity and specificity."""
    if not figures:
        st.caption("No validation or test figures are recorded in the manifest.")
        return
    per_row = min(len(figures), 4)
    cols = [col for start in range(0, len(figures), per_row) for col in st.columns(per_row)]
    for col, fig in zip(cols, figures, strict=False):
        auc = fig["auc"]
        value = "n/a" if auc is None else f"{auc['value']:.3f}"
        ci = format_estimate(auc).partition(" ")[2] if auc else ""
        details = [f"{fig['n']} cases, {fig['n_positive']} malignant"]
        if fig["sensitivity"] and fig["specificity"]:
            details.append(
                f"sensitivity {percent_estimate(fig['sensitivity']).split(' [')[0]}, "
                f"specificity {percent_estimate(fig['specificity']).split(' [')[0]}"
            )
        if fig["sub_auc_range"]:
            lo, hi = fig["sub_auc_range"]
            details.append(f"sub-model AUCs {lo:.2f} to {hi:.2f}")
        col.metric(
            f"{fig['label']}: DLM-1 AUC",
            value,
            help=f"{GLOSSARY['AUC']} {cohort_help(fig['cohort'])} 95% CI {ci or 'not recorded'}.",
            border=True,
        )
        col.caption(f"95% CI {ci or 'n/a'} · " + " · ".join(details))


st.title("Weight sets")
st.caption(DISCLAIMER)

root = weights_root()
manifests, invalid = discover_with_errors(root)
active = active_weight_set_dir()
st.write(f"{len(manifests)} valid weight set(s) under `{root}`" + (f", {len(invalid)} invalid." if invalid else "."))
add_weight_set_form(root)

# The set every page uses comes first.
manifests = sorted(manifests, key=lambda m: not (active is not None and m.path.parent.resolve() == active.resolve()))
for manifest in manifests:
    folder = manifest.path.parent
    raw = manifest.raw
    is_active = active is not None and folder.resolve() == active.resolve()
    summary = plain_summary(raw)
    with st.container(border=True):
        st.header(f"{manifest.name} v{manifest.version}" + ("  (active)" if is_active else ""))
        st.markdown(f"**What it learned.** {summary['learned']}")
        st.markdown(f"**What to trust it for.** {summary['trust_for'] or manifest.intended_use or 'not stated'}")
        st.markdown(
            "**Headline figures**, from the measurements recorded in the set's manifest "
            "(training figures are left out: they flatter the model)",
            help=GLOSSARY["95% CI"],
        )
        headline(summary["figures"])
        if not manifest.has_dlm2:
            st.warning(
                "**DLM-1 only.** This set separates benign from malignant; it has no DLM-2 sub-models, "
                "so it never names a benign subtype."
            )
        ok, message = checksum_status(str(folder))
        if ok:
            st.success(f"sha256 verified, tensors fit: {message}", icon=":material/verified:")
        else:
            st.error(f"**Invalid weight set**, do not use it: {message}", icon=":material/gpp_bad:")
        st.markdown(
            f"**Id** `{manifest.id}` · **Version** {manifest.version} · "
            f"**Data** {DATA_KIND_NAMES.get(manifest.data_kind, manifest.data_kind)} · "
            f"**Models** {weight_set_models(manifest)} · **Folder** `{folder}`",
            help=GLOSSARY["sha256"],
        )

        with st.expander("Measured performance: every cohort and model, with 95% CIs"):
            rows = metrics_rows(manifest.metrics or {})
            if rows:
                st.caption(
                    "Validation first, then the test cohorts; training last, marked optimistic (the models learned "
                    "those cases). Sensitivity, specificity and the other proportions are percentages at each "
                    "model's threshold, which was chosen on the validation cases.",
                    help=GLOSSARY["threshold"],
                )
                columns = ["cohort", "task", "n (positive)", *(title for _, title, _ in METRIC_ROWS)]
                st.dataframe(
                    pd.DataFrame(rows, columns=columns),
                    width="stretch",
                    hide_index=True,
                    column_config={c: st.column_config.TextColumn(c, help=h) for c, h in COLUMN_HELP.items()},
                )
                methods = (manifest.metrics or {}).get("ci_methods") or {}
                if methods:
                    st.caption(
                        "How the 95% CIs were computed: " + "; ".join(f"{k}: {v}" for k, v in methods.items()) + ".",
                        help=f"{GLOSSARY['DeLong']} {GLOSSARY['Clopper-Pearson']}",
                    )
            else:
                st.caption("No metrics are recorded in the manifest.")

        with st.expander("Training data and how it was trained"):
            fields = training_fields(raw)
            if fields:
                st.markdown("\n".join(f"- **{name}**: {_escape(value)}" for name, value in fields))
            else:
                st.caption("The manifest does not say how the set was trained.")

        with st.expander("Input and models"):
            left, right = st.columns([2, 3])
            with left:
                st.markdown("**Input**", help=GLOSSARY["test-time views"])
                st.dataframe(input_spec_frame(manifest), width="stretch", hide_index=True)
                st.caption(f"Fusion of the two images: `{manifest.fusion_rule}`.", help=GLOSSARY["fusion rule"])
            with right:
                st.markdown("**Models**", help=" ".join(GLOSSARY[t] for t in ("DLM-1", "DLM-2", "Youden's J")))
                st.dataframe(models_frame(manifest), width="stretch", hide_index=True)

        with st.expander("Full model card (README.md)"):
            card = read_model_card(folder)
            if card is None:
                st.caption("This set has no README.md.")
            else:
                st.markdown(card)
        with st.expander("manifest.json"):
            st.json(raw, expanded=False)

if invalid:
    st.header("Invalid weight sets")
    st.caption("These folders have a manifest.json that could not be read; they are not offered anywhere.")
    for folder, message in invalid.items():
        st.error(f"`{folder}`: {message}")
if not manifests and not invalid:
    st.info(f"No weight set under `{root}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
