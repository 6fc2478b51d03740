"""GRPO rollout throughput on a GPU: transformers ``generate`` beside vLLM, for InternVL3 frame prompts.

Builds a random-weight InternVL3-``--size``-shaped checkpoint (:func:`vqathinker.model.shapes.internvl3_config`,
bf16, with the small vqathinker tokenizer, whose ids fit the 151674-word vocabulary) in a temporary folder,
then rolls out ``--videos`` prompts × G (``--generations``) completions of exactly ``--new-tokens`` tokens
(EOS ignored), each prompt ``--frames`` random 448 px frames in the training prompt, i.e. what
one GRPO generation call of trl does:

- ``hf``: ``model.generate`` on the G copies of every prompt, as trl's transformers path sends them;
- ``hf-shared``: the same with :func:`vqathinker.model.shared_vision.share_encoders` (``share_vision``,
  the trainer's default): the vision tower encodes each video's frames once;
- ``vllm``: ``vllm.LLM.generate`` as trl's colocate mode calls it (token ids + each prompt's frames as
  ``multi_modal_data``, one request per copy, ``n=1``), vLLM's own InternVL processing (dynamic tiling on:
  a 448 × 448 frame is one tile, the prompt's 256 tokens per frame).

Reported per backend: wall seconds of the timed call (after a warm-up call), generated tokens per second,
and peak GPU memory: ``torch.cuda.max_memory_allocated`` (this process's tensors) and the device's used
memory (``torch.cuda.mem_get_info``; for vLLM it is dominated by the KV-cache pool it reserves,
``--vllm-gpu-memory`` of the device). vLLM runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``).

    python benchmarks/bench_rollout_gpu.py                       # InternVL3-1B shape, 8 videos × G 4, 6 frames
    python benchmarks/bench_rollout_gpu.py --size 2B --frames 16 --new-tokens 1024 --backends hf vllm

Needs CUDA (and ``pip install vllm`` for the vLLM row, skipped with a note when it is not installed). Without
a GPU it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation

BACKENDS = ("hf", "hf-shared", "vllm")
NO_CUDA = (
    "bench_rollout_gpu.py needs a CUDA GPU, and torch.cuda.is_available() is False here: it times GRPO rollouts "
    "of an InternVL3-shaped model with transformers generate and with vLLM. Run it on a GPU machine "
    "(with `pip install vllm` for the vLLM row)."
)


def write_checkpoint(folder: Path, size: str, for_vllm: bool) -> Path:
    """Random bf16 InternVL3-``size`` weights and the small tokenizer; ``for_vllm``: a stock ``InternVLProcessor``.

    The processor is saved the way HF-format InternVL checkpoints ship it (what vLLM loads; its video
    processor and torchvision-backed image processor need torchvision, which vLLM installs): 448 px tiles,
    256 tokens per tile, InternVL's dynamic tiling settings.
    """
    from transformers import GenerationConfig, InternVLForConditionalGeneration, InternVLProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from transformers.models.got_ocr2 import GotOcr2ImageProcessor
    from transformers.models.internvl import InternVLVideoProcessor

    from vqathinker.model.shapes import internvl3_config
    from vqathinker.model.tiny import CHAT_TEMPLATE, IMG_CONTEXT, build_tokenizer

    tokenizer = build_tokenizer()
    config = internvl3_config(size)
    config.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    text = config.get_text_config()
    text.eos_token_id, text.pad_token_id, text.bos_token_id = (
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        None,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = InternVLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if not for_vllm:
        return folder
    image_processor = GotOcr2ImageProcessor(
        size={"height": 448, "width": 448},
        crop_to_patches=True,
        min_patches=1,
        max_patches=12,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(),
        image_seq_length=256,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(folder)
    return folder


def rollout_inputs(processor, videos: int, frames: int, generations: int):
    """Token ids and frame lists of ``videos`` prompts, each repeated ``generations`` times (copies share frames)."""
    from trl.data_utils import prepare_multimodal_messages

    rng = np.random.default_rng(0)
    prompts, images = [], []
    for _ in range(videos):
        video = [Image.fromarray(rng.integers(0, 256, (448, 448, 3), dtype=np.uint8)) for _ in range(frames)]
        prompt = prepare_multimodal_messages(build_conversation(QUALITY_QUESTION, frames), images=video)
        prompts += [prompt] * generations
        images += [video] * generations
    encoded = processor.apply_chat_template(
        prompts, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return encoded["input_ids"], images


def measure(generate) -> dict:
    """Run ``generate`` (returns the number of generated tokens) once to warm up, then time it."""
    generate(warmup=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    tokens = generate(warmup=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    free, total = torch.cuda.mem_get_info()
    return {
        "seconds": seconds,
        "tokens/s": tokens / seconds,
        "peak allocated GiB": torch.cuda.max_memory_allocated() / 2**30,
        "device used GiB": (total - free) / 2**30,
    }


def run_hf(folder: Path, args, share: bool) -> dict:
    from transformers import InternVLForConditionalGeneration

    from vqathinker.model.processor import prepare_inputs
    from vqathinker.model.shared_vision import share_encoders

    processor = hf_processor(folder)
    model = InternVLForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
    encoders = share_encoders([model]) if share else []
    ids, images = rollout_inputs(processor, args.videos, args.frames, args.generations)
    conversations = [build_conversation(QUALITY_QUESTION, args.frames)] * len(ids)
    batch = prepare_inputs(processor, conversations, images).to("cuda")

    def generate(warmup: bool) -> int:
        rows = slice(0, args.generations) if warmup else slice(None)
        frames = args.frames * (rows.stop or len(ids))
        with torch.no_grad():
            out = model.generate(
                input_ids=batch["input_ids"][rows],
                attention_mask=batch["attention_mask"][rows],
                pixel_values=batch["pixel_values"][:frames],
                do_sample=True,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
            )
        return (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]

    result = measure(generate)
    if share:
        tower = encoders[0]
        result["frames encoded / given"] = f"{tower.rows_encoded}/{tower.rows_seen}"
    return result


def hf_processor(folder: Path):
    """The trainer's processor (one tile per frame) over the checkpoint's tokenizer and image settings."""
    from transformers import AutoTokenizer

    from vqathinker.model.processor import CHAT_TEMPLATE, VideoInternVLProcessor, one_tile_image_processor

    return VideoInternVLProcessor(
        image_processor=one_tile_image_processor(448),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_seq_length=256,
        chat_template=CHAT_TEMPLATE,
    )


def run_vllm(folder: Path, args) -> dict:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM, SamplingParams

    ids, images = rollout_inputs(hf_processor(folder), args.videos, args.frames, args.generations)
    llm = LLM(
        model=str(folder),
        dtype="bfloat16",
        max_model_len=max(len(x) for x in ids) + args.new_tokens,
        gpu_memory_utilization=args.vllm_gpu_memory,
        limit_mm_per_prompt={"image": args.frames},
        max_num_seqs=len(ids),
        seed=0,
    )
    params = SamplingParams(n=1, temperature=1.0, max_tokens=args.new_tokens, ignore_eos=True)
    requests = [
        {"prompt_token_ids": x, "multi_modal_data": {"image": frames}}
        for x, frames in zip(ids, images, strict=True)
    ]

    def generate(warmup: bool) -> int:
        outputs = llm.generate(requests[: args.generations] if warmup else requests, params, use_tqdm=False)
        return sum(len(c.token_ids) for output in outputs for c in output.outputs)

    return measure(generate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1B", choices=["1B", "2B", "8B"], help="InternVL3 shape")
    parser.add_argument("--videos", type=int, default=8, help="prompts (videos) per generation call")
    parser.add_argument("--generations", type=int, default=4, help="G: rollouts per video")
    parser.add_argument("--frames", type=int, default=6, help="frames per video (448 px, 256 tokens each)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens per rollout (EOS ignored)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--vllm-gpu-memory", type=float, default=0.5, help="vLLM gpu_memory_utilization")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    backends = [b for b in BACKENDS if b in args.backends]  # vLLM last: it keeps its memory
    if "vllm" in backends and importlib.util.find_spec("vllm") is None:
        print("vllm is not installed (pip install vllm): the vLLM row is skipped", file=sys.stderr)
        backends.remove("vllm")

    print(
        f"InternVL3-{args.size} shape, random bf16 weights, {torch.cuda.get_device_name()}: {args.videos} videos × "
        f"G {args.generations}, {args.frames} frames, {args.new_tokens} new tokens per rollout\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_checkpoint(Path(tmp), args.size, for_vllm="vllm" in backends)
        results = {}
        for backend in backends:
            results[backend] = (
                run_vllm(folder, args) if backend == "vllm" else run_hf(folder, args, backend == "hf-shared")
            )
            gc.collect()  # the backend's model is unreachable once its run returned
            torch.cuda.empty_cache()
            print(
                backend,
                {k: (round(v, 2) if isinstance(v, float) else v) for k, v in results[backend].items()},
            )
    columns = ["seconds", "tokens/s", "peak allocated GiB", "device used GiB"]
    print("\n| backend | " + " | ".join(columns) + " | × tokens/s of hf |")
    print("|---|" + "--:|" * (len(columns) + 1))
    base = results.get("hf", next(iter(results.values())))["tokens/s"]
    for backend, result in results.items():
        cells = " | ".join(f"{result[c]:.2f}" for c in columns)
        print(f"| {backend} | {cells} | {result['tokens/s'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
