"""Weight sets: every set's model card, checksums and metrics; invalid sets with their error."""

from __future__ import annotations

import streamlit as st

from softmass_core.weights import discover_with_errors
from ui.common import (
    DATA_KIND_NAMES,
    DISCLAIMER,
    active_weight_set_dir,
    checksum_status,
    input_spec_frame,
    metrics_frame,
    models_frame,
    read_model_card,
    weight_set_models,
    weights_root,
)

st.title("Weight sets")
st.caption(DISCLAIMER)

root = weights_root()
manifests, invalid = discover_with_errors(root)
active = active_weight_set_dir()
st.write(f"{len(manifests)} valid weight set(s) under `{root}`" + (f", {len(invalid)} invalid." if invalid else "."))

for manifest in manifests:
    folder = manifest.path.parent
    is_active = active is not None and folder.resolve() == active.resolve()
    with st.container(border=True):
        st.header(f"{manifest.name} v{manifest.version}" + ("  (active)" if is_active else ""))
        st.markdown(
            f"**Id** `{manifest.id}` · **Version** {manifest.version} · "
            f"**Data** {DATA_KIND_NAMES.get(manifest.data_kind, manifest.data_kind)} · "
            f"**Models** {weight_set_models(manifest)} · **Folder** `{folder}`"
        )
        if not manifest.has_dlm2:
            st.warning(
                "**DLM-1 only.** This set separates benign from malignant; it has no DLM-2 sub-models, "
                "so it never names a benign subtype."
            )
        ok, message = checksum_status(str(folder))
        if ok:
            st.success(f"sha256 verified: {message}", icon=":material/verified:")
        else:
            st.error(f"sha256 check failed: {message}", icon=":material/gpp_bad:")

        if manifest.description:
            st.markdown(manifest.description)
        st.markdown(f"**Intended use.** {manifest.intended_use or 'not stated'}")
        training = manifest.raw.get("training_data") or manifest.raw.get("training")
        if training:
            st.markdown("**Training data**")
            if isinstance(training, str):
                st.markdown(training)
            else:
                st.json(training, expanded=False)
        else:
            st.markdown("**Training data.** not stated in the manifest")

        left, right = st.columns([2, 3])
        with left:
            st.markdown("**Input**")
            st.dataframe(input_spec_frame(manifest), width="stretch", hide_index=True)
            st.caption(f"Fusion of the two images: `{manifest.fusion_rule}`.")
        with right:
            st.markdown("**Models**")
            st.dataframe(models_frame(manifest), width="stretch", hide_index=True)

        st.markdown("**Metrics (with 95% CIs)**")
        metrics = metrics_frame(manifest)
        if metrics is None:
            st.caption("No metrics in the manifest.")
        elif metrics.empty:
            st.json(manifest.metrics, expanded=False)
        else:
            st.dataframe(metrics, width="stretch", hide_index=True)

        card = read_model_card(folder)
        with st.expander("Model card (README.md)", expanded=is_active):
            if card is None:
                st.caption("This set has no README.md.")
            else:
                st.markdown(card)
        with st.expander("manifest.json"):
            st.json(manifest.raw, expanded=False)

if invalid:
    st.header("Invalid weight sets")
    st.caption("These folders have a manifest.json that could not be read; they are not offered anywhere.")
    for folder, message in invalid.items():
        st.error(f"`{folder}`: {message}")
if not manifests and not invalid:
    st.info(f"No weight set under `{root}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
