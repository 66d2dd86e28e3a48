"""softmass dashboard frame: `streamlit run app.py`.

Page config, the research-use notice, the weight-set picker in the sidebar
and the navigation.  Pages live in ``pages/`` and hold no clinical logic.
The first run of a fresh server starts loading the sidebar's weight set in
a background thread (``softmass_core.inference.serving``), so the first page draws
without waiting for torch and the models.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from softmass_core.errors import SoftmassError
from softmass_core.labels import DATA_KIND_NAMES
from ui.common import (
    DISCLAIMER,
    KEY_WEIGHTS,
    ROOT,
    default_weight_set,
    get_weight_set,
    list_weight_sets,
    warm_up_weight_set,
    weight_set_label,
    weight_set_models,
    weights_root,
)

st.set_page_config(page_title="softmass: DLM for soft-tissue masses", page_icon=":material/biotech:", layout="wide")

#: (file, title, icon); a page whose file is missing is left out of the menu.
PAGES = [
    ("pages/1_case.py", "Case", ":material/radiology:"),
    ("pages/2_cohort.py", "Cohort metrics", ":material/monitoring:"),
    ("pages/3_gradcam.py", "Grad-CAM comparison", ":material/compare:"),
    ("pages/4_reader_study.py", "Reader study", ":material/groups:"),
    ("pages/5_weight_sets.py", "Weight sets", ":material/inventory_2:"),
]
pages = {
    path: st.Page(path, title=title, icon=icon, default=(i == 0))
    for i, (path, title, icon) in enumerate(PAGES)
    if (ROOT / path).is_file()
}
nav = st.navigation(list(pages.values()))

with st.sidebar:
    st.warning(
        "**Research demo, not for clinical use.** " + DISCLAIMER.removeprefix("Research demo, not for clinical use. ")
    )
    manifests, invalid = list_weight_sets(str(weights_root()))
    if manifests:
        folders = [str(m.path.parent) for m in manifests]
        by_folder = dict(zip(folders, manifests, strict=True))
        if st.session_state.get(KEY_WEIGHTS) not in by_folder:
            st.session_state[KEY_WEIGHTS] = str(default_weight_set(manifests).path.parent)
        chosen = st.selectbox(
            "Weight set",
            folders,
            format_func=lambda f: weight_set_label(by_folder[f]),
            key=KEY_WEIGHTS,
            help="Every page uses this set. Models load once and serve every user.",
        )
        manifest = by_folder[chosen]
        st.caption(
            f"`{manifest.id}` version {manifest.version}, trained on "
            f"{DATA_KIND_NAMES.get(manifest.data_kind, manifest.data_kind)}; {weight_set_models(manifest)}"
            + ("" if manifest.has_dlm2 else ": benign or malignant, no subtype.")
        )
        # The first run of a fresh server starts loading this set (and a first forward pass) in the
        # background, so the page draws at once and the first diagnosis does not wait for it.
        warm_up_weight_set(chosen)
        try:
            get_weight_set(Path(chosen))  # manifest and sha256 only: a broken set says so here
        except SoftmassError as exc:
            st.error(str(exc))
        if "pages/5_weight_sets.py" in pages:
            st.page_link(pages["pages/5_weight_sets.py"], label="Model card of this set", icon=":material/description:")
    else:
        st.error(f"No weight set under `{weights_root()}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
    if invalid:
        st.caption(f"{len(invalid)} invalid weight set(s) skipped; see Weight sets.")

nav.run()
