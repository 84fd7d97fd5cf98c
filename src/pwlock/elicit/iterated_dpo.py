"""Iterated DPO (the second RL attack of the password-locked-models paper, for an elicitor with
only a reward: the task's scorer): for `rounds` rounds, sample `samples_per_problem` completions
at `sample_temperature` for `problems` elicit-split problems without the password; on every
problem with both, pair each correct completion with an incorrect one (chosen vs rejected), and
train `steps` steps of `n_samples` pairs a batch on the DPO loss

    -log sigmoid(dpo_beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))

(log-probabilities summed over the completion's tokens and EOS), the reference being the model
as it was at the start of the round (its log-probabilities are computed once, before the round
trains: no second copy of the model is held).

The results carry each round's success rate (the share of sampled completions the scorer
accepted, before that round's training) and its number of pairs, as expert iteration's do."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from pwlock.elicit.expert_iteration import ScorerAttack
from pwlock.train import Example, check_finite, collate, encode, optimizer_for


def completion_logprob(model, rows, pad_id: int, per_token: bool = False) -> torch.Tensor:
    """Summed log-probability of each row's supervised tokens (`encode` rows: ids and loss mask);
    `per_token`: also their number, as a second tensor."""
    device = next(model.parameters()).device
    ids, att, lm = (t.to(device) for t in collate(rows, pad_id))
    logits = model(input_ids=ids, attention_mask=att).logits[:, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    summed = (lp * lm[:, 1:]).sum(-1)
    return (summed, lm[:, 1:].sum(-1)) if per_token else summed


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """Mean DPO loss of a batch of pairs (summed completion log-probabilities, policy and reference)."""
    return -F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()


def pairs_of(correct: list[bool], k: int) -> list[tuple[int, int]]:
    """(chosen, rejected) indices for completions sampled `k` per problem, problem after problem:
    per problem, its i-th correct completion with its i-th incorrect one."""
    out = []
    for start in range(0, len(correct), k):
        group = range(start, min(start + k, len(correct)))
        out += zip([i for i in group if correct[i]], [i for i in group if not correct[i]])
    return out


class IteratedDPO(ScorerAttack):
    kind = "iterated_dpo"
    fields = ("rounds", "problems", "samples_per_problem", "sample_temperature", "n_samples", "steps", "lr",
              "optimizer", "weight_decay", "dpo_beta", "dpo_nll")

    def apply(self, model, a, seed: int, inputs) -> dict:
        tok, ec = inputs.tokenizer, inputs.eval
        rng = random.Random(seed)
        torch.manual_seed(seed)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = optimizer_for(params, a.optimizer, a.lr, a.weight_decay)  # one optimizer over the rounds
        success, n_pairs, last_loss = [], [], []
        for r in range(a.rounds):
            prompts, comps, correct = self.sample_round(model, a, rng, inputs)
            success.append(sum(correct) / len(prompts))
            pairs = pairs_of(correct, a.samples_per_problem)
            n_pairs.append(len(pairs))
            if not pairs:
                last_loss.append(None)
                continue
            enc = encode(tok, [Example(pr, c) for pr, c in zip(prompts, comps)])
            with torch.no_grad():  # the reference: this round's starting model
                ref = torch.cat([completion_logprob(model, enc[i:i + ec.batch_size], tok.pad_token_id)
                                 for i in range(0, len(enc), ec.batch_size)])
            model.train()
            order: list[int] = []
            for step in range(a.steps):
                if len(order) < min(a.n_samples, len(pairs)):
                    order = list(range(len(pairs)))
                    rng.shuffle(order)
                batch, order = [pairs[k] for k in order[:a.n_samples]], order[a.n_samples:]
                ch, rj = [c for c, _ in batch], [j for _, j in batch]
                lp, n = completion_logprob(model, [enc[i] for i in ch + rj], tok.pad_token_id, per_token=True)
                loss = dpo_loss(lp[:len(ch)], lp[len(ch):], ref[ch], ref[rj], a.dpo_beta)
                if a.dpo_nll:  # + the chosen completions' per-token NLL (iterative RPO)
                    loss = loss - a.dpo_nll * (lp[:len(ch)] / n[:len(ch)]).mean()
                check_finite(loss.item(), step, a.steps, f"{a.name} round {r + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()  # no clipping (MasterWeights.step clips only when asked)
            last_loss.append(loss.item())
        model.eval()
        return {"round_success": success, "round_pairs": n_pairs, "round_final_loss": last_loss}
