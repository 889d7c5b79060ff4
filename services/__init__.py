"""Transport-neutral logic of each building block: validation, key handling, error translation."""
