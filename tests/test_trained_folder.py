"""A training run's output_dir works outside vqathinker: stock transformers loads it (in a process that never
imports vqathinker) and answers as our loader does; it records its frames, keeps use_cache, has a model card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_cli import write_recipe

from vqathinker.commands import evaluate, train
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.evaluation.inference import GenerationOptions, answer_videos, load_for_inference
from vqathinker.model.loading import ModelOptions
from vqathinker.model.processor import tile_size

FRAMES = 3  # not the processor's default (6) nor the recipe's (4)

# Stock transformers only. With torchvision, AutoProcessor builds the inputs; without it (transformers'
# InternVL processor cannot be built), the same inputs from the stock tokenizer and image processor: the
# prompt's <IMG_CONTEXT> per frame becomes <img> + image_seq_length × <IMG_CONTEXT> + </img>.
STOCK_SCRIPT = r"""
import importlib.util, json, sys
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

folder, frames_dir, conversation, new_tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
frames = [Image.open(f"{frames_dir}/{i}.png").convert("RGB") for i in range(len(json.loads(sys.argv[5])))]
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
config = json.load(open(f"{folder}/processor_config.json"))
if importlib.util.find_spec("torchvision") is not None:
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "InternVLProcessor", type(processor)
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[frames], return_tensors="pt")
    route = "AutoProcessor"
else:
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    tokens = "<img>" + "<IMG_CONTEXT>" * config["image_seq_length"] + "</img>"
    inputs = dict(tokenizer([text.replace("<IMG_CONTEXT>", tokens)], return_tensors="pt"))
    inputs["pixel_values"] = AutoImageProcessor.from_pretrained(folder)(images=frames, return_tensors="pt")["pixel_values"]
    route = "tokenizer + image processor"
with torch.no_grad():
    out = model.generate(**inputs, do_sample=False, max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id)
answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
assert not any(name.startswith("vqathinker") for name in sys.modules)
print(json.dumps({"answer": answer, "route": route, "use_cache": model.config.get_text_config().use_cache,
                  "num_frames": config["num_frames"], "class": type(model).__name__}))
"""


@pytest.fixture(scope="module")
def runs(answering_model_dir, graded_videos, tmp_path_factory):
    """A full run (gradient checkpointing on) and a LoRA run, one step each, 3 frames per video."""
    folder = tmp_path_factory.mktemp("runs")
    recipe = write_recipe(folder, answering_model_dir, graded_videos, max_steps=1, num_frames=FRAMES)
    full, lora = folder / "full", folder / "lora"
    assert (
        train.main(["--config", str(recipe), "--output_dir", str(full), "--gradient_checkpointing", "true"])
        == 0
    )
    lora_args = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8"]
    assert train.main(["--config", str(recipe), "--output_dir", str(lora), *lora_args]) == 0
    return {"full": full, "lora": lora, "merged": lora / "merged"}


def stock_answer(folder: Path, frames, conversation, new_tokens: int, tmp_path: Path) -> dict:
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir(exist_ok=True)
    for i, frame in enumerate(frames):
        frame.save(frames_dir / f"{i}.png")  # lossless
    done = subprocess.run(
        [sys.executable, "-c", STOCK_SCRIPT, str(folder), str(frames_dir), json.dumps(conversation),
         str(new_tokens), json.dumps(list(range(len(frames))))],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("run", ["full", "merged"])
def test_stock_transformers_loads_the_folder_and_answers_the_same(runs, graded_videos, tmp_path, run):
    folder = runs[run]
    model, processor, num_frames = load_for_inference(ModelOptions(str(folder)), "cpu")
    assert num_frames == FRAMES  # the training's setting, read back
    frames = load_frames(graded_videos[2][0], num_frames, size=tile_size(processor))
    options = GenerationOptions(max_new_tokens=12)
    [[ours]] = answer_videos(model, processor, [frames], [QUALITY_QUESTION], options)
    stock = stock_answer(folder, frames, build_conversation(QUALITY_QUESTION, num_frames), 12, tmp_path)
    assert stock["answer"] == ours.text and len(ours.text) > 0
    assert stock["class"] == "InternVLForConditionalGeneration"
    assert stock["use_cache"] is True and stock["num_frames"] == FRAMES


def test_saved_config_processor_and_card(runs):
    full = runs["full"]
    config = json.loads((full / "config.json").read_text())
    assert config["use_cache"] is True and config["text_config"]["use_cache"] is True
    processor_config = json.loads((full / "processor_config.json").read_text())
    assert (
        processor_config["processor_class"] == "InternVLProcessor"
        and processor_config["num_frames"] == FRAMES
    )
    assert (processor_config["question"], processor_config["prompt_style"]) == (QUALITY_QUESTION, "default")
    assert processor_config["video_processor"] == {"video_processor_type": "InternVLVideoProcessor"}
    assert (
        runs["lora"] / "adapter_config.json"
    ).is_file()  # the adapter, and the merged full model beside it
    assert (runs["merged"] / "model.safetensors").is_file() and not (
        runs["merged"] / "adapter_config.json"
    ).exists()
    for folder, weights in ((full, "full"), (runs["merged"], "LoRA r=4, alpha=8")):
        card = (folder / "README.md").read_text()
        assert card.startswith("---\nbase_model: ") and "pipeline_tag: image-text-to-text" in card
        assert (
            f"| num_frames | {FRAMES} |" in card
            and "| steps | 1 |" in card
            and f"| weights | {weights} |" in card
        )
        assert '| reward_funcs | ["rank", "reg", "format"] |' in card and "Not evaluated yet" in card
    adapter_card = (runs["lora"] / "README.md").read_text()
    assert (
        "This folder holds the LoRA adapter" in adapter_card
        and "`merged/` is the full checkpoint" in adapter_card
    )


def test_evaluate_uses_the_trained_frames_and_fills_the_card(runs, graded_videos, tmp_path):
    jsonl = tmp_path / "test.jsonl"
    with jsonl.open("w") as handle:
        for i, (path, mos) in enumerate(graded_videos):
            human = {"from": "human", "value": QUALITY_QUESTION}
            handle.write(
                json.dumps(
                    {"id": i, "image": [path], "conversations": [human, {"from": "gpt", "value": mos}]}
                )
                + "\n"
            )
    folder = Path(shutil.copytree(runs["full"], tmp_path / "model"))
    argv = ["--model_name_or_path", str(folder), "--jsonl", str(jsonl), "--video_root", "/"]
    assert evaluate.main([*argv, "--max_new_tokens", "8", "--output_dir", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "test.json").read_text())["settings"]["num_frames"] == FRAMES
    card = (folder / "README.md").read_text()
    assert "Not evaluated yet" not in card and "| test |" in card and "num_frames 3" in card
    assert card.count("<!-- vqathinker:evaluation -->") == 1 and card.endswith(
        "<!-- /vqathinker:evaluation -->\n"
    )
