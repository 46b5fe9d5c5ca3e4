"""Safety: graders that decide yes/no propositions about an assistant's reply (the rule-based-reward idea).

    from augury.safety.graders import load_grader
    gradings = load_grader("offline", rubric="default").grade(prompts, replies, kinds)

`augury grader` trains the offline grader, `augury eval --tasks safety_disallowed,safety_safe --grader G` scores a
model with one, and `augury rl` turns gradings into rewards (docs/safety.md).
"""
