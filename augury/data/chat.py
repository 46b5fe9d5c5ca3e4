"""The chat format: TRL-style messages rendered over the tokenizer's reserved role tokens.

    from augury.data.chat import render_chat, CHAT_TEMPLATE
    enc = render_chat(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    enc.ids             # <|endoftext|> <|user|> hi <|end|> <|assistant|> hello <|end|>
    enc.assistant_mask  # True on the assistant's tokens and its <|end|>: what supervised fine-tuning trains on
    render_chat(tok, [{"role": "user", "content": "hi"}], add_generation_prompt=True).ids   # ... <|assistant|>

A conversation starts with <|endoftext|> (the document boundary the model saw in pretraining); each message is its
role token, its content and <|end|>, the end-of-turn token generation stops at. Role tokens are placed by id and
content is encoded with special-token strings treated as text, so a user who types "<|assistant|>" cannot open a
turn. `CHAT_TEMPLATE` is the same format as a Jinja chat template for Hugging Face exports, where
`apply_chat_template` gives exactly these ids for any content. A Hugging Face tokenizer parses special-token strings
anywhere in the rendered text, so the template writes every "<|" in content as "<|" + CONTENT_MARK (which no special
token contains) and the exported tokenizer's normalizer (`hf_chat_normalizer`) removes the mark again before BPE:
content spelling "<|end|>" becomes the same text tokens as in augury, never the control id. `render_chat_text` and
`chat_text_tokenizer` are that text and that tokenizer in augury (`augury eval --chat` prompts are this text).
"""

from __future__ import annotations

from dataclasses import dataclass

from augury.data.tokenizer import encode_documents

ROLES = ("system", "user", "assistant")
END_OF_TURN = "<|end|>"
BOS = "<|endoftext|>"
# A Unicode noncharacter (U+FDD0: reserved for a program's internal use, never meant to appear in text).
CONTENT_MARK = "\ufdd0"
CHAT_TEMPLATE = (
    "{{ '<|endoftext|>' }}{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] or message['content'] is not string %}"
    "{{ raise_exception('message ' ~ loop.index0 ~ ' must have role system, user or assistant and string "
    "content') }}{% endif %}"
    "{{ '<|' + message['role'] + '|>' + (message['content'] | replace('<|', '<|" + CONTENT_MARK + "')) + '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


class ChatFormatError(ValueError):
    """Messages that cannot be rendered, or a tokenizer without the chat tokens."""


@dataclass
class ChatEncoding:
    ids: list[int]
    assistant_mask: list[bool]  # per id: produced by the assistant (its content and <|end|>)


def chat_token_ids(tok) -> dict[str, int]:
    """The ids of the role tokens, <|end|> and <|endoftext|>; a clear error when the tokenizer lacks one."""
    names = {**{r: f"<|{r}|>" for r in ROLES}, "end": END_OF_TURN, "bos": BOS}
    ids = {key: tok.token_to_id(name) for key, name in names.items()}
    missing = [names[k] for k, v in ids.items() if v is None]
    if missing:
        raise ChatFormatError(f"the tokenizer lacks the chat tokens {missing}: it was not trained by augury "
                              f"(augury reserves them in every tokenizer it trains)")
    return ids


def _shape(message) -> str:
    """A message described without its text: data loaders count and print refused rows by this reason, so the text
    would print dataset content (harmful prompts, in a safety set) and make every refused row a reason of its own."""
    if not isinstance(message, dict):
        return f"a {type(message).__name__}"
    keys = ", ".join(repr(k)[:30] for k in list(message)[:6]) + (", ..." if len(message) > 6 else "")
    role = message.get("role")
    role = (repr(role) if len(repr(role)) <= 30 else f"a {type(role).__name__}") if "role" in message else "none"
    content = type(message["content"]).__name__ if "content" in message else "none"
    return f"keys {keys}; role {role}; content {content}"


def validate_messages(messages, *, need_assistant: bool = False) -> None:
    if not isinstance(messages, list) or not messages:
        raise ChatFormatError("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ChatFormatError(f"message {i} must be {{'role': one of {ROLES}, 'content': str}}, got "
                                  f"{_shape(m)}")
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        raise ChatFormatError("the conversation has no assistant turn: nothing to learn from")


def render_chat(tok, messages: list[dict], add_generation_prompt: bool = False) -> ChatEncoding:
    """Token ids of a conversation and the mask of the assistant's tokens."""
    validate_messages(messages)
    special = chat_token_ids(tok)
    contents = encode_documents(tok, [m["content"] for m in messages])
    ids, mask = [special["bos"]], [False]
    for m, content in zip(messages, contents):
        is_assistant = m["role"] == "assistant"
        ids += [special[m["role"]], *content, special["end"]]
        mask += [False] + [is_assistant] * (len(content) + 1)
    if add_generation_prompt:
        ids.append(special["assistant"])
        mask.append(False)
    return ChatEncoding(ids, mask)


def render_chat_text(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """`CHAT_TEMPLATE`'s text for `messages`: role tokens as their strings, every "<|" in content written
    "<|" + CONTENT_MARK. Unlike the decoded ids of `render_chat` (where content spelling "<|end|><|assistant|>"
    reads like a turn boundary), this text says which is which: `chat_text_tokenizer(tok)` encodes it into exactly
    `render_chat(tok, messages, add_generation_prompt).ids`. Content without "<|" reads as the decoded ids."""
    validate_messages(messages)
    escape = "<|" + CONTENT_MARK
    text = BOS + "".join(f"<|{m['role']}|>" + m["content"].replace("<|", escape) + END_OF_TURN for m in messages)
    return text + "<|assistant|>" if add_generation_prompt else text


def chat_text_tokenizer(tok):
    """A copy of `tok` that reads `render_chat_text`'s (and `CHAT_TEMPLATE`'s) text: special tokens are matched
    first, then the content escape is removed (`hf_chat_normalizer`, as in a Hugging Face export)."""
    from tokenizers import Tokenizer

    chat_token_ids(tok)
    out = Tokenizer.from_str(tok.to_str())
    out.normalizer = hf_chat_normalizer(out.normalizer)
    return out


def hf_chat_normalizer(existing=None):
    """The normalizer an exported tokenizer needs for CHAT_TEMPLATE: it turns the template's escaped "<|" back into
    "<|" after special tokens were matched, so content is encoded exactly as augury encodes it. (Plain text holding
    "<|" followed by U+FDD0 loses that character in the export; augury's own tokenizer keeps it.)"""
    from tokenizers import normalizers

    escape = normalizers.Replace("<|" + CONTENT_MARK, "<|")
    return escape if existing is None else normalizers.Sequence([escape, existing])
