"""Assistant for guardians whose child's social security card is lost."""
