# SPDX-License-Identifier: MIT
"""Shared fixtures: small trained digits models, built once per test session."""

from __future__ import annotations

import pytest
import torch

from bnn2hw.checkpoint import save_checkpoint
from bnn2hw.data import load_digits
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, seed_everything, train_two_stage


def pytest_collection_modifyitems(config, items):
    """``slow`` tests are opt-in: they run only when ``-m`` names them (``pytest -m slow``);
    otherwise they are deselected, and pytest's summary counts them as such."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    the machine's cores are shared, and oversubscription made the import tests 30x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits():
    return load_digits()


def _train(tmp_path_factory, digits, arch: str, surrogate: str, seed: int, **spec_over):
    torch.set_num_threads(1)
    spec = default_spec(arch, digits.in_shape, digits.num_classes)
    spec["surrogate"]["name"] = surrogate
    spec.update(spec_over)
    seed_everything(seed)
    model = build_model(spec)
    train_two_stage(model, digits, TrainConfig(epochs1=2, epochs2=2, seed=seed), progress=False)
    path = tmp_path_factory.mktemp(f"{arch}_{surrogate}") / "model.pt"
    save_checkpoint(path, model, spec, {"dataset": "digits", "test_accuracy": 0.0})
    return path, model, spec


TRAINED = [("mlp", "biper"), ("mlp", "ste"), ("mlp", "sawtooth"), ("cnn", "biper"), ("cnn", "fda")]


@pytest.fixture(scope="session", params=TRAINED, ids=[f"{a}-{s}" for a, s in TRAINED])
def trained(request, tmp_path_factory, digits):
    arch, sur = request.param
    return _train(tmp_path_factory, digits, arch, sur, seed=7)


@pytest.fixture(scope="session")
def mlp_ckpt(tmp_path_factory, digits):
    return _train(tmp_path_factory, digits, "mlp", "biper", seed=3, hidden=[64, 64])


@pytest.fixture(scope="session")
def cnn_ckpt(tmp_path_factory, digits):
    return _train(tmp_path_factory, digits, "cnn", "biper", seed=5)
