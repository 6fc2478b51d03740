"""``--backend vllm`` of evaluate and predict, with vLLM's engine replaced by a recorder.

vllm needs a GPU and is not installed here: a stand-in ``vllm`` module (``LLM``, ``SamplingParams``) records
what our side builds — the engine's settings, each request's prompt token ids and images, the sampling
settings — and answers canned completions; everything of ours around it runs for real (real mp4s, the tiny
model's processor, the CSV and the metrics).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from dataclasses import dataclass

import pytest

from vqathinker.commands import evaluate, predict
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.evaluation.inference import GenerationOptions
from vqathinker.evaluation.vllm_backend import TEXT_TOKENS, load_vllm_scorer
from vqathinker.model.processor import VideoInternVLProcessor, prepare_inputs, tile_size, tokens_per_frame

FRAMES = 3


@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None


@dataclass
class RequestOutput:
    outputs: list[Completion]


def recording_vllm(tokenizer, answer):
    """A stand-in vllm module; ``answer(request index) -> (text, {position: {digit token: probability}})``."""

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        engines: list = []

        def __init__(self, **kwargs):
            self.kwargs, self.calls = kwargs, []
            LLM.engines.append(self)

        def generate(self, requests, sampling, use_tqdm=True):
            self.calls.append({"requests": requests, "sampling": sampling})
            outputs = []
            done = sum(len(call["requests"]) for call in self.calls[:-1])  # answered by earlier calls
            for index in range(done, done + len(requests)):
                text, probabilities = answer(index)
                ids = tokenizer.encode(text, add_special_tokens=False)
                top = None
                if sampling.kwargs["logprobs"]:
                    top = [{token: Logprob(0.0)} for token in ids]
                    for k, table in probabilities.items():
                        top[k] = {token: Logprob(math.log(p)) for token, p in table.items()}
                outputs.append(
                    RequestOutput([Completion(text, ids, top) for _ in range(sampling.kwargs["n"])])
                )
            return outputs

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, graded_videos):
    """The four graded clips as an ad-hoc json benchmark (MOS 1.5 .. 4.5)."""
    folder = tmp_path_factory.mktemp("vllm_set")
    annotations = [{"image_id": path, "ann_type": "score", "score": str(mos)} for path, mos in graded_videos]
    (folder / "set.json").write_text(json.dumps({"annotations": annotations}))
    return folder / "set.json"


def test_evaluate_with_vllm_sends_frames_as_images(
    tiny_model_dir, benchmark, graded_videos, tmp_path, monkeypatch
):
    processor = VideoInternVLProcessor.from_pretrained(tiny_model_dir)
    scores = ["2.10", "2.90", "3.80", "4.60"]
    vllm = recording_vllm(
        processor.tokenizer, lambda i: (f"<think>ok</think><answer>{scores[i]}</answer>", {})
    )
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--json", str(benchmark), "--video_root", "/"]
    argv += ["--backend", "vllm", "--tensor_parallel_size", "2", "--gpu_memory_utilization", "0.5"]
    argv += [
        "--num_frames",
        str(FRAMES),
        "--max_new_tokens",
        "64",
        "--batch_size",
        "3",
        "--output_dir",
        str(out),
    ]
    assert evaluate.main(argv) == 0

    [engine] = vllm.LLM.engines
    assert engine.kwargs == {
        "model": str(tiny_model_dir), "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
        "max_model_len": FRAMES * tokens_per_frame(processor) + TEXT_TOKENS + 64,
        "limit_mm_per_prompt": {"image": FRAMES}, "seed": 0,
    }  # fmt: skip
    assert [len(call["requests"]) for call in engine.calls] == [3, 1]  # batch_size videos per call
    assert engine.calls[0]["sampling"].kwargs == {
        "n": 1,
        "temperature": 0.0,
        "max_tokens": 64,
        "logprobs": None,
    }
    requests = [request for call in engine.calls for request in call["requests"]]
    conversation = build_conversation(QUALITY_QUESTION, FRAMES)
    for request, (path, _) in zip(requests, graded_videos, strict=True):
        images = request["multi_modal_data"]["image"]
        frames = load_frames(path, FRAMES, size=tile_size(processor))
        assert [image.tobytes() for image in images] == [frame.tobytes() for frame in frames]
        expected_ids = prepare_inputs(processor, [conversation], [frames])["input_ids"][0].tolist()
        assert request["prompt_token_ids"] == expected_ids  # what the transformers backend generates from
        assert expected_ids.count(processor.image_token_id) == FRAMES * tokens_per_frame(processor)

    details = json.loads((out / "set.json").read_text())
    assert details["settings"]["backend"] == "vllm" and details["n"] == 4 and details["unparsed"] == 0
    assert details["srcc"] == pytest.approx(1.0)  # the canned scores rise with the MOS
    with (out / "predictions" / "set.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["pred"]) for row in rows] == [float(score) for score in scores]


def test_vllm_expected_score_from_top_logprobs(tiny_model_dir, graded_videos, monkeypatch):
    processor = VideoInternVLProcessor.from_pretrained(tiny_model_dir)
    tokenizer = processor.tokenizer
    text = "<think>ok</think><answer>3.5</answer>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    digit = {str(d): tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    first = ids.index(digit["3"])
    # the first digit: 3 or 4 half and half, and a non-digit token that must not count
    table = {first: {digit["3"]: 0.4, digit["4"]: 0.4, tokenizer.convert_tokens_to_ids("<answer>"): 0.2}}
    vllm = recording_vllm(tokenizer, lambda i: (text, table))
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    options = GenerationOptions(max_new_tokens=16, score_mode="expected", num_samples=2, temperature=0.7)
    scorer, _, num_frames = load_vllm_scorer(str(tiny_model_dir), options, None, None)
    assert num_frames == 6  # the processor's
    frames = [load_frames(graded_videos[0][0], 2, size=tile_size(processor))]
    [[a, b]] = scorer(frames, [QUALITY_QUESTION])
    assert a.score == pytest.approx(3.5 + 0.5) and b.score == a.score  # (3 + 4) / 2, then 0.5
    sampling = vllm.LLM.engines[0].calls[0]["sampling"].kwargs
    assert sampling == {"n": 2, "temperature": 0.7, "max_tokens": 16, "logprobs": 20}


def test_vllm_refusals(tiny_model_dir, remote_checkpoint_dir, monkeypatch):
    options = GenerationOptions(max_new_tokens=8)
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed: `import vllm` raises ImportError
    with pytest.raises(ImportError, match=r"needs vllm: pip install 'vqathinker\[gpu\]'"):
        load_vllm_scorer(str(tiny_model_dir), options, None, None)
    with pytest.raises(ValueError, match="frames at the checkpoint's tile size \\(56 px\\), not 112"):
        load_vllm_scorer(str(tiny_model_dir), options, None, 112)
    with pytest.raises(ValueError, match="runs in one process: use --tensor_parallel_size"):
        load_vllm_scorer(str(tiny_model_dir), options, None, None, processes=2)
    with pytest.raises(ValueError, match="is a remote-code checkpoint"):
        load_vllm_scorer(str(remote_checkpoint_dir), options, None, None)


def test_predict_with_vllm(tiny_model_dir, graded_videos, monkeypatch, capsys):
    processor = VideoInternVLProcessor.from_pretrained(tiny_model_dir)
    vllm = recording_vllm(processor.tokenizer, lambda i: ("<think>sharp</think><answer>4.25</answer>", {}))
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    videos = [path for path, _ in graded_videos[:2]]
    assert (
        predict.main(["--model_name_or_path", str(tiny_model_dir), "--backend", "vllm", "--json", *videos])
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [(r["video"], r["score"], r["explanation"]) for r in results] == [
        (v, 4.25, "sharp") for v in videos
    ]
