"""augury: build GPT-4-style language models predictably.

Pretrain decoder-only Transformers with exact FLOP accounting, train a model ladder, fit scaling laws with
honest uncertainty, pre-register a forecast, verify it, and evaluate models. Run `augury --help`.
"""

__version__ = "0.1.0"
