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
        "test_a": {
            "dlm1": {
                "n": 156,
                "metrics": {"auc": {"value": 0.851, "ci_low": 0.79, "ci_high": 0.91, "method": "DeLong"}},
            }
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
    assert any("Intended use" in str(md.value) for md in page.markdown)
    assert any("Tiny model card" in str(md.value) for md in page.markdown)  # README rendered


def test_dlm1_only_sets_are_flagged(page):
    warnings = [str(w.value) for w in page.warning]
    assert len(warnings) == 2 and all("DLM-1 only" in w for w in warnings)


def test_checksums_verified_and_failed(page):
    ok = [str(s.value) for s in page.success]
    assert len(ok) == 2 and all(s.startswith("sha256 verified") for s in ok)
    failed = [str(e.value) for e in page.error if "sha256 check failed" in str(e.value)]
    assert len(failed) == 1
    assert "tiny-corrupt" in failed[0] and "does not match its sha256" in failed[0]


def test_metrics_with_confidence_intervals(page):
    frames = [df.value for df in page.dataframe]
    metric_tables = [f for f in frames if "95% CI" in f.columns]
    assert len(metric_tables) == 1
    row = metric_tables[0].iloc[0]
    assert (row["where"], row["metric"], row["value"], row["95% CI"], row["method"]) == (
        "test_a / dlm1",
        "auc",
        "0.851",
        "[0.790, 0.910]",
        "DeLong",
    )


def test_invalid_sets_are_listed_with_their_error(page):
    assert "Invalid weight sets" in [str(h.value) for h in page.header]
    invalid = [str(e.value) for e in page.error if "broken" in str(e.value)]
    assert len(invalid) == 1 and "not valid JSON" in invalid[0]
