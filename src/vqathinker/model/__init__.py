"""InternVL loading, the processor for video frames, and the tiny test model."""
