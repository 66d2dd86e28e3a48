"""The Weight sets page's "Add a weight set": upload checkpoints, describe them, pack them in the app.

The form gathers what ``python -m softmass_core pack`` takes; the files go to a
private temporary folder, are read by :func:`softmass_core.weights.pack.pack`
(``torch.load(weights_only=True)``: nothing is unpickled) and the new set is
written under the weights folder, where every page lists it at once.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from softmass_core.errors import SoftmassError
from softmass_core.labels import DATA_KIND_NAMES, MODEL_NAMES, SUBMODEL_IDS, display_name
from softmass_core.weights.manifest import DATA_KINDS, RESIZE_MODES, InputSpec
from ui import common

PREFIX = "addset"
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "bin", "ckpt", "onnx"]


def _upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def add_weight_set_form(root: Path) -> None:
    """The expander with the form; on success the new set's card is shown and the lists are refreshed."""
    with st.expander("Add a weight set from your checkpoints", icon=":material/add_box:"):
        st.caption(
            "Checkpoints as training scripts save them: safetensors, .pt/.pth/.bin/.ckpt state dicts or training "
            "checkpoints (DDP and torch.compile prefixes, torchvision ConvNeXt names), or ONNX exports. They are "
            "read with torch.load(weights_only=True), which never runs code from a file. Every tensor must fit "
            f"the architecture or nothing is written. Files up to {_upload_limit_mb()} MB each (the server's "
            "upload limit); larger ones: `python -m softmass_core pack` on the server."
        )
        with st.form(f"{PREFIX}.form", clear_on_submit=False):
            c1, c2, c3 = st.columns(3)
            set_id = c1.text_input("Id (folder name)", key=f"{PREFIX}.id", placeholder="my-set")
            arch = c2.text_input("timm architecture", value="convnext_tiny", key=f"{PREFIX}.arch")
            data_kind = c3.selectbox(
                "What the images are", DATA_KINDS, format_func=lambda k: DATA_KIND_NAMES.get(k, k),
                index=None, key=f"{PREFIX}.kind", placeholder="Choose",
            )  # fmt: skip
            c4, c5, c6 = st.columns(3)
            width = c4.number_input("Input width", 32, 2048, 470, key=f"{PREFIX}.w")
            height = c5.number_input("Input height", 32, 2048, 280, key=f"{PREFIX}.h")
            resize = c6.selectbox("ROI resize", list(RESIZE_MODES), key=f"{PREFIX}.resize")
            order = st.radio(
                "Class order of DLM-1's head", ["benign, malignant", "malignant, benign"], horizontal=True,
                key=f"{PREFIX}.order",
            )  # fmt: skip
            files = {"dlm1": st.file_uploader("DLM-1 checkpoint", CHECKPOINT_TYPES, key=f"{PREFIX}.dlm1")}
            st.caption("DLM-2 is optional: give all five sub-models (class order other, subtype) or none.")
            cols = st.columns(5)
            for col, (sm, subtype) in zip(cols, SUBMODEL_IDS.items(), strict=True):
                files[sm] = col.file_uploader(
                    f"{MODEL_NAMES[sm]} ({display_name(subtype)})", CHECKPOINT_TYPES, key=f"{PREFIX}.{sm}"
                )
            cohort = st.text_input(
                "Validation cohort CSV on the server (optional)", key=f"{PREFIX}.cohort",
                help="Thresholds are chosen on its 'validation' cohort and metrics recorded. Without it every "
                "threshold is an unvalidated 0.5, and the card says so.",
            )  # fmt: skip
            description = st.text_input("One line on what the set is", key=f"{PREFIX}.desc")
            submitted = st.form_submit_button("Pack the weight set", type="primary")
        if submitted:
            _pack_upload(root, set_id, arch, data_kind, int(width), int(height), resize, order, files, cohort,
                         description)  # fmt: skip


def _pack_upload(root, set_id, arch, data_kind, width, height, resize, order, files, cohort, description) -> None:
    from softmass_core.weights.pack import pack

    given = {m: f for m, f in files.items() if f is not None}
    problems = []
    if not set_id.strip():
        problems.append("give the set an id")
    if data_kind is None:
        problems.append("say what the images are (the model card states it)")
    if "dlm1" not in given:
        problems.append("upload DLM-1's checkpoint")
    if problems:
        st.error("To pack: " + "; ".join(problems) + ".")
        return
    work = Path(tempfile.mkdtemp(prefix="softmass-upload-"))
    try:
        paths = {}
        for model_id, upload in given.items():
            name = Path(upload.name).name or f"{model_id}.bin"
            (work / model_id).mkdir()
            path = work / model_id / name
            path.write_bytes(upload.getvalue())
            paths[model_id] = path
        labels = {"dlm1": [c.strip() for c in order.split(",")]}
        with st.spinner("Reading the checkpoints and writing the set ..."), common.guarded():
            out, packed = pack(
                root / set_id.strip(), set_id=set_id.strip(), arch=arch.strip(),
                input_spec=InputSpec(width=width, height=height, resize_mode=resize), models=paths,
                data_kind=data_kind, labels=labels, description=description.strip(),
                cohort_csv=cohort.strip() or None,
            )  # fmt: skip
    except SoftmassError as exc:  # raised outside guarded() (e.g. writing the upload)
        st.error(str(exc))
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    common.list_weight_sets.clear()
    st.success(
        f"Weight set `{set_id.strip()}` written to `{out}`: "
        + "; ".join(f"{p.model_id} {p.source.name}: {p.report.line()}" for p in packed)
        + ". It is in the sidebar's list now."
    )
    card = common.read_model_card(out)
    if card:
        with st.container(border=True):
            st.markdown(card)
