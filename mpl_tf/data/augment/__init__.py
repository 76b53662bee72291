"""The weak and strong views of image batches: flip, crop and cutout
(ops.py), RandAugment (randaugment.py), both views of a step (views.py)."""
