"""Test stand-in for a checkpoint's original ``modeling_internvl_chat.py``.

The tests only need its bytes: ``vqathinker patch-checkpoint`` backs this file up, installs vqathinker's
own model in its place, and ``--revert`` must restore exactly these bytes.
"""

from transformers import PreTrainedModel

from .configuration_internvl_chat import InternVLChatConfig


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig

    def __init__(self, config):
        raise NotImplementedError("this stand-in original is never loaded by the tests")
