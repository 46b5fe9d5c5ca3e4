"""Post-training: supervised fine-tuning (`augury sft`) and reward models (`augury rm`).

Data in TRL's shapes (`augury.align.data`), losses equal to TRL's (`augury.align.losses`), and outputs that are
ordinary augury runs, so sampling, export and evaluation take them as they are.
"""
