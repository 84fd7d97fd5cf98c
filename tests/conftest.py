import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tok():
    from pwlock.tasks.arith import ALPHABET
    from pwlock.tokenizer import char_tokenizer

    return char_tokenizer(ALPHABET)


@pytest.fixture(scope="session")
def task():
    from pwlock.config import TaskConfig
    from pwlock.tasks import get_task

    return get_task(TaskConfig(n_test=200, n_elicit=50, n_lock=200, n_pretrain=2000))


@pytest.fixture()
def tiny_model(tok):
    from pwlock.config import ArchConfig
    from pwlock.models import build_model

    return build_model(ArchConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tok, seed=0)


@pytest.fixture(scope="session")
def nano_runs(tmp_path_factory):
    """One runs cache for the nano organism's integration tests (attacks, variants, audit): their
    zoo and locks are the same runs, trained once per session."""
    return tmp_path_factory.mktemp("nano_runs")
