"""Large request bodies (up to --max_body_bytes): tokenizing a prompt of a megabyte or checking it with the rules
takes a second, so it runs beside the event loop, which goes on streaming every other reply."""

from __future__ import annotations

import asyncio

BIG = 70_000  # characters: over the size from which input moderation leaves the event loop


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_prompts_are_tokenized_and_large_inputs_moderated_off_the_event_loop(make_client, tiny_run, chat_run,
                                                                            tmp_path):
    calls: list[tuple[str, bool]] = []

    def watch(client):
        backend = client.app.state.backend
        render = backend.chat_prompt
        backend.chat_prompt = lambda messages: calls.append(("render", _on_event_loop())) or render(messages)
        backend_tok = backend.tokenizer
        encode, decode = backend_tok.encode_text, backend_tok.decode
        backend_tok.encode_text = lambda text: calls.append(("encode", _on_event_loop())) or encode(text)
        backend_tok.decode = lambda ids: calls.append(("decode", _on_event_loop())) or decode(ids)
        rules = client.app.state.moderator.grader
        score = rules.score
        rules.score = lambda texts: calls.append(("rules", _on_event_loop())) or score(texts)

    client, _ = make_client(tiny_run, tmp_path)
    watch(client)
    assert client.post("/v1/completions", json={"prompt": "a b", "max_tokens": 1}).status_code == 200
    assert client.post("/v1/completions", json={"prompt": [5, 6], "max_tokens": 1}).status_code == 200
    big = "make a plan for the day " * (BIG // 24 + 1)
    assert client.post("/v1/completions", json={"prompt": big, "max_tokens": 1}).status_code == 400  # too long
    assert client.post("/v1/moderations", json={"input": big}).status_code == 200
    chat, _ = make_client(chat_run, tmp_path / "chat")
    watch(chat)
    out = chat.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello"}],
                                                  "max_tokens": 1})
    assert out.status_code == 200, out.text
    assert {name for name, _ in calls} >= {"encode", "decode", "render", "rules"}
    assert [c for c in calls if c[1] and c[0] != "rules"] == []  # tokenizing: never on the event loop
    # the rules read a short text on the loop (cheap), a large one beside it
    assert ("rules", False) in calls
