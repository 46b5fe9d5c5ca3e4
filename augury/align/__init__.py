"""Post-training: supervised fine-tuning (`augury sft`), reward models (`augury rm`) and RL (`augury rl`); the safety
pipeline end to end (`augury align`), an RL demonstration (`augury rl-demo`) and class-reward fitting (`augury
rubric-fit`, its math in augury.safety.fit).

Data in TRL's shapes (`augury.align.data`), losses equal to TRL's (`augury.align.losses`), and outputs that are
ordinary augury runs, so sampling, export and evaluation take them as they are.
"""
