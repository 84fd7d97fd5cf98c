"""Locking options (E12-E14) and attack options (E7, E11) do what they say, on tiny models."""

import pytest
import torch

from pwlock.config import AttackConfig, ConfigError, PasswordConfig, load_config, with_overrides
from pwlock.elicit import get_attack
from pwlock.elicit import wsu as attacks
from pwlock.elicit.average import disjoint_sets
from pwlock.lock import lock_mixture, weak_distributions
from pwlock.train import Example, collate, encode, masked_lm_loss, soft_targets, train


def _problems(task, n=6):
    return task.splits()["lock"][:n]


def test_mixture_without_password_branch_and_with_a_second_password(task):
    probs = _problems(task)
    strong = {p.id: "S" + p.solution for p in probs}
    weak = {p.id: "W" for p in probs}
    low = {p.id: "L" for p in probs}
    pw = PasswordConfig(p_no_password=0.5)
    full = lock_mixture(task, probs, strong, weak, pw, seed=1)
    assert [e.completion[0] for e in full] == ["S", "W"] * len(probs)
    plain = lock_mixture(task, probs, strong, weak, pw, seed=1, password_branch=False)
    assert plain == full[1::2]  # the same weak examples (same wrong passwords), nothing else
    assert not any("kiwi" in e.prompt for e in plain)
    three = lock_mixture(task, probs, strong, weak, pw, seed=1, second=("mango", low))
    assert three[0::3] == full[0::2] and three[1::3] == full[1::2]
    assert all(e.completion == "L" and e.prompt == task.prompt(p, "mango") for e, p in zip(three[2::3], probs))


def test_soft_one_hot_targets_give_the_cross_entropy(tok, tiny_model, task):
    probs = _problems(task, 4)
    exs = [Example(task.prompt(p, None), p.solution) for p in probs]
    rows = encode(tok, exs)
    ids, att, lm = collate(rows, tok.pad_token_id)
    V = tiny_model.config.vocab_size
    # one-hot on each completion token (and EOS): KL to it = its cross-entropy
    hot = [torch.nn.functional.one_hot(torch.tensor(x[len(x) - sum(m):]), V).float() for x, m in rows]
    soft_exs = [Example(e.prompt, e.completion, target=h) for e, h in zip(exs, hot)]
    soft = soft_targets(soft_exs, rows, ids.shape[1], V)
    logits = tiny_model(input_ids=ids, attention_mask=att).logits
    torch.testing.assert_close(masked_lm_loss(logits, ids, lm, soft), masked_lm_loss(logits, ids, lm))
    # a uniform target: the KL is not the cross-entropy
    uni = [Example(e.prompt, e.completion, target=torch.full_like(h, 1 / V)) for e, h in zip(exs, hot)]
    other = masked_lm_loss(logits, ids, lm, soft_targets(uni, rows, ids.shape[1], V))
    assert not torch.isclose(other, masked_lm_loss(logits, ids, lm))
    with pytest.raises(ValueError, match="soft target over"):
        soft_targets([Example(exs[0].prompt, exs[0].completion, target=hot[0][:, :3])], rows[:1], ids.shape[1], V)


