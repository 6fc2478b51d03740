"""``score_mode="expected"``: an answer's score read from the model's distribution over digits, not its text.

After the reasoning, where the answer writes its number (``<answer>3.75</answer>``), each digit of the number
was generated from a distribution over the vocabulary. Restricted to the ten digit tokens and renormalised,
the distribution at a digit has an expectation ``E[d] = Σ_j j · p(j)``; the expected score is the number
with each digit replaced by its expectation, ``Σ_k E[d_k] · 10^place(k)``: ``3.75`` written with
``p(3) = p(4) = 0.5`` at its first digit and certain later digits gives ``3.5 + 0.75 = 4.25``. Like Q-Align's
score from its level tokens, it keeps the model's uncertainty that one greedy answer rounds away, at no extra
generation cost: :class:`DigitRecorder` keeps the digit log-probabilities while ``generate`` runs.

The distribution is the model's before sampling (the recorder runs before temperature and top-k / top-p).
An answer without a number :func:`vqathinker.rewards.parse_score` reads, or with a sign or an exponent, has
no expected score (None, counted as unparsed). The tokenizer must write each digit as a token of its own
(Qwen2's and the tiny model's do).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from vqathinker.rewards import score_span

DIGITS = "0123456789"
PLAIN_NUMBER = re.compile(r"[0-9]*\.?[0-9]*")


def digit_token_ids(tokenizer) -> list[int]:
    """The token id of each digit 0..9; ``ValueError`` when a digit is not a single token."""
    ids = [tokenizer.encode(digit, add_special_tokens=False) for digit in DIGITS]
    if any(len(i) != 1 for i in ids):
        raise ValueError(
            "score_mode 'expected' needs a tokenizer that writes each digit as one token; this one encodes "
            f"the digits as {ids}"
        )
    return [i[0] for i in ids]


class DigitRecorder(LogitsProcessor):
    """Keeps, at every generation step, the log-probabilities of the ten digits among themselves."""

    def __init__(self, digit_ids: Sequence[int]):
        self.digit_ids = torch.tensor(list(digit_ids))
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        digits = scores[:, self.digit_ids.to(scores.device)].float()
        self.steps.append(torch.log_softmax(digits, dim=-1).cpu())
        return scores

    def log_probs(self) -> torch.Tensor:
        """``[rows, steps, 10]``: row r's digit log-probabilities at each generated position."""
        return torch.stack(self.steps, dim=1)


def expected_score(
    token_ids: Sequence[int], digit_log_probs: torch.Tensor, tokenizer, digit_ids: Sequence[int]
) -> float | None:
    """The expected score of one generated answer: ``token_ids`` (the completion) and ``digit_log_probs``
    (``[len(token_ids), 10]``, the digits' log-probabilities at each of its positions)."""
    token_ids = [int(t) for t in token_ids]
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    span = score_span(text)
    if span is None:
        return None
    start, end = span
    number = text[start:end]
    if not PLAIN_NUMBER.fullmatch(number):
        return None  # a sign or an exponent
    digit_of = {token: digit for digit, token in enumerate(digit_ids)}
    positions = []  # (generated position, character offset) of each digit token inside the number
    for k, token in enumerate(token_ids):
        if token in digit_of:
            prefix = tokenizer.decode(token_ids[:k], skip_special_tokens=True)
            if start <= len(prefix) < end and text.startswith(prefix):
                positions.append((k, len(prefix) - start))
    written = [i for i, char in enumerate(number) if char.isdigit()]
    if [offset for _, offset in positions] != written:
        return None  # the number's digits are not one token each where it was generated
    point = number.find(".") if "." in number else len(number)
    value = 0.0
    for k, offset in positions:
        place = point - offset - 1 if offset < point else point - offset
        expectation = float((digit_log_probs[k].exp() * torch.arange(10.0)).sum())
        value += expectation * 10.0**place
    return value
