"""score_mode "expected": the score from the digits' distributions, checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from tests.grpo_helpers import NUM_FRAMES
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.evaluation.expected import digit_token_ids, expected_score
from vqathinker.evaluation.inference import GenerationOptions, answer_videos, load_for_inference
from vqathinker.model.loading import ModelOptions
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.model.tiny import build_tokenizer

CERTAIN = -1e4  # log-probability of the digits a position did not write: exp() is 0


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def log_probs_for(ids, digit_ids, overrides: dict[int, dict[int, float]]):
    """``[len(ids), 10]``: certainty on the written digit, except at the positions of ``overrides``
    (position -> {digit: probability})."""
    table = torch.full((len(ids), 10), CERTAIN)
    for k, token in enumerate(ids):
        if token in digit_ids:
            table[k, digit_ids.index(token)] = 0.0
    for k, probabilities in overrides.items():
        table[k] = CERTAIN
        for digit, p in probabilities.items():
            table[k, digit] = math.log(p)
    return table


def test_expected_score_by_hand(tokenizer):
    digit_ids = digit_token_ids(tokenizer)
    ids = tokenizer.encode("<think>2 frames, 9 cuts</think><answer>3.75</answer>", add_special_tokens=False)
    three, seven, five = [k for k, t in enumerate(ids) if t in digit_ids][2:]  # after the think's 2 and 9
    assert [tokenizer.decode([ids[k]]) for k in (three, seven, five)] == ["3", "7", "5"]
    table = log_probs_for(ids, digit_ids, {three: {3: 0.5, 4: 0.5}, seven: {7: 0.6, 8: 0.4}})
    table[0:three] = torch.log_softmax(torch.randn(three, 10), dim=-1)  # the reasoning's digits do not count
    # 3.5 (first digit) + 0.1 × 7.4 (second) + 0.01 × 5 (third)
    assert expected_score(ids, table, tokenizer, digit_ids) == pytest.approx(3.5 + 0.74 + 0.05, abs=1e-6)

    ids = tokenizer.encode("<answer>4</answer>", add_special_tokens=False)
    [four] = [k for k, t in enumerate(ids) if t in digit_ids]
    uniform = log_probs_for(ids, digit_ids, {four: dict.fromkeys(range(10), 0.1)})
    assert expected_score(ids, uniform, tokenizer, digit_ids) == pytest.approx(4.5)  # mean of 0..9

    for text in ("<answer>3,5</answer>", "<answer>-2</answer>", "<answer>1e1</answer>", "<think>3</think>"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert expected_score(ids, log_probs_for(ids, digit_ids, {}), tokenizer, digit_ids) is None


def test_expected_score_of_generated_answers_equals_the_logits(answering_model_dir, graded_videos):
    """On the tiny model that answers in the format: the expected score of each generated answer equals the
    hand computation from a separate forward pass over prompt + answer."""
    model, processor, _ = load_for_inference(ModelOptions(str(answering_model_dir)), "cpu")
    tokenizer = processor.tokenizer
    digit_ids = digit_token_ids(tokenizer)
    frames = [load_frames(path, NUM_FRAMES, size=tile_size(processor)) for path, _ in graded_videos[:2]]
    questions = [QUALITY_QUESTION] * 2
    options = GenerationOptions(max_new_tokens=20, score_mode="expected")
    expected = answer_videos(model, processor, frames, questions, options)
    parsed = answer_videos(model, processor, frames, questions, GenerationOptions(max_new_tokens=20))
    checked = 0
    for video_frames, [answer], [greedy] in zip(frames, expected, parsed, strict=True):
        assert answer.text == greedy.text  # the same greedy answer, scored two ways
        if greedy.score is None:
            continue
        inputs = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, NUM_FRAMES)], [video_frames])
        completion = tokenizer(answer.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([inputs["input_ids"], completion], dim=1)
        with torch.no_grad():
            logits = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=inputs["pixel_values"]
            ).logits[0]
        start = inputs["input_ids"].shape[1]
        tokens = [tokenizer.decode([t]) for t in completion[0].tolist()]
        number_at = tokens.index("<answer>") + 1
        number = "".join(tokens[number_at : tokens.index("</answer>")])
        point = number.index(".") if "." in number else len(number)
        hand = 0.0
        for i, char in enumerate(number):
            if char.isdigit():
                p = torch.softmax(logits[start + number_at + i - 1, digit_ids], dim=-1)
                place = point - i - 1 if i < point else point - i
                hand += float((p * torch.arange(10.0)).sum()) * 10.0**place
        assert answer.score == pytest.approx(hand, abs=1e-4)
        assert abs(answer.score - greedy.score) > 1e-3  # not the written number
        checked += 1
    assert checked >= 1
