"""Batched generation: the same tokens as one prompt at a time, per-row settings, log-probs, stops."""

from __future__ import annotations

import pytest
import torch

from augury.model import ModelConfig, Transformer
from augury.model.generate import SamplingParams, generate
from augury.model.sample import generate_ids


class ByteTokenizer:
    def decode(self, ids):
        return bytes(i % 256 for i in ids).decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=300, depth=2, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=96).resolved()
    m = Transformer(cfg).eval()
    with torch.no_grad():  # a wider init than training's: clear choices, few near-ties
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
    return m


PROMPTS = [[5, 17, 99, 3], [42], list(range(10, 40)), [7, 7, 7, 7, 7, 7, 7, 7], [250, 1, 2]]


def test_greedy_batch_equals_one_prompt_at_a_time(model):
    batch = generate(model, ByteTokenizer(), PROMPTS, SamplingParams(max_tokens=20, temperature=0))
    for prompt, out in zip(PROMPTS, batch):
        alone = generate_ids(model, prompt, max_tokens=20, temperature=0)[0]
        assert out.token_ids == alone
        assert out.finish_reason == "length" and out.prompt_tokens == len(prompt)


def test_logprobs_are_the_models_log_probabilities_of_the_chosen_tokens(model):
    out = generate(model, ByteTokenizer(), [PROMPTS[0]], SamplingParams(max_tokens=6, temperature=0.9, seed=1))[0]
    ids = torch.tensor([PROMPTS[0] + out.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)[0].float(), -1)
    n = len(PROMPTS[0])
    expected = [float(logp[n - 1 + t, tok]) for t, tok in enumerate(out.token_ids)]
    assert out.logprobs == pytest.approx(expected, abs=1e-4)


def test_a_seeded_row_samples_the_same_tokens_in_any_batch(model):
    row = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, top_k=50, seed=7)
    alone = generate(model, ByteTokenizer(), [PROMPTS[2]], row)[0]
    others = [SamplingParams(max_tokens=5, temperature=1.3, seed=s) for s in range(3)]
    mixed = generate(model, ByteTokenizer(), [PROMPTS[0], PROMPTS[2], PROMPTS[1], PROMPTS[3]],
                     [others[0], row, others[1], others[2]])
    assert mixed[1].token_ids == alone.token_ids
    assert [len(m.token_ids) for m in (mixed[0], mixed[2], mixed[3])] == [5, 5, 5]


def test_stop_token_and_stop_string_end_a_row_early(model):
    greedy = generate(model, ByteTokenizer(), [PROMPTS[1]], SamplingParams(max_tokens=10, temperature=0))[0]
    third = greedy.token_ids[2]
    by_token = generate(model, ByteTokenizer(), [PROMPTS[1]],
                        SamplingParams(max_tokens=10, temperature=0, stop_token_ids=[third]))[0]
    first = greedy.token_ids.index(third)
    assert by_token.finish_reason == "stop" and by_token.token_ids == greedy.token_ids[:first]
    assert by_token.stop_token_id == third and greedy.stop_token_id is None  # which token ended it (RL trains it)
    stop = ByteTokenizer().decode(greedy.token_ids[3:5])
    if stop and "\ufffd" not in stop and stop not in ByteTokenizer().decode(greedy.token_ids[:3]):
        by_text = generate(model, ByteTokenizer(), [PROMPTS[1]],
                           SamplingParams(max_tokens=10, temperature=0, stop=[stop]))[0]
        assert by_text.finish_reason == "stop" and stop not in by_text.text


