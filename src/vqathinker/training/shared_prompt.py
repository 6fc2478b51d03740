"""The trainer's per-token log-probs with ``shared_prompt``: the rows of a prompt read it once.

A mixin of :class:`~vqathinker.training.trainer.VQAGRPOTrainer`, before ``trl.GRPOTrainer`` in its bases: it
overrides trl's ``_get_per_token_logps_and_entropies`` (every log-prob pass: old policy, reference, loss) and
runs the packed pass of :func:`vqathinker.model.shared_prompt.shared_prompt_log_probs`, through the wrapped
model so that DDP / DeepSpeed / PEFT hooks run; where that pass would not be exact, trl's own runs.
"""

from __future__ import annotations

from vqathinker.model.shared_prompt import shared_prompt_log_probs


class SharedPromptMixin:
    """``_get_per_token_logps_and_entropies`` with the prompt of each group of rows run once."""

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        pixel_values=None,
        num_images=None,
        num_tiles=None,
        **others,
    ):
        """trl's per-token log-probs; with ``shared_prompt``, rows that share a prompt run it once.

        :func:`vqathinker.model.shared_prompt.shared_prompt_log_probs` packs each distinct prompt of a chunk
        with its rows' completions into one sequence; ``model`` (whatever wraps it: DDP, DeepSpeed, PEFT) is
        called once per chunk, with trl's fused log-prob head, under trl's autocast. Where the packed pass
        would not be exact it returns None and trl's path runs.
        """
        shared = None
        if self.args.shared_prompt:
            decoder = self.accelerator.unwrap_model(self.model).get_decoder()

            def forward(**inputs):
                with self.accelerator.autocast():
                    return model(**inputs, fused_lm_head=True)

            shared = shared_prompt_log_probs(
                forward,
                input_ids,
                attention_mask,
                logits_to_keep,
                attn_implementation=decoder.config._attn_implementation,
                dtype=decoder.get_input_embeddings().weight.dtype,
                pad_token_id=self._tokenizer.pad_token_id,
                image_token_id=getattr(self.processing_class, "image_token_id", None),
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                pixel_values=pixel_values,
                num_images=num_images,
                num_tiles=num_tiles,
                unsupported=[name for name, value in others.items() if value is not None]
                + (["compute_aux_loss"] if compute_aux_loss else []),
            )
        if shared is not None:
            return (*shared, None)
        return super()._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=batch_size,
            compute_entropy=compute_entropy,
            compute_aux_loss=compute_aux_loss,
            pixel_values=pixel_values,
            num_images=num_images,
            num_tiles=num_tiles,
            **others,
        )
