"""Model behaviour: KV-cache decoding equals full forward, GQA, prefix embeddings, µP coordinate check."""

import pytest
import torch

from augury.model import ModelConfig, Transformer


def tiny(**kw):
    base = dict(vocab_size=97, depth=2, d_model=64, n_heads=4, max_seq_len=64)
    base.update(kw)
    torch.manual_seed(0)
    return Transformer(ModelConfig(**base)).eval()


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_kv_cache_matches_full_forward(n_kv_heads):
    model = tiny(n_kv_heads=n_kv_heads)
    x = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(2, 32)
        parts = [model(x[:, :7], kv_cache=cache), model(x[:, 7:12], kv_cache=cache)]
        parts += [model(x[:, t:t + 1], kv_cache=cache) for t in range(12, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_causality():
    model = tiny()
    x = torch.randint(0, 97, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 97
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :10], model(y)[:, :10])


def test_prefix_embeds_feed_in_front_of_text():
    """An image encoder's outputs (B, P, d_model) act like tokens placed before the text."""
    model = tiny()
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        prefix = model.embed_tokens(x[:, :4])
        via_prefix = model(x[:, 4:], prefix_embeds=prefix)
        plain = model(x)[:, 4:]
        loss = model(x[:, 4:], targets=x[:, 4:], prefix_embeds=prefix)
    torch.testing.assert_close(via_prefix, plain, atol=1e-5, rtol=1e-5)
    assert via_prefix.shape == (2, 8, 97) and torch.isfinite(loss)


def test_inputs_embeds_equal_token_embeddings_bit_for_bit():
    """The hook an image-text model uses: passing the token embeddings themselves gives identical logits/loss."""
    model = tiny()
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        embeds = model.embed_tokens(x)
        assert torch.equal(model(x), model(inputs_embeds=embeds))
        assert torch.equal(model(x, targets=x), model(targets=x, inputs_embeds=embeds))
        embeds[:, 3] = 0.0  # a replaced position changes what follows it, not what precedes it
        out = model(inputs_embeds=embeds)
        assert torch.equal(out[:, :3], model(x)[:, :3]) and not torch.equal(out[:, 3:], model(x)[:, 3:])


def _coordinate_check(parametrization, widths=(64, 128, 256, 512), steps=4, lr=1e-2):
    """Mean |activation| of the last block's output after a few Adam steps at one learning rate, per width."""
    out = []
    for width in widths:
        torch.manual_seed(0)
        cfg = ModelConfig(vocab_size=256, depth=2, d_model=width, head_dim=32, parametrization=parametrization,
                          mup_base_width=64, max_seq_len=64)
        model = Transformer(cfg)
        opt = torch.optim.AdamW(model.param_groups(0.0), lr=lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        x = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(1))
        for _ in range(steps):
            model(x, targets=x.roll(-1, 1)).backward()
            opt.step()
            opt.zero_grad()
        seen = {}
        model.layers[-1].register_forward_hook(lambda m, i, o: seen.update(h=o.detach()))
        with torch.no_grad():
            logits = model(x)
        out.append((seen["h"].abs().mean().item(), logits.std().item()))
    return out


def test_mup_coordinate_check_flat_across_widths():
    mup = _coordinate_check("mup")
    sp = _coordinate_check("sp")
    for i in range(2):
        mup_vals = [r[i] for r in mup]
        sp_vals = [r[i] for r in sp]
        assert max(mup_vals) / min(mup_vals) < 1.6, f"µP drifts with width: {mup_vals}"
        assert sp_vals[-1] / sp_vals[0] > 3.0, f"SP expected to drift with width: {sp_vals}"
    # SP's drift grows with width
    assert [r[0] for r in sp] == sorted(r[0] for r in sp)


def test_cpu_attention_runs_in_fp32_under_bf16_autocast():
    """On CPU the bf16 q/k/v are attended in fp32 (faster there, benchmarks/cpu_attention_dtype.py): the result is
    fp32 attention of the same bf16 inputs, returned in bf16, and gradients reach the bf16 inputs."""
    import torch.nn.functional as F

    from augury.model import transformer

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 16, 8).bfloat16().requires_grad_() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = transformer._attend(q, k, v, is_causal=True)
    assert y.dtype == torch.bfloat16
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert torch.equal(y, ref.bfloat16())  # the fp32 result, rounded once (bf16 attention differs in the last bits)
    y.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16 and torch.isfinite(q.grad).all()
