import json

from pwlock.runs import Run, run_key


def test_key_stable_and_sensitive():
    a = run_key("lock", {"lr": 1e-3, "epochs": 2}, {"start": "zoo/x"})
    assert a == run_key("lock", {"epochs": 2, "lr": 1e-3}, {"start": "zoo/x"})  # key order irrelevant
    assert a != run_key("lock", {"lr": 2e-3, "epochs": 2}, {"start": "zoo/x"})
    assert a != run_key("lock", {"lr": 1e-3, "epochs": 2}, {"start": "zoo/y"})
    assert a != run_key("wsu", {"lr": 1e-3, "epochs": 2}, {"start": "zoo/x"})


def test_finished_run_is_reused(tmp_path):
    calls = []

    def fn(d):
        calls.append(d)
        (d / "out.txt").write_text("hello")
        return {"value": 42}

    run = Run(tmp_path, "eval", "m", {"a": 1})
    assert run.compute(fn) == {"value": 42}
    assert run.compute(fn) == {"value": 42}
    assert len(calls) == 1
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "finished" and "git" in info and "versions" in info and "timings" in info
    assert info["spec"] == {"a": 1}


def test_partial_run_is_recomputed(tmp_path):
    run = Run(tmp_path, "eval", "m", {"a": 1})
    run.dir.mkdir(parents=True)
    (run.dir / "junk.txt").write_text("half written")  # no run.json: an interrupted attempt
    assert not run.done
    assert run.compute(lambda d: {"ok": True}) == {"ok": True}
    assert not (run.dir / "junk.txt").exists()


def test_failed_run_is_not_marked_finished(tmp_path):
    run = Run(tmp_path, "eval", "m", {"a": 1})

    def boom(d):
        raise RuntimeError("stage failed")

    try:
        run.compute(boom)
    except RuntimeError:
        pass
    assert not run.done
