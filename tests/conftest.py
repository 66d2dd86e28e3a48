"""Shared fixtures: tiny weight sets built on the fly (no downloads, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
# No test may reach a model hub, whatever the caller's environment says: offline, a hub lookup fails at once
# instead of after retries (or, on a networked machine, a download of real weights).
os.environ["HF_HUB_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parent.parent

#: Set to 1 to run the tests marked ``slow`` too (as ``--full`` does).
FULL_ENV = "SOFTMASS_FULL_TESTS"


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", default=False,
        help=f"also run the tests marked slow (the whole suite, as CI runs it; or set {FULL_ENV}=1)",
    )  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``slow`` unless ``--full`` (or SOFTMASS_FULL_TESTS=1) asks for the whole suite."""
    if config.getoption("--full") or os.environ.get(FULL_ENV, "").strip() == "1":
        return
    skip = pytest.mark.skip(reason=f"slow: runs with --full or {FULL_ENV}=1 (CI runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def make_tiny_weight_set(folder: Path, *, with_dlm2: bool = True, seed: int = 0, width: int = 96, height: int = 64):
    """A weight set of timm's ``test_convnext`` models with random weights."""
    import torch

    from softmass_core.labels import DLM1, SUBMODEL_IDS
    from softmass_core.weights.manifest import Architecture, InputSpec
    from softmass_core.weights.models import build_model
    from softmass_core.weights.weight_set import write_weight_set

    torch.manual_seed(seed)
    arch = Architecture("test_convnext")
    labels = {DLM1: ["benign", "malignant"]}
    if with_dlm2:
        labels.update({sm: ["other", subtype] for sm, subtype in SUBMODEL_IDS.items()})
    models = {}
    for mid in labels:
        model = build_model(arch, 2)
        # Give the heads a spread so probabilities are not all ~0.5.
        with torch.no_grad():
            model.head.fc.weight.mul_(20.0)
        models[mid] = model
    return write_weight_set(
        folder,
        models,
        set_id="tiny" if with_dlm2 else "tiny-dlm1",
        version="0.0.1",
        architecture=arch,
        input_spec=InputSpec(width=width, height=height),
        labels=labels,
        description="Tiny random test weights.",
    )


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return make_tiny_weight_set(tmp_path_factory.mktemp("ws") / "tiny")


@pytest.fixture(scope="session")
def tiny_weights_dlm1(tmp_path_factory) -> Path:
    return make_tiny_weight_set(tmp_path_factory.mktemp("ws1") / "tiny-dlm1", with_dlm2=False)


def synthetic_rgb(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.exp(-(((xx - width * 0.5) / (width * 0.2)) ** 2 + ((yy - height * 0.5) / (height * 0.25)) ** 2))
    img = 60 + 120 * blob + rng.normal(0, 20, (height, width))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


@pytest.fixture
def rgb_pair():
    return synthetic_rgb(1), synthetic_rgb(2)


#: A PostgreSQL URL for the store tests (``postgresql+psycopg://...``); .ci/run starts a server and sets it.
POSTGRES_ENV = "SOFTMASS_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url():
    """An empty PostgreSQL database for one test (its ``public`` schema dropped and made again).

    Without :data:`POSTGRES_ENV` the test is skipped, except under CI=1, where
    a missing server is a failure (as a missing browser is for the browser test).
    """
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        why = f"{POSTGRES_ENV} is not set: no PostgreSQL server to test the store on (.ci/run starts one)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    import sqlalchemy as sa

    def empty() -> None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()

    empty()
    yield url
    empty()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A reader-study database URL: an SQLite file, then an empty PostgreSQL database (see ``postgres_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.sqlite'}"
    return request.getfixturevalue("postgres_url")
