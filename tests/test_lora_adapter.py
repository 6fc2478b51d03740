"""A LoRA run's output folder (adapter + processor) loads through the same loader as a full checkpoint."""

from __future__ import annotations

import torch
from PIL import Image

from vqathinker.data.prompts import build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import prepare_inputs
from vqathinker.training.configs import VQAModelConfig


def logits(model, processor):
    generator = torch.Generator().manual_seed(0)
    frames = [
        Image.fromarray(torch.randint(0, 256, (56, 56, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(2)
    ]
    inputs = prepare_inputs(processor, [build_conversation("How good is it?", 2)], [frames])
    model.eval()  # LoRA dropout off
    with torch.no_grad():
        return model(**inputs).logits


def test_adapter_folder_loads_merged_for_inference_and_trainable_for_training(tiny_model_dir, tmp_path):
    base_args = VQAModelConfig(model_name_or_path=str(tiny_model_dir))
    peft_model, processor = load_model_and_processor(
        VQAModelConfig(
            model_name_or_path=str(tiny_model_dir), use_peft=True, lora_r=4, lora_alpha=8
        ).model_options()
    )
    with torch.no_grad():  # LoRA B starts at zero: give the adapter an effect to carry over
        for name, param in peft_model.named_parameters():
            if ".lora_B." in name:
                param.normal_(std=0.5, generator=torch.Generator().manual_seed(1))
    peft_model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    expected = logits(peft_model, processor)

    base, _ = load_model_and_processor(base_args.model_options())
    assert (logits(base, processor) - expected).abs().max() > 1e-2

    merged, merged_processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tmp_path)).model_options()
    )
    assert not hasattr(merged, "peft_config")  # merged into plain weights
    # Merging reorders the float32 sums (W x + B A x vs (W + B A) x): equal to ~1e-5, far below the adapter's effect.
    torch.testing.assert_close(logits(merged, merged_processor), expected, atol=1e-4, rtol=1e-4)

    resumed, _ = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tmp_path), use_peft=True).model_options()
    )
    trainable = {name for name, param in resumed.named_parameters() if param.requires_grad}
    assert trainable and all(".lora_" in name for name in trainable)
    torch.testing.assert_close(logits(resumed, processor), expected, atol=1e-5, rtol=1e-5)