def test_context_limit_and_bad_settings(model):
    long_prompt = list(range(1, 95))
    out = generate(model, ByteTokenizer(), [long_prompt], SamplingParams(max_tokens=50, temperature=0))[0]
    assert len(out.token_ids) <= 96 - 94
    with pytest.raises(ValueError, match="top_p"):
        generate(model, ByteTokenizer(), [[1]], SamplingParams(top_p=1.5))
    # top_p 0 keeps the most likely token alone (OpenAI's range is [0, 1]): greedy at any temperature
    hot = generate(model, ByteTokenizer(), [PROMPTS[0]], SamplingParams(max_tokens=8, temperature=2.0, top_p=0, seed=1))
    assert hot[0].token_ids == generate(model, ByteTokenizer(), [PROMPTS[0]],
                                        SamplingParams(max_tokens=8, temperature=0))[0].token_ids
    with pytest.raises(ValueError, match="2 sampling settings for 1 prompts"):
        generate(model, ByteTokenizer(), [[1]], [SamplingParams(), SamplingParams()])


def test_requests_joining_mid_flight_get_the_tokens_they_would_alone(model):
    from augury.model.generate import Engine

    alone = {i: generate(model, ByteTokenizer(), [p], SamplingParams(max_tokens=12, temperature=0))[0].token_ids
             for i, p in enumerate(PROMPTS[:3])}
    engine = Engine(model, ByteTokenizer())
    got: dict[int, list[int]] = {}
    engine.add(0, PROMPTS[0], SamplingParams(max_tokens=12, temperature=0))
    for step in range(40):
        if step == 3:
            engine.add(1, PROMPTS[1], SamplingParams(max_tokens=12, temperature=0))
        if step == 5:
            engine.add(2, PROMPTS[2], SamplingParams(max_tokens=12, temperature=0))
        for event in engine.step():
            if event.finished:
                got[event.key] = event.generation.token_ids
        if not engine.busy() and step > 5:
            break
    assert got == alone, (got, alone)
    engine.add(9, PROMPTS[0], SamplingParams(max_tokens=50, temperature=0))
    engine.step()
    engine.cancel(9)
    assert not engine.busy()


def test_sampled_tokens_stay_inside_each_rows_top_k_and_top_p(model):
    rows = [SamplingParams(max_tokens=10, temperature=1.5, top_k=1, seed=0),
            SamplingParams(max_tokens=10, temperature=1.5, top_k=3, seed=1),
            SamplingParams(max_tokens=10, temperature=1.5, top_p=0.5, seed=2),
            SamplingParams(max_tokens=10, temperature=0)]
    outs = generate(model, ByteTokenizer(), [PROMPTS[0]] * 4, rows)
    assert outs[0].token_ids == outs[3].token_ids  # top-k 1 is greedy at any temperature
    for p, out in zip(rows[1:3], outs[1:3]):
        ids = torch.tensor([PROMPTS[0] + out.token_ids])
        with torch.no_grad():
            probs = torch.softmax(model(ids)[0].float() / p.temperature, -1)
        n = len(PROMPTS[0])
        for t, tok in enumerate(out.token_ids):
            sorted_p, order = probs[n - 1 + t].sort(descending=True)
            allowed = p.top_k or int(((sorted_p.cumsum(-1) - sorted_p) <= p.top_p).sum())
            assert tok in order[:allowed + 1].tolist()  # +1: a float tie at the boundary


def test_sample_text_helper_runs_on_the_engine_with_its_old_behaviour():
    from augury.data.tokenizer import train_tokenizer
    from augury.model.sample import generate as sample_text

    tok = train_tokenizer(["def fib(n):\n    return n\n\nprint(fib(3))\n" * 20], vocab_size=300)
    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=2, d_model=64, n_heads=4, max_seq_len=64).resolved()
    m = Transformer(cfg).eval()
    prompt = "def fib(n):"
    greedy = sample_text(m, tok, prompt, max_tokens=12, temperature=0)[0]
    eot = tok.token_to_id("<|endoftext|>")
    ids = generate_ids(m, tok.encode(prompt).ids, max_tokens=12, temperature=0, eot_id=eot)[0]
    assert greedy == tok.decode(ids)
    a = sample_text(m, tok, prompt, max_tokens=12, temperature=1.0, num_samples=3, seed=5)
    assert a == sample_text(m, tok, prompt, max_tokens=12, temperature=1.0, num_samples=3, seed=5)
    assert len(a[0]) >= 4
    stop = a[0][2:4]
    cut = sample_text(m, tok, prompt, max_tokens=12, temperature=1.0, num_samples=1, seed=5, stop=[stop])[0]
    assert stop not in cut and a[0].startswith(cut)


