"""Test version of InternVL's ``conversation.py``: the chat template a checkpoint's config names."""

import copy
import dataclasses


@dataclasses.dataclass
class Conversation:
    """A ChatML conversation: system turn, then ``role + message + sep`` per turn (``role`` alone when None)."""

    name: str
    system_template: str = "<|im_start|>system\n{system_message}"
    system_message: str = ""
    roles: tuple = ("<|im_start|>user\n", "<|im_start|>assistant\n")
    sep: str = "<|im_end|>\n"
    messages: list = dataclasses.field(default_factory=list)

    def append_message(self, role, message):
        self.messages.append([role, message])

    def get_prompt(self):
        prompt = self.system_template.format(system_message=self.system_message) + self.sep
        for role, message in self.messages:
            prompt += role + (message + self.sep if message is not None else "")
        return prompt

    def copy(self):
        return copy.deepcopy(self)


TEMPLATES = {"internvl2_5": Conversation(name="internvl2_5", system_message="You are a tiny test model.")}


def get_conv_template(name):
    return TEMPLATES[name].copy()
