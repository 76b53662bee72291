"""Train steps (supervised, UDA, MPL), the training loop and checkpoints."""