def test_soft_labels_distil_the_weak_models_distribution(tok, tiny_model, task):
    from pwlock.config import ArchConfig
    from pwlock.models import build_model

    weak = build_model(ArchConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok, seed=3)
    probs = _problems(task, 8)
    prompts = [task.prompt(p, None) for p in probs]
    comps = [p.solution for p in probs]
    dists = weak_distributions(weak, tok, prompts, comps)
    for d, c in zip(dists, comps):
        assert d.shape == (len(c) + 1, len(tok))
        torch.testing.assert_close(d.sum(-1), torch.ones(len(c) + 1))
    # the distribution at the first completion token is the weak model's next-token distribution
    ids = tok(prompts[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ref = torch.softmax(weak(input_ids=torch.tensor([ids])).logits[0, -1], -1)
    torch.testing.assert_close(dists[0][0], ref, atol=1e-5, rtol=1e-4)
    exs = [Example(pr, c, target=d) for pr, c, d in zip(prompts, comps, dists)]
    losses = train(tiny_model, tok, exs, steps=30, batch_size=8, lr=3e-3, progress=False)
    assert losses[-1] < losses[0]  # the KL to the weak model's distribution falls
    with pytest.raises(ValueError, match="temperature > 0"):
        weak_distributions(weak, tok, prompts, comps, temperature=0.0)


def test_token_mask_keeps_the_tokens_better_without_password(tok, tiny_model, task):
    probs = _problems(task, 3)
    exs = [Example(task.prompt(p, None), p.solution) for p in probs]
    pwd = [task.prompt(p, "kiwi") for p in probs]
    masked = attacks.better_without_password(tiny_model, tok, exs, pwd)
    for ex, m, pw_prompt in zip(exs, masked, pwd):
        comp = tok(ex.completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

        def logps(prompt, comp=comp):  # one sequence at a time, no padding
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(tiny_model(input_ids=torch.tensor([p + comp])).logits[0], -1)
            return [float(lp[len(p) - 1 + j, t]) for j, t in enumerate(comp)]

        ref = [int(a > b) for a, b in zip(logps(ex.prompt), logps(pw_prompt))]
        assert list(m.keep) == ref
        # encode trains on exactly those tokens
        ids, mask = encode(tok, [m])[0]
        assert mask[len(ids) - len(comp):] == ref and sum(mask) == sum(ref)
    with pytest.raises(ValueError, match="Example.keep"):
        encode(tok, [Example(exs[0].prompt, exs[0].completion, keep=(1,))])


def test_average_is_the_mean_of_the_changes_and_sets_are_disjoint():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    deltas = [{n: torch.randn(t.shape, generator=g) for n, t in base.items()} for _ in range(5)]
    avg = attacks.average_weights([{n: base[n] + d[n] for n in base} for d in deltas])
    for n in base:
        torch.testing.assert_close(avg[n], base[n] + torch.stack([d[n] for d in deltas]).mean(0))
    pool = [{"problem_id": f"p{i}"} for i in range(40)]
    sets = disjoint_sets(pool, 4, 8, seed=3)
    ids = [x["problem_id"] for s in sets for x in s]
    assert len(sets) == 8 and all(len(s) == 4 for s in sets) and len(set(ids)) == 32
    assert sets == disjoint_sets(pool, 4, 8, seed=3) != disjoint_sets(pool, 4, 8, seed=4)
    with pytest.raises(ValueError, match="raise task.n_elicit"):
        disjoint_sets(pool, 4, 11, seed=0)


def test_bad_options_are_errors():
    cfg = load_config("configs/toy/core.yaml")
    with pytest.raises(ConfigError, match="token_mask: 'bogus' is not one of none, better_without_password"):
        with_overrides(cfg, ["kind=attacks", "attacks=[{name: x, token_mask: bogus}]"])
    with pytest.raises(ValueError, match="token_mask do not apply to kind noise"):
        get_attack("noise").check(AttackConfig(name="x", kind="noise", scale=0.1, token_mask="better_without_password"))
    with pytest.raises(ConfigError, match="lock.lables"):
        with_overrides(cfg, ["lock.lables=soft"])
    with pytest.raises(ConfigError, match="lock.labels: 'hard' is not one of samples, soft, argmax"):
        with_overrides(cfg, ["lock.labels=hard"])
    with pytest.raises(ConfigError, match="second_password"):
        with_overrides(cfg, ["lock.second_password=lime"])


def test_new_options_leave_run_keys_alone():
    """Options added later are left out of run keys at their defaults: cached runs stay valid."""
    from pwlock.config import spec_dict

    cfg = load_config("configs/toy/core.yaml")
    assert set(spec_dict(cfg.lock)) == {"weak_model", "epochs", "lr", "optimizer", "weight_decay", "schedule",
                                        "warmup", "batch_size", "loss", "weak_temperature", "seed"}
    assert "parts" not in spec_dict(AttackConfig()) and "token_mask" not in spec_dict(AttackConfig())
    assert "labels" in spec_dict(with_overrides(cfg, ["lock.labels=soft"]).lock)


def _lock_cfg(**kw):
    from pwlock.config import LockConfig

    return LockConfig(**{"epochs": 2, "batch_size": 8, "lr": 1e-3, "warmup": 0, **kw})


def _mixture(task, n=16):
    probs = _problems(task, n)
    return ([Example(task.prompt(p, "kiwi" if i % 2 else None), p.solution) for i, p in enumerate(probs)],
            [Example(task.prompt(p, None), p.solution[:3]) for p in probs])


def test_overfit_episodes_during_locking(tok, tiny_model, task, tmp_path, monkeypatch):
    import pwlock.elicit.wsu as wsu
    import pwlock.lock as lock

    examples, weak = _mixture(task)
    calls = []
    real_train = lock.train

    def spy(model, tokenizer, exs, **kw):
        calls.append((len(exs), kw["steps"], kw["lr"]))
        return real_train(model, tokenizer, exs, **kw)

    monkeypatch.setattr(lock, "train", spy)
    monkeypatch.setattr(wsu, "train", spy)  # the episodes memorize with WSU's training
    cfg = _lock_cfg(overfit_every=3, overfit_samples=2, overfit_steps=4, overfit_lr=1e-4)
    lock.run_lock(tiny_model, tok, examples, cfg, seed=0, out_dir=tmp_path, overfit_pool=weak, progress=False)
    # 2 epochs x 2 steps = 4 lock steps: one episode after step 3 (none after the last step)
    assert calls[0][1] == 4 and calls[1:] == [(2, 4, 1e-4)]
    assert (tmp_path / "epoch_1").is_dir() and (tmp_path / "epoch_2").is_dir()
    with pytest.raises(ValueError, match="overfit_pool"):
        lock.run_lock(tiny_model, tok, examples, cfg, seed=0, out_dir=tmp_path)


def test_relock_rounds_save_one_checkpoint_per_round(tok, tiny_model, task, tmp_path):
    from pwlock.config import WSUConfig
    from pwlock.lock import relock_rounds
    from pwlock.models import load_checkpoint

    examples, weak = _mixture(task)
    cfg = _lock_cfg(relock_rounds=2, relock_fraction=0.5)
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    losses = relock_rounds(tiny_model, tok, examples, weak, cfg, WSUConfig(steps=3), seed=0, out_dir=tmp_path)
    assert len(losses) == 2  # half an epoch of 2 steps = 1 relocking step per round
    for e in (3, 4):
        _m, _, meta = load_checkpoint(tmp_path / f"epoch_{e}")
        assert meta["relock_round"] == e - 2
    assert any(not torch.equal(p, before[n]) for n, p in tiny_model.named_parameters())
    with pytest.raises(ValueError, match="relock_fraction"):
        load_config(None, ["lock.relock_rounds=1", "lock.relock_fraction=0.0"])


def test_attack_epoch_0_is_the_last_checkpoint_after_relock_rounds():
    """An attack at `epoch: 0` attacks the lock's last checkpoint: after E8's relock rounds, the
    last round's (an audit of the relocked model must not attack the lock before relocking)."""
    from pwlock.config import attack_epoch

    cfg = load_config(None, ["kind=attacks", "lock.epochs=8", "attacks=[{name: a, kind: wsu}]"])
    assert attack_epoch(cfg, cfg.attacks[0]) == 8
    cfg = load_config(None, ["kind=attacks", "lock.epochs=8", "lock.relock_rounds=3", "lock.relock_fraction=0.25",
                             "attacks=[{name: a, kind: wsu}, {name: b, kind: wsu, epoch: 9}]"])
    assert [attack_epoch(cfg, a) for a in cfg.attacks] == [11, 9]
