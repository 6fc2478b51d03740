"""vqathinker: GRPO reinforcement learning that teaches vision-language models to score and explain video quality."""

__version__ = "0.1.0"
