"""Batch normalization itself: the mathematics (:mod:`.functional`, :mod:`.fast`) and the layer (:mod:`.layer`)."""
