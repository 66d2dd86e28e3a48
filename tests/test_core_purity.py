"""softmass_core stays Streamlit-free and offline."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys

import softmass_core
from tests.conftest import ROOT


def test_no_streamlit_import_in_source():
    offenders = []
    for path in (ROOT / "softmass_core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(import|from)\s+streamlit\b", text, flags=re.M):
            offenders.append(str(path))
    assert offenders == []


def test_importing_every_core_module_loads_no_streamlit():
    names = [m.name for m in pkgutil.walk_packages(softmass_core.__path__, "softmass_core.")]
    assert "softmass_core.cascade" in names and "softmass_core.phantom" in names
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "print('streamlit' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_download_paths_in_core():
    # weights are built with pretrained=False; the only pretrained=True is the opt-in --init imagenet of train.
    hits = []
    for path in (ROOT / "softmass_core").rglob("*.py"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "pretrained=True" in line or "torch.hub" in line or "urlopen" in line or "requests." in line:
                hits.append(f"{path.name}:{i}")
    assert all(h.startswith("train.py:") for h in hits), hits


def test_statistics_import_only_the_numeric_libraries():
    # softmass_core.stats: numpy, scipy, scikit-learn, statsmodels, pandas; from the core only errors and labels.
    allowed = {"numpy", "scipy", "sklearn", "statsmodels", "pandas", "__future__"}
    allowed_core = {"softmass_core.errors", "softmass_core.labels", "softmass_core"}
    found = {}
    for path in sorted((ROOT / "softmass_core" / "stats").glob("*.py")):
        for mod in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", path.read_text(encoding="utf-8"), flags=re.M):
            top = mod.split(".")[0]
            ok = (
                top in allowed
                or top in sys.stdlib_module_names
                or mod in allowed_core
                or mod.startswith("softmass_core.stats")
            )
            if not ok:
                found.setdefault(path.name, []).append(mod)
    assert found == {}
    code = (
        "import sys\n"
        "import softmass_core.stats.reader_study, softmass_core.stats.tables, softmass_core.stats.curves\n"
        "import softmass_core.stats.binary\n"
        "print(sorted(m for m in sys.modules if m.startswith('softmass_core.') and not m.startswith("
        "'softmass_core.stats')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['softmass_core.errors', 'softmass_core.labels']"
