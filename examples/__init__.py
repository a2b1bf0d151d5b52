"""A tiny end-to-end detector trained on detaug batches: the example package.

Not part of the library (nothing in ``detaug`` imports it): it shows how a
trainer consumes detaug, in modules small enough to read top to bottom, one
job each, imported only downwards:

- :mod:`examples.detector`: :class:`~examples.detector.TinyDetector` (a
  YOLO-style anchor-free model), its seeded init, the cell centres
  (``make_anchors``) and box decoding;
- :mod:`examples.assigner`: a Batch's objects padded per image
  (``pad_targets``) and the centre-sampling assignment of cells to objects;
- :mod:`examples.loss`: the detection loss, scaled by detaug's per-object
  weights (:func:`detaug.loss.weight_targets`);
- :mod:`examples.nms`: exact greedy class-aware NMS, vectorised;
- :mod:`examples.predict`: scores + NMS -> per-image detections;
- :mod:`examples.train`: the data path (``MixDataset`` + ``EpochSampler`` +
  DataLoader + ``BatchMixer``), one optimiser step on one Batch
  (``train_step``) and the loop;
- :mod:`examples.render`: labels next to predictions, as a PNG-ready array.

``tools/train_example.py`` is the command-line front end.
"""
