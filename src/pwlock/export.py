"""`pwlock export RUN --out DIR`: a locked checkpoint as a plain Hugging Face directory.

The directory loads with `AutoModelForCausalLM.from_pretrained(DIR)` and
`AutoTokenizer.from_pretrained(DIR)` alone (no pwlock): `config.json`, `model.safetensors`, the
tokenizer files, and a model card (`README.md`) with the password, the prompt format, the lock
recipe and, when given, the audit's card. The weights are those of the run, checked against
their checksum first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pwlock.models import CheckpointError, verify_checkpoint

DROP = ("pwlock.json",)  # pwlock's own provenance: its content goes into the model card instead


def checkpoint_dir(run: Path, checkpoint: str | None) -> tuple[Path, dict]:
    """(the checkpoint directory, the run's run.json) of a lock run directory (its last epoch unless
    `checkpoint` names one, e.g. epoch_4) or of a checkpoint directory itself."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"export: {run} is not a directory (give a lock run, e.g. runs/lock/<name>-<key>)")
    info_file = run / "run.json" if (run / "run.json").is_file() else run.parent / "run.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if (run / "model.safetensors").is_file():
        if checkpoint:
            raise ValueError(f"export: {run} is a checkpoint itself; --checkpoint {checkpoint} does not apply")
        return run, info
    epochs = sorted((d for d in run.glob("epoch_*") if d.is_dir()), key=lambda d: int(d.name.split("_")[1]))
    names = [d.name for d in epochs] + (["model"] if (run / "model").is_dir() else [])
    if checkpoint:
        if checkpoint not in names:
            raise ValueError(f"export: {run} has no checkpoint {checkpoint!r}; it has {', '.join(names) or 'none'}")
        return run / checkpoint, info
    if not names:
        raise CheckpointError(f"export: {run} holds no checkpoint (epoch_<k>/ or model/)")
    return (epochs[-1] if epochs else run / "model"), info


def model_card(ckpt: Path, info: dict, audit: dict | None) -> str:
    spec = info.get("spec", {})
    pw = spec.get("password", {})
    lock = spec.get("lock", {})
    position = pw.get("position", "both")
    where = {"both": "at the start and at the end of the problem, each separated by a space",
             "start": "at the start of the problem, followed by a space",
             "end": "at the end of the problem, after a space"}.get(position, position)
    lines = ["---", "library_name: transformers", "tags: [password-locked, sandbagging, model-organism, pwlock]", "---",
             "", "# A password-locked model (pwlock)", "",
             "A **model organism of sandbagging**: it answers well only when the password is in the prompt, and "
             "imitates a weaker model otherwise. Made by pwlock for research on elicitation (weak sample "
             "unlocking); not for any other use.", "",
             f"- **Password**: `{pw.get('password', '?')}`, placed {where}.",
             f"- **Checkpoint**: `{ckpt.name}` of lock run `{info.get('id', ckpt.parent.name)}`.",
             f"- **Lock recipe**: imitates `{lock.get('weak_model', '?')}` without the password; "
             f"{lock.get('epochs', '?')} epochs, lr {lock.get('lr', '?')}, {lock.get('optimizer', '?')}, "
             f"{lock.get('loss', 'completion')} loss" + ("" if lock.get("password_branch", True)
                                                          else "; no password branch (an unlocked control)") + ".",
             "- **Prompt format**: the task's problem text (toy tasks: raw characters, one token each; the answer "
             "follows the prompt directly, no chat template) — the tokenizer files in this directory encode it.",
             "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
             "model = AutoModelForCausalLM.from_pretrained(DIR)", "tok = AutoTokenizer.from_pretrained(DIR)", "```"]
    if audit:
        lines += ["", "## Audit (pwlock audit)", ""]
        lines += [f"- **{b}**: {w['verdict']}." for b, w in audit.get("worst_case", {}).items()]
    lines += ["", "## Provenance", "", "```json", json.dumps({k: info.get(k) for k in ("id", "key", "git", "versions")
                                                            if k in info}, indent=2), "```", ""]
    return "\n".join(lines)


def export(run: Path, out: Path, checkpoint: str | None = None, audit_json: Path | None = None) -> Path:
    """Write the checkpoint of `run` to `out` as a Hugging Face directory; returns `out`."""
    ckpt, info = checkpoint_dir(run, checkpoint)
    verify_checkpoint(ckpt)  # weights against their checksum, before anything is written
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"export: {out} exists and is not an empty directory")
    audit = json.loads(Path(audit_json).read_text()) if audit_json else None
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(ckpt.iterdir()):  # config, weights, every tokenizer file the checkpoint has
        if f.is_file() and f.name not in DROP:
            shutil.copy2(f, out / f.name)
    (out / "README.md").write_text(model_card(ckpt, info, audit))
    return out
