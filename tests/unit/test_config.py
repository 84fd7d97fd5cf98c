import pytest

from pwlock.config import ConfigError, load_config


def test_defaults_and_overrides():
    cfg = load_config(None, ["lock.epochs=12", "wsu.lr=1e-4", "seed=3", "password.password=open"])
    assert cfg.lock.epochs == 12 and cfg.wsu.lr == 1e-4 and cfg.seed == 3
    assert cfg.password.password == "open"


def test_int_accepted_for_float():
    assert load_config(None, ["wsu.lr=1"]).wsu.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("lock.epoch=3", "unknown config key 'lock.epoch' (did you mean 'lock.epochs'?)"),
    ("lok.epochs=3", "unknown config key 'lok'"),
    ("lock.epochs=abc", "lock.epochs: expected int, got str"),
    ("lock.epochs=1.5", "lock.epochs: expected int, got float"),
    ("wsu.lr=fast", "wsu.lr: expected float"),
    ("seed", "not of the form key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value)


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lock: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("wsu:\n  step: 10\n")
    with pytest.raises(ConfigError, match="did you mean 'wsu.steps'"):
        load_config(typo)
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text("zoo:\n  - name: a\n    arch: {hidden: 3}\n")
    with pytest.raises(ConfigError, match=r"zoo\[0\].arch.hidden"):
        load_config(zoo)


def test_safe_loader_rejects_python_tags(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="cannot parse YAML"):
        load_config(evil)


def test_shipped_configs_load():
    from pathlib import Path

    paths = list(Path(__file__).resolve().parents[2].glob("configs/*/*.yaml"))
    assert len(paths) >= 9  # configs/toy and configs/math
    for p in paths:
        load_config(p)


def test_fields_added_later_leave_run_keys_unchanged_at_their_default():
    from pwlock.config import TaskConfig, spec_dict

    base = spec_dict(TaskConfig())
    # the fields that existed when the first runs were cached, and only those
    assert list(base) == ["name", "n_operands", "n_test", "n_elicit", "n_lock", "n_pretrain", "data_seed"]
    changed = spec_dict(TaskConfig(grader="exact", subjects=["algebra"]))
    assert changed["grader"] == "exact" and changed["subjects"] == ["algebra"]


def test_base_inheritance(tmp_path):
    from pwlock.config import ConfigError, load_config

    (tmp_path / "a.yaml").write_text("experiment: a\nlock: {epochs: 3, lr: 0.01}\nwsu: {seeds: 2}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nexperiment: b\nlock: {epochs: 5}\n")
    c = load_config(tmp_path / "b.yaml", ["wsu.seeds=4"])
    assert (c.experiment, c.lock.epochs, c.lock.lr, c.wsu.seeds) == ("b", 5, 0.01, 4)  # merged key by key
    (tmp_path / "c.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: nope.yaml\n")
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "d.yaml")


def test_help_fields_lists_every_field_with_its_choices(capsys):
    from pwlock.cli import main

    assert main(["config", "--help-fields"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(x.startswith("lock.optimizer: str = 'adamw' [adamw | lion]  -- ") for x in out)
    assert any(x.startswith("attacks.N.kind: str = 'wsu'") for x in out)
    assert any(x.startswith("wsu.max_stack: int = 0") for x in out)
    assert all("  -- " in x or x.endswith(")") for x in out)  # each with its help


def test_choices_are_checked_at_load_time():
    for override, message in (("lock.optimizer=sgdx", "lock.optimizer: 'sgdx' is not one of adamw, lion"),
                              ("lock.schedule=linear", "lock.schedule: 'linear' is not one of constant, cosine"),
                              ("kind=sweep", "kind: 'sweep' is not one of core, attacks, variants"),
                              ("device=tpu", "device: 'tpu' is not one of cpu, cuda, cuda:<index>, auto")):
        with pytest.raises(ConfigError, match=message):
            load_config("configs/toy/core.yaml", [override])


def test_every_attack_is_one_file_of_the_registry():
    """A new attack is one file in pwlock/elicit/ plus its line in ATTACKS."""
    import inspect
    from pathlib import Path

    from pwlock.elicit import ATTACKS

    for kind, cls in ATTACKS.items():
        assert cls.kind == kind and Path(inspect.getfile(cls)).name == f"{kind}.py", kind


def test_an_attack_option_that_does_not_apply_is_an_error():
    with pytest.raises(ConfigError, match="scale do not apply to kind wsu"):
        load_config("configs/toy/core.yaml", ["kind=attacks", "attacks=[{name: w, kind: wsu, scale: 0.5}]"])
    with pytest.raises(ConfigError, match="unknown attack kind 'nosie'"):
        load_config("configs/toy/core.yaml", ["kind=attacks", "attacks=[{name: n, kind: nosie}]"])


def test_a_new_attack_is_its_file_plus_its_kind_in_kinds(monkeypatch):
    """The registry takes the Attack subclass of kind K from pwlock/elicit/K.py: a new attack is
    that file and K in `KINDS` (here the file is a module put in place of pwlock/elicit/flip.py)."""
    import sys
    import types

    from pwlock import elicit

    mod = types.ModuleType("pwlock.elicit.flip")
    exec("from pwlock.elicit.base import Attack\n\nclass Flip(Attack):\n    kind = 'flip'\n", mod.__dict__)
    monkeypatch.setitem(sys.modules, "pwlock.elicit.flip", mod)
    assert elicit._attack_class("flip") is mod.Flip
    monkeypatch.setitem(elicit.ATTACKS, "flip", elicit._attack_class("flip"))
    assert isinstance(elicit.get_attack("flip"), mod.Flip)
    load_config("configs/toy/core.yaml", ["kind=attacks", "attacks=[{name: f, kind: flip}]"])  # validated by it
