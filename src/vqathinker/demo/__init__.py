"""The end-to-end CPU demo: quality-ladder videos, a tiny InternVL, a format warm start, GRPO, SRCC/PLCC."""
