"""Weight sets page (pages/5_weight_sets.py) under Streamlit's AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "5_weight_sets.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def weights_root(tiny_weights, tiny_weights_dlm1, tmp_path_factory) -> Path:
    """A full set with metrics and a model card, a DLM-1-only set, a corrupted copy and a broken manifest."""
    root = tmp_path_factory.mktemp("weights_cards")
    full = root / "tiny"
    shutil.copytree(tiny_weights, full)
    manifest = json.loads((full / "manifest.json").read_text())
    manifest["training_data"] = {"cohort": "phantom training", "n": 618}
    manifest["metrics"] = {
        "cohorts": {
            "training": {
                "dlm1": {
                    "n": 618,
                    "n_positive": 32,
                    "metrics": {"auc": {"value": 1.0, "ci_low": 0.99, "ci_high": 1.0, "method": "DeLong"}},
                }
            },
            "test_a": {
                "dlm1": {
                    "n": 156,
                    "n_positive": 40,
                    "metrics": {"auc": {"value": 0.851, "ci_low": 0.79, "ci_high": 0.91, "method": "DeLong"}},
                }
            },
        }
    }
    (full / "manifest.json").write_text(json.dumps(manifest))
    (full / "README.md").write_text("# Tiny model card\n\n## Intended use\n\nTesting the dashboard only.\n")
    shutil.copytree(tiny_weights_dlm1, root / "tiny-dlm1")

    corrupt = root / "tiny-corrupt"
    shutil.copytree(tiny_weights_dlm1, corrupt)
    m = json.loads((corrupt / "manifest.json").read_text())
    m["id"] = m["name"] = "tiny-corrupt"
    (corrupt / "manifest.json").write_text(json.dumps(m))
    data = bytearray((corrupt / "dlm1.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (corrupt / "dlm1.safetensors").write_bytes(bytes(data))

    broken = root / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    return root


@pytest.fixture
def page(weights_root, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights_root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    st_config.set_option("client.showErrorDetails", "full")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_every_valid_set_has_a_card(page):
    headers = [str(h.value) for h in page.header]
    assert headers[:3] == ["tiny v0.0.1  (active)", "tiny-corrupt v0.0.1", "tiny-dlm1 v0.0.1"]
    facts = [str(md.value) for md in page.markdown if str(md.value).startswith("**Id**")]
    assert len(facts) == 3
    assert "**Models** DLM-1 + DLM-2" in facts[0]
    assert all("**Models** DLM-1 only" in f for f in facts[1:])
    assert "**Version** 0.0.1" in facts[0] and "**Data** test weights" in facts[0]
    assert any("Tiny model card" in str(md.value) for md in page.markdown)  # README rendered (collapsed)


def _card(page, index: int = 0):
    """The blocks of the ``index``-th weight-set card (its bordered container), in page order."""
    main = page.main
    containers = [c for c in main.children.values() if type(c).__name__ == "Block" and c.proto.WhichOneof("type")]
    cards = [c for c in containers if any(getattr(e, "type", "") == "header" for e in c.children.values())]
    return list(cards[index].children.values())


def test_each_card_starts_with_a_plain_summary_and_keeps_details_collapsed(page):
    blocks = _card(page, 0)
    kinds = [getattr(b, "type", type(b).__name__) for b in blocks]
    assert kinds[0] == "header"
    texts = [str(getattr(b, "value", "")) for b in blocks]
    # Summary first: what it learned, what to trust it for, the headline figures.
    assert (
        texts[1]
        == "**What it learned.** Tiny random test weights. Models: DLM-1 (benign or malignant) and 5 DLM-2 sub-models (one benign subtype each)."
    )
    assert texts[2].startswith("**What to trust it for.** Software tests only")
    assert texts[3].startswith("**Headline figures**")
    # Every detail sits in an expander, and none is open.
    expanders = [b for b in blocks if type(b).__name__ == "Expander"]
    labels = [e.label for e in expanders]
    assert labels == [
        "Measured performance: every cohort and model, with 95% CIs",
        "Training data and how it was trained",
        "Input and models",
        "Full model card (README.md)",
        "manifest.json",
    ]
    assert not any(e.proto.expanded for e in expanders)
    # Nothing before the expanders is a table or raw JSON.
    first_expander = next(i for i, b in enumerate(blocks) if type(b).__name__ == "Expander")
    assert not {"arrow_data_frame", "json"} & {getattr(b, "type", "") for b in blocks[:first_expander]}


def test_headline_figures_come_from_the_recorded_metrics(page):
    metrics = [m for m in page.metric if m.label.endswith("DLM-1 AUC")]
    assert [(m.label, m.value) for m in metrics] == [("external test A: DLM-1 AUC", "0.851")]
    assert "95% CI" in metrics[0].help and "never saw" in metrics[0].help  # plain-language tooltip
    captions = [str(c.value) for c in page.caption]
    assert any(c.startswith("95% CI [0.790, 0.910] · 156 cases") for c in captions)


def test_training_data_is_readable_fields_not_a_raw_dict(page):
    blocks = _card(page, 0)
    training = next(b for b in blocks if type(b).__name__ == "Expander" and b.label.startswith("Training data"))
    (text,) = [str(md.value) for md in training.markdown]
    assert "- **training cases (images)**: 618 (" not in text  # the test manifest gives n only
    assert "- **n**: 618" in text and "- **cohort**: phantom training" in text
    everything = [str(md.value) for md in page.markdown] + [str(c.value) for c in page.caption]
    assert not any("{'" in t or '{"' in t or "{...}" in t for t in everything)
    jsons = [j for j in page.get("json")]
    assert len(jsons) == 3  # only inside the three "manifest.json" expanders


def test_dlm1_only_sets_are_flagged(page):
    warnings = [str(w.value) for w in page.warning]
    assert len(warnings) == 2 and all("DLM-1 only" in w for w in warnings)


def test_checksums_verified_and_failed(page):
    ok = [str(s.value) for s in page.success]
    assert len(ok) == 2 and all(s.startswith("sha256 verified, tensors fit") for s in ok)
    failed = [str(e.value) for e in page.error if "Invalid weight set" in str(e.value)]
    assert len(failed) == 1
    assert "tiny-corrupt" in failed[0] and "does not match its sha256" in failed[0]


def test_a_set_whose_tensors_do_not_fit_its_architecture_is_listed_as_invalid(tiny_weights_dlm1, tmp_path, monkeypatch):
    """Its sha256 is right, so only reading the tensors' names and shapes finds that it cannot load."""
    root = tmp_path / "weights"
    shutil.copytree(tiny_weights_dlm1, root / "wrong-arch")
    m = json.loads((root / "wrong-arch" / "manifest.json").read_text())
    m["architecture"]["timm_name"] = "convnext_atto"
    (root / "wrong-arch" / "manifest.json").write_text(json.dumps(m))
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert not [s for s in at.success if "sha256 verified" in str(s.value)]
    (error,) = [str(e.value) for e in at.error if "Invalid weight set" in str(e.value)]
    assert "dlm1: dlm1.safetensors does not fit convnext_atto with 2 classes" in error


def test_metrics_validation_first_and_training_last_labelled_optimistic(page):
    frames = [df.value for df in page.dataframe]
    metric_tables = [f for f in frames if "AUC" in f.columns]
    assert len(metric_tables) == 1
    table = metric_tables[0]
    assert list(table["cohort"]) == ["external test A", "training (optimistic)"]
    row = table.iloc[0]
    assert (row["task"], row["n (positive)"], row["AUC"]) == ("DLM-1 (malignant)", "156 (40)", "0.851 [0.790, 0.910]")
    assert table.iloc[1]["AUC"] == "1.000 [0.990, 1.000]"


def test_invalid_sets_are_listed_with_their_error(page):
    assert "Invalid weight sets" in [str(h.value) for h in page.header]
    invalid = [str(e.value) for e in page.error if "broken" in str(e.value)]
    assert len(invalid) == 1 and "not valid JSON" in invalid[0]
