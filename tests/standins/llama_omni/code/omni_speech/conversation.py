"""Stand-in of ``omni_speech/conversation.py``: the ``llama_3`` template only (the one run.sh uses)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Conversation:
    system: str
    roles: tuple[str, str]
    messages: list[list[str | None]]
    sep2: str = "<|eot_id|>"

    def append_message(self, role: str, message: str | None) -> None:
        self.messages.append([role, message])

    def get_prompt(self) -> str:
        out = "<|begin_of_text|>"
        if self.system:
            out += f"<|start_header_id|>system<|end_header_id|>\n\n{self.system}<|eot_id|>"
        for role, msg in self.messages:
            out += f"<|start_header_id|>{role}<|end_header_id|>\n\n"
            if msg:
                out += msg.strip() + self.sep2
        return out

    def copy(self) -> Conversation:
        return Conversation(self.system, self.roles, [list(m) for m in self.messages], self.sep2)


conv_llama_3 = Conversation(
    system="You are a helpful language and speech assistant. You are able to understand the speech content that the "
           "user provides, and assist the user with a variety of tasks using natural language.",
    roles=("user", "assistant"), messages=[])
default_conversation = conv_llama_3
conv_templates = {"llama_3": conv_llama_3}
