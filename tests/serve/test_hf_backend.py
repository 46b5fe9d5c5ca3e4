"""The Hugging Face backend of `augury serve` (`hf:PATH`): cached decoding is the model's own greedy decoding."""

from __future__ import annotations

import warnings

import torch


def test_hf_backend_cached_greedy_tokens_equal_full_forward_decoding(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from augury.evals.tiny_model import make_random_llama
    from augury.serve.backends import _HFLM

    path = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    model, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    prompt = tok.encode("hello there")
    with warnings.catch_warnings():
        # a deprecated cache argument would stop working when transformers removes it
        warnings.simplefilter("error", FutureWarning)
        served = [t for t, _ in _HFLM(model, tok).tokens(prompt, 8, 0.0, 1.0, None)]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(8):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert served == ids[len(prompt):]


def test_hf_backend_reports_tokens_whose_text_is_held_back(tmp_path):
    # text that could still begin a stop string is held back; the request must still see each token (it has
    # begun, its tokens count) and what is held, so a reply cut at --request_timeout_s ends with it
    import threading

    from augury.evals.tiny_model import make_random_llama
    from augury.serve.backends import LocalBackend
    from augury.serve.jobs import GenerationJob

    path = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    backend = LocalBackend.load(f"hf:{path}")
    prompt = backend.encode("hello there")
    plain: list = []
    backend._generate(GenerationJob(prompt, max_tokens=6, temperature=0.0), plain.append, threading.Event())
    whole = "".join(d.text for d in plain)
    held: list = []
    job = GenerationJob(prompt, max_tokens=6, temperature=0.0, stop=[whole + "\u2603"])
    backend._generate(job, held.append, threading.Event())
    assert [d.completion_tokens for d in held[:-1]] == [1, 2, 3, 4, 5, 6]
    assert all(d.text == "" and whole.startswith(d.held) for d in held[:-1]) and held[-2].held
    assert held[-1].text == whole and held[-1].finish_reason == "length"


def test_hf_backend_chat_reply_ends_at_the_models_end_of_turn(turn_ending_run):
    """augury's export ends a turn with <|end|>, an eos id of its generation_config but not its tokenizer's eos: the
    reply stops there (as transformers' generate does), not at max_tokens with the next turns in it."""
    import threading

    from augury.serve.backends import LocalBackend
    from augury.serve.jobs import GenerationJob

    _, _, hf_dir = turn_ending_run
    backend = LocalBackend.load(f"hf:{hf_dir}")
    prompt = backend.chat_prompt([{"role": "user", "content": "What is two plus two?"}])
    deltas: list = []
    job = GenerationJob(prompt, max_tokens=8, temperature=0.0, stop_token_ids=list(backend.chat_stop_ids))
    backend._generate(job, deltas.append, threading.Event())
    assert "".join(d.text for d in deltas) == "4"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].completion_tokens == 1


def test_hf_backend_builds_its_inputs_and_generator_on_the_models_device(tmp_path, monkeypatch):
    """With `--device cuda` the prompt's tensors and a seeded request's generator were made on the CPU beside a
    model on the GPU, and every request failed; they are made on the model's device. Without a GPU: torch's default
    device is set to another one (meta) while the model is on the CPU, so a tensor made without naming the model's
    device lands beside it, and the device every generator is made on is recorded."""
    import threading

    from augury.evals.tiny_model import make_random_llama
    from augury.serve.backends import LocalBackend
    from augury.serve.jobs import GenerationJob

    path = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    backend = LocalBackend.load(f"hf:{path}")
    model = backend.model.model
    seen: list = []
    forward = model.forward

    def spy_forward(*args, **kwargs):
        seen.extend(t.device for t in [*args, *kwargs.values()] if isinstance(t, torch.Tensor))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy_forward)
    made_on: list = []
    real_generator = torch.Generator

    def recorded_generator(device="cpu"):
        made_on.append(torch.device(device))
        return real_generator(device=device)

    monkeypatch.setattr(torch, "Generator", recorded_generator)
    prompt = backend.encode("hello there")
    job = GenerationJob(prompt, max_tokens=4, temperature=1.0, top_p=0.9, seed=3, prompt_logprobs=2)
    deltas: list = []
    with torch.device("meta"):
        backend._generate(job, deltas.append, threading.Event())
    assert seen and set(seen) == {model.device}
    assert made_on == [model.device]
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 4
    assert len(deltas[-1].prompt_logprobs) == len(prompt)


def test_hf_backend_cuts_top_p_as_transformers_at_an_exact_tie():
    # probabilities 1/2, 1/4, 1/4: the first token alone reaches top_p 0.5, as transformers' TopPLogitsWarper keeps
    import math

    from augury.serve.backends import _sample

    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([math.log(2), 0.0, 0.0])
    assert {_sample(logits, 1.0, 0.5, gen)[0] for _ in range(300)} == {0}
