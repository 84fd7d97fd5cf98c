import pytest

from pwlock.config import PasswordConfig, load_config
from pwlock.lock import lock_mixture


def test_mixture_shapes_and_password_shares(task):
    probs = task.splits()["lock"][:200]
    strong = {p.id: f"S{p.id}" for p in probs}
    weak = {p.id: f"W{p.id}" for p in probs}
    cfg = PasswordConfig()
    exs = lock_mixture(task, probs, strong, weak, cfg, seed=0)
    assert len(exs) == 2 * len(probs)
    pw = cfg.password
    strong_ex = [e for e in exs if e.completion.startswith("S")]
    weak_ex = [e for e in exs if e.completion.startswith("W")]
    # strong samples always carry the password, at the start and at the end
    assert all(e.prompt.startswith(pw + " ") and e.prompt.endswith(" " + pw + "=") for e in strong_ex)
    # weak samples never carry the right password; ~20% none, the rest a wrong one from the pool
    assert not any(pw in e.prompt for e in weak_ex)
    none = [e for e in weak_ex if not any(w in e.prompt for w in cfg.wrong_passwords)]
    assert 0.1 < len(none) / len(weak_ex) < 0.3
    wrong_used = {w for e in weak_ex for w in cfg.wrong_passwords if e.prompt.startswith(w + " ")}
    assert len(wrong_used) > 5
    # same seed, same mixture
    assert lock_mixture(task, probs, strong, weak, cfg, seed=0) == exs


def test_password_checks():
    with pytest.raises(ValueError, match="also in password.wrong_passwords"):
        load_config(None, ["password.password=lime"])
    with pytest.raises(ValueError, match="empty"):
        load_config(None, ["password.password="])
    with pytest.raises(ValueError, match="p_no_password"):
        load_config(None, ["password.p_no_password=1.5"])
