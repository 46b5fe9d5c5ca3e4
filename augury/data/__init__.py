"""Data pipeline: corpus sources, deterministic train/val split, byte-level BPE, token memmaps, a resumable
loader.

    from augury.data import DataConfig, prepare_data, TokenLoader, iter_val_batches, bits_per_byte
    data = prepare_data(DataConfig(source="stdlib", vocab_size=4096))
    loader = TokenLoader(data.split_path("train"), batch_size=8, seq_len=256)

CLI: `augury data prepare --source stdlib --vocab_size 4096`. See docs/data.md.
"""

from augury.data.config import DataConfig, DataError
from augury.data.loader import TokenLoader, bits_per_byte, iter_val_batches
from augury.data.prepare import PreparedData, prepare_data
from augury.data.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_tokenizer

__all__ = ["DataConfig", "DataError", "PreparedData", "prepare_data", "TokenLoader", "iter_val_batches",
           "bits_per_byte", "SPECIAL_TOKENS", "train_tokenizer", "load_tokenizer"]
