"""Running: the training loops (:mod:`.training`, :mod:`.book`), checkpoints, a recipe's reproduction, the bench."""
