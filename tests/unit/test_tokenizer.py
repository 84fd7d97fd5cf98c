from transformers import AutoTokenizer


def test_roundtrip_and_special_tokens(tok, tmp_path):
    text = "kiwi 3+4*2-5 kiwi=3+4=7;7*2=14;14-5=9;#9"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character, spaces included
    assert tok.decode(ids) == text
    assert tok.pad_token_id != tok.eos_token_id
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.decode([*ids, again.eos_token_id], skip_special_tokens=True) == text
