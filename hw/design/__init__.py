"""What the accelerator is built for: its parameters (config), a model's shape from dimensions (dims)
and the plan of matrix jobs, folds, addresses and widths (plan) that every other part reads."""
