"""Export an augury run to the Hugging Face Llama layout, loadable by `transformers.LlamaForCausalLM`.

    augury export runs/quickstart --hf exports/quickstart
    # then: LlamaForCausalLM.from_pretrained("exports/quickstart") gives augury's logits (fp32, within 1e-5)

Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json into a
temporary folder renamed into place. `overwrite` replaces only a folder that holds nothing but those files (a
previous export), so it can never delete a run, its checkpoints or anything else the export would not write back.
Parameter names match Llama's except the fused `qkv_proj` and `gate_up_proj`, which are split into q/k/v_proj and
gate/up_proj; µP's readout multiplier (1/width_mult) is folded into `lm_head.weight` (untying tied embeddings when
needed), since Llama has no logit scale. An image-text run (`augury.model.vision`) is refused: the layout has no
place for its image encoder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from pathlib import Path

import torch
from safetensors.torch import save_file

from augury.data.chat import CHAT_TEMPLATE, END_OF_TURN, hf_chat_normalizer
from augury.model.transformer import Transformer
from augury.model.vision import ImageTextModel

SPECIAL_BOS_EOS = "<|endoftext|>"
EXPORT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


class ExportError(ValueError):
    """An output folder the export may not write (a file, a run folder, a folder holding other things)."""


def check_export_target(out_dir: str | Path, overwrite: bool = False, sources: tuple = ()) -> Path:
    """`out_dir` if an export may be written there, else ExportError; `sources` (the run, its checkpoint) must
    not overlap it, since replacing the folder would delete what is being exported."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise ExportError(f"{out_dir} is a symbolic link: give the export folder itself")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file; the export is a folder: choose another path")
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ExportError(f"cannot create {out_dir}: {parent} is a file")
    # the export is written beside out_dir and renamed over it: both folders must take new entries
    for folder in (out_dir, parent) if out_dir.exists() else (parent,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ExportError(f"{out_dir} is not writable (no permission to create files in it)" if folder == out_dir
                              else f"{out_dir} cannot be {'replaced' if out_dir.exists() else 'made'}: {folder} is "
                                   f"not writable")
    target = out_dir.resolve()
    for src in sources:
        src = Path(src).resolve()
        where = ("is" if target == src else "is inside" if src in target.parents
                 else "holds" if target in src.parents else None)
        if where:
            raise ExportError(f"{out_dir} {where} {src}, which the export reads: write the export to a folder "
                              f"outside the run")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return out_dir
    if not overwrite:
        raise ExportError(f"{out_dir} exists and is not empty (pass --overwrite to replace a previous export)")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in EXPORT_FILES or not p.is_file()
                     or p.is_symlink())
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ExportError(f"{out_dir} holds more than a previous export ({shown}); --overwrite only replaces a "
                          f"folder holding nothing but an export's files: choose another folder")
    return out_dir


def hf_state_dict(model: Transformer) -> tuple[dict[str, torch.Tensor], bool]:
    """Llama-named fp32 weights and whether the embeddings stay tied."""
    if isinstance(model, ImageTextModel):  # transformers would load the decoder and silently drop vision.*
        raise ExportError("image-text runs cannot be exported to the Hugging Face Llama layout: it has no place for "
                          "the image encoder (vision.*), and the decoder alone cannot read images")
    if model.cfg.output_bias:
        raise ValueError("this model has an output bias (ModelConfig.output_bias=True), which the Hugging Face "
                         "Llama layout cannot hold; train without output_bias to export it")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    tied = model.cfg.tie_embeddings and model.output_mult == 1.0
    if model.output_mult != 1.0:
        state["lm_head.weight"] = (state["lm_head.weight"] * model.output_mult).contiguous()
    out = {}
    for k, v in state.items():
        if k == "lm_head.weight":
            if not tied:
                out[k] = v
        elif k.endswith("self_attn.qkv_proj.weight"):
            prefix = f"model.{k[:-len('qkv_proj.weight')]}"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.split(model.layers[0].self_attn.split)):
                out[f"{prefix}{name}.weight"] = part.contiguous()
        elif k.endswith("mlp.gate_up_proj.weight"):
            prefix = f"model.{k[:-len('gate_up_proj.weight')]}"
            gate, up = v.chunk(2, dim=0)
            out[f"{prefix}gate_proj.weight"], out[f"{prefix}up_proj.weight"] = gate.contiguous(), up.contiguous()
        else:
            out[f"model.{k}"] = v
    return out, tied


def llama_config(model: Transformer, tied: bool, bos_id: int | None, eos_id: int | None) -> dict:
    c = model.cfg
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": c.vocab_size, "hidden_size": c.d_model, "intermediate_size": c.d_ff,
        "num_hidden_layers": c.depth, "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim, "hidden_act": "silu", "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta, "rope_scaling": None,
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False, "initializer_range": c.init_std,
        "tie_word_embeddings": tied, "torch_dtype": "float32", "use_cache": True,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "pretraining_tp": 1,
    }


def export_hf(model: Transformer, tokenizer_path: str | Path, out_dir: str | Path, overwrite: bool = False,
              sources: tuple = ()) -> Path:
    """Write the export to `out_dir`; `sources` are folders it must not overlap (see check_export_target)."""
    from tokenizers import Tokenizer

    out_dir = check_export_target(out_dir, overwrite, sources)
    tok = Tokenizer.from_file(str(tokenizer_path))
    special_id = tok.token_to_id(SPECIAL_BOS_EOS)
    state, tied = hf_state_dict(model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A plain mkdir, not tempfile.mkdtemp: the export gets the permissions the user's umask gives (mkdtemp's folder,
    # like safetensors' file, is owner-only, which another account or a serving container could not read).
    tmp = out_dir.parent / f".{out_dir.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(llama_config(model, tied, special_id, special_id), indent=2))
        end_id = tok.token_to_id(END_OF_TURN)
        if end_id is not None:  # a chat-capable tokenizer: the chat template's content escape needs the normalizer
            tok.normalizer = hf_chat_normalizer(tok.normalizer)
            tok.save(str(tmp / "tokenizer.json"))
        else:
            shutil.copyfile(tokenizer_path, tmp / "tokenizer.json")
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.cfg.max_seq_len,
                   "bos_token": SPECIAL_BOS_EOS, "eos_token": SPECIAL_BOS_EOS, "unk_token": None,
                   "pad_token": "<|pad|>" if tok.token_to_id("<|pad|>") is not None else None,
                   "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False}
        stop_ids = special_id
        if end_id is not None:  # a chat-capable tokenizer: generation also stops at the end of a turn
            tok_cfg["chat_template"] = CHAT_TEMPLATE
            stop_ids = [special_id, end_id]
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
        (tmp / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": special_id, "eos_token_id": stop_ids, "do_sample": True, "temperature": 0.8,
             "top_p": 0.95}, indent=2))
        file_mode = stat.S_IMODE(tmp.stat().st_mode) & 0o666
        for name in EXPORT_FILES:
            os.chmod(tmp / name, file_mode)
        if out_dir.exists():  # file by file: rmdir fails rather than delete something that appeared since the check
            check_export_target(out_dir, overwrite, sources)
            for name in EXPORT_FILES:
                (out_dir / name).unlink(missing_ok=True)
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
