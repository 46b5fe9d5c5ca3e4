"""Evaluation harness: score any model on exams and benchmarks with lm-evaluation-harness's semantics.

    augury eval --model hf:/models/tiny --tasks mmlu,truthfulqa_mc2 --data_dir data/ --out results/

Public API:
- `augury.evals.backends.load_model(spec, **options)` -> an `augury.evals.lm.LM` (hf:, openai:, augury:)
- `augury.evals.taskconfig.TaskRegistry.load()` -> task/group definitions from YAML; `.resolve(names)`
- `augury.evals.runner.evaluate(lm, configs, data_dir, out_dir, model_spec, ...)` -> scored samples
- `augury.evals.results.build_results(...)` / `write_outputs(...)` -> lm-eval-shaped results files
- `augury.evals.calibration.expected_calibration_error`, `reliability_diagram`
See docs/evals.md.
"""
