import pytest
import torch

from pwlock.models import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip(tmp_path, tiny_model, tok):
    save_checkpoint(tiny_model, tok, tmp_path / "ck", {"epoch": 1})
    model, _tok2, meta = load_checkpoint(tmp_path / "ck")
    assert meta["epoch"] == 1 and len(meta["sha256"]) == 64
    x = torch.tensor([tok("3+4=", add_special_tokens=False)["input_ids"]])
    assert torch.equal(model(input_ids=x).logits, tiny_model.eval()(input_ids=x).logits)


def test_corrupt_checkpoint_is_detected(tmp_path, tiny_model, tok):
    save_checkpoint(tiny_model, tok, tmp_path / "ck")
    w = tmp_path / "ck" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "ck")


def test_partial_checkpoint_is_detected(tmp_path, tiny_model, tok):
    save_checkpoint(tiny_model, tok, tmp_path / "ck")
    (tmp_path / "ck" / "pwlock.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_checkpoint(tmp_path / "ck")
