"""Iterated DPO's pieces: the pairing of a problem's correct and incorrect samples, the loss, and
the summed completion log-probability it is computed from."""

import math

import torch

from pwlock.elicit.iterated_dpo import dpo_loss, pairs_of


def test_pairs_within_each_problem_only():
    # two problems, 3 samples each: problem 0 has 1 correct of 3, problem 1 none
    assert pairs_of([False, True, False, False, False, False], 3) == [(1, 0)]
    # 2 correct and 2 incorrect: two disjoint pairs, in order
    assert pairs_of([True, False, True, False], 4) == [(0, 1), (2, 3)]
    assert pairs_of([True, True], 2) == []


def test_dpo_loss_is_log2_at_the_reference_and_falls_when_chosen_gains():
    ref_c, ref_r = torch.tensor([-3.0]), torch.tensor([-2.0])
    assert math.isclose(dpo_loss(ref_c, ref_r, ref_c, ref_r, 0.1).item(), math.log(2), rel_tol=1e-6)
    better = dpo_loss(ref_c + 1.0, ref_r - 1.0, ref_c, ref_r, 0.1).item()
    assert better < math.log(2)
    # beta scales the margin: -log sigmoid(beta * 2)
    assert math.isclose(better, -math.log(1 / (1 + math.exp(-0.2))), rel_tol=1e-6)


def test_completion_logprob_sums_the_supervised_tokens(tok, tiny_model):
    from pwlock.elicit.iterated_dpo import completion_logprob
    from pwlock.train import Example, collate, encode, masked_lm_loss

    exs = [Example("3+4*2=", "3+4=7;7*2=14;#14"), Example("1+1+1=", "1+1=2;2+1=3;#3")]
    rows = encode(tok, exs)
    with torch.no_grad():
        both = completion_logprob(tiny_model, rows, tok.pad_token_id)  # row 2 padded to row 1's length
        for i, row in enumerate(rows):
            ids, att, lm = collate([row], tok.pad_token_id)
            n = lm[:, 1:].sum()
            mean_nll = masked_lm_loss(tiny_model(input_ids=ids, attention_mask=att).logits, ids, lm)
            torch.testing.assert_close(both[i], -mean_nll * n, rtol=1e-4, atol=1e-4)