def test_prompt_logprobs_equal_a_full_forward_pass(model):
    rows = [SamplingParams(max_tokens=3, temperature=0, prompt_logprobs=True), SamplingParams(max_tokens=3)]
    outs = generate(model, ByteTokenizer(), [PROMPTS[0], PROMPTS[2]], [rows[1], rows[0]])
    assert outs[0].prompt_logprobs is None
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([PROMPTS[2]]))[0].float(), -1)
    expected = [float(logp[t, tok]) for t, tok in enumerate(PROMPTS[2][1:])]
    assert outs[1].prompt_logprobs[0] is None
    assert outs[1].prompt_logprobs[1:] == pytest.approx(expected, abs=1e-4)
    assert outs[1].token_ids == generate(model, ByteTokenizer(), [PROMPTS[2]], rows[0])[0].token_ids


def test_prompt_top_logprobs_and_scoring_without_generating(model):
    params = SamplingParams(max_tokens=0, prompt_logprobs=True, prompt_top_logprobs=3)
    out, other = generate(model, ByteTokenizer(), [PROMPTS[2], PROMPTS[0]], [params, SamplingParams(max_tokens=2)])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([PROMPTS[2]]))[0].float(), -1)
    assert out.token_ids == [] and out.finish_reason == "length" and len(other.token_ids) == 2
    assert out.prompt_logprobs[1:] == pytest.approx([float(logp[t, tok]) for t, tok in enumerate(PROMPTS[2][1:])],
                                                    abs=1e-4)
    assert out.prompt_top_logprobs[0] is None and len(out.prompt_top_logprobs) == len(PROMPTS[2])
    for t, top in enumerate(out.prompt_top_logprobs[1:]):
        vals, idx = logp[t].topk(3)
        assert list(top) == idx.tolist()
        assert list(top.values()) == pytest.approx(vals.tolist(), abs=1e-4)


def test_a_seeded_row_without_truncation_is_unaffected_by_a_truncating_neighbour(model):
    """A plain seeded row (no top-k/top-p) draws the same tokens alone and beside a row that truncates."""
    row = SamplingParams(max_tokens=12, temperature=1.0, seed=7)
    alone = generate(model, ByteTokenizer(), [PROMPTS[0]], row)[0]
    for neighbour in (SamplingParams(max_tokens=12, temperature=1.0, top_k=5, seed=1),
                      SamplingParams(max_tokens=12, temperature=0.7, top_p=0.5, seed=2)):
        mixed = generate(model, ByteTokenizer(), [PROMPTS[0], PROMPTS[1]], [row, neighbour])[0]
        assert mixed.token_ids == alone.token_ids


def test_sample_text_from_a_prompt_longer_than_the_context_keeps_room_for_max_tokens():
    """`augury sample` with a prompt over the context continues its last max_seq_len - max_tokens tokens, as the
    one-prompt loop does, not the last max_seq_len - 1 with room for one token."""
    from augury.data.tokenizer import train_tokenizer
    from augury.model.sample import generate as sample_text

    tok = train_tokenizer(["def fib(n):\n    return n\n\nprint(fib(3))\n" * 20], vocab_size=300)
    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), depth=2, d_model=64, n_heads=4, max_seq_len=64).resolved()
    m = Transformer(cfg).eval()
    prompt = "print(fib(3))\n" * 30
    assert len(tok.encode(prompt).ids) > 64
    eot = tok.token_to_id("<|endoftext|>")
    ids = generate_ids(m, tok.encode(prompt).ids, max_tokens=12, temperature=0, eot_id=eot)[0]
    assert len(ids) == 12
    assert sample_text(m, tok, prompt, max_tokens=12, temperature=0)[0] == tok.decode(ids)
