"""Safety: graders that decide yes/no propositions about an assistant's reply (the rule-based-reward idea)."""
