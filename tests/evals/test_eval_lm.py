"""The model interface: lm-eval tokenization semantics, prefix reuse equal to full scoring, windows, decoding."""

from __future__ import annotations

import random

import pytest
import torch

from augury.evals.lm import GenRequest, cut_at_stop, split_context


def reference_loglikelihood(lm, context: str, continuation: str) -> tuple[float, bool]:
    """Score one request in full with a plain transformers forward pass (no cache, no batching)."""
    ctx, cont = lm._encode_pair(context, continuation)
    full = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = lm.model(full).logits.float().log_softmax(-1)[0]
    rows = logp[len(ctx) - 1:len(ctx) + len(cont) - 1]
    tgt = torch.tensor(cont)
    return float(rows.gather(1, tgt[:, None]).sum()), bool((rows.argmax(-1) == tgt).all())


def mc_requests(n_questions: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = "anatomy bone heart lung answer question rome italy add return".split()
    shots = "".join(f"Q: {' '.join(rng.choices(words, k=6))}\nA: B\n\n" for _ in range(3))
    reqs = []
    for _ in range(n_questions):
        ctx = shots + "Q: " + " ".join(rng.choices(words, k=rng.randint(2, 9))) + "\nA:"
        reqs += [(ctx, f" {c}") for c in "ABCD"]  # one-token choices: one shared context per question
        reqs.append((ctx, " " + " ".join(rng.choices(words, k=3))))  # a multi-token choice
    reqs += [("", "rome is in italy"), ("Answer: ", "A"), ("x", " bone heart")]
    return reqs


def test_prefix_reuse_equals_full_scoring(tiny_lm):
    n_questions = 8
    reqs = mc_requests(n_questions)
    got = tiny_lm.loglikelihood(reqs)
    refs = [reference_loglikelihood(tiny_lm, ctx, cont) for ctx, cont in reqs]
    for (ctx, cont), (lp, greedy), (ref_lp, ref_greedy) in zip(reqs, got, refs):
        assert lp == pytest.approx(ref_lp, abs=1e-4), (ctx[-30:], cont)
        assert greedy == ref_greedy
    # The argmax choice of every question is the same as with full scoring.
    for q in range(n_questions):
        ours = [lp for lp, _ in got[q * 5:q * 5 + 4]]
        ref = [lp for lp, _ in refs[q * 5:q * 5 + 4]]
        assert ours.index(max(ours)) == ref.index(max(ref))


def test_prefix_reuse_actually_shares_the_prefix(tiny_lm, monkeypatch):
    reqs = mc_requests(8)[:40]  # 8 questions x 5 choices, same few-shot prefix
    seen = []
    real = type(tiny_lm).forward

    def counting(self, ids, past=None, logits_to_keep=None):
        seen.append(ids.numel())
        return real(self, ids, past, logits_to_keep)

    monkeypatch.setattr(type(tiny_lm), "forward", counting)
    tiny_lm.loglikelihood(reqs)
    full_tokens = sum(len(tiny_lm._encode_pair(c, x)[0]) for c, x in reqs)
    assert sum(seen) < full_tokens / 4  # far fewer tokens than one full pass per choice


def test_trailing_space_moves_to_continuation(tiny_lm):
    assert split_context("Answer: ", "A") == ("Answer:", " A")
    a = tiny_lm.loglikelihood([("Answer: ", "A")])[0][0]
    b = tiny_lm.loglikelihood([("Answer:", " A")])[0][0]
    assert a == pytest.approx(b, abs=1e-6)


def test_rolling_windows_cover_each_token_once(tiny_lm, monkeypatch):
    monkeypatch.setattr(tiny_lm, "max_length", 7)
    tokens = list(range(10, 33))
    windows = tiny_lm.rolling_windows(tokens)
    predicted = [t for _, cont in windows for t in cont]
    assert predicted == tokens
    for ctx, cont in windows:
        assert 1 <= len(ctx) and len(ctx) + len(cont) - 1 <= 7


def test_rolling_loglikelihood_matches_one_full_pass(tiny_lm):
    text = "Rome is in Italy. The heart and the lung. " * 3
    ids = tiny_lm.tok_encode(text, special_tokens=False)
    full = torch.tensor([[tiny_lm.prefix_token_id] + ids])
    with torch.no_grad():
        logp = tiny_lm.model(full).logits.float().log_softmax(-1)[0, :-1]
    expected = float(logp.gather(1, full[0, 1:, None]).sum())
    assert tiny_lm.loglikelihood_rolling([text])[0] == pytest.approx(expected, abs=1e-3)


def test_greedy_generation_matches_transformers_generate(tiny_lm):
    prompt = "Q: Where is Rome?\nA:"
    ids = tiny_lm.tok_encode(prompt)
    with torch.no_grad():
        ref = tiny_lm.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                     pad_token_id=tiny_lm.eot_token_id)[0, len(ids):].tolist()
    if tiny_lm.eot_token_id in ref:
        ref = ref[:ref.index(tiny_lm.eot_token_id)]
    expected = tiny_lm.tok_decode(ref)
    out = tiny_lm.generate_until([GenRequest(prompt, until=[], max_gen_toks=12)])[0]
    assert out == expected
    stop = expected[3:5] if len(expected) > 5 else None
    if stop:
        cut = tiny_lm.generate_until([GenRequest(prompt, until=[stop], max_gen_toks=12)])[0]
        assert cut == cut_at_stop(expected, [stop]) and stop not in cut


def test_sampling_is_reproducible_by_seed(tiny_lm):
    def req(seed):
        return GenRequest("Q:", max_gen_toks=8, do_sample=True, temperature=1.0, seed=seed)

    a, b = tiny_lm.generate_until([req(3), req(3)])
    assert a == b


def test_chat_template_formats_messages(tiny_model_dir):
    from augury.evals.backends import load_model

    lm = load_model(f"hf:{tiny_model_dir}")
    with pytest.raises(ValueError, match="no chat template"):
        lm.apply_chat_template([{"role": "user", "content": "hi"}])
    lm.tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                                  "{% if add_generation_prompt %}<assistant>{% endif %}")
    text = lm.apply_chat_template([{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "2+2?"}])
    assert text == "<system>Be brief.\n<user>2+2?\n<assistant>"


def test_long_inputs_are_left_truncated_to_the_window(tiny_lm, monkeypatch):
    ctx_text, cont_text = "Q: Where is Rome? " * 4, " Rome is in Italy. Rome is in Italy."
    ctx, cont = tiny_lm._encode_pair(ctx_text, cont_text)
    monkeypatch.setattr(tiny_lm, "max_length", 8)
    lp, _ = tiny_lm.loglikelihood([(ctx_text, cont_text)])[0]
    full = (ctx + cont)[-9:]
    n = min(len(cont), 8)
    with torch.no_grad():
        logp = tiny_lm.model(torch.tensor([full[:-1]])).logits.float().log_softmax(-1)[0]
    expected = float(logp[-n:].gather(1, torch.tensor(full[-n:])[:, None]).sum())
    assert lp == pytest.approx(expected, abs=1e-4)
