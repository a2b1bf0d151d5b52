"""MixDataset: the augmented view of a dataset of Samples (Mosaic, affine, MixUp, CutMix, HSV, flips)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch.utils.data
from numpy.typing import NDArray

from detaug.allocator import retain_freed_memory
from detaug.canvas import CanvasPlan, TileWarp
from detaug.config import AugmentConfig
from detaug.paint import paint
from detaug.plan import Blend, Paste, SamplePlan
from detaug.sample import Labels, Sample
from detaug.sampler import EpochOrder, as_key
from detaug.transforms.affine import letterbox_matrix, warp_labels
from detaug.transforms.base import Transform
from detaug.transforms.cutmix import cutmix_labels
from detaug.transforms.limits import check_int
from detaug.transforms.mixup import mixup_labels
from detaug.transforms.photometric import flip_labels

__all__ = ["MixDataset", "PlannedItem"]


class MixDataset(torch.utils.data.Dataset):
    """Augmented view of any map-style dataset of Samples (YoloDataset, CocoDataset, your own).

    Pipeline per item, in Ultralytics' order: Mosaic (4 or 9 tiles) fused with
    the random affine -- or the random affine alone, which also letterboxes the
    image to ``img_size`` -- then MixUp and CutMix with partners that went
    through the same pre-transform, HSV jitter and flips, then any ``extra``
    transforms (e.g. an
    :class:`~detaug.transforms.albumentations.AlbumentationsTransform`). Every
    output is an ``img_size`` x ``img_size`` Sample.

    Plan, then paint: :meth:`plan` decides everything about an item and
    computes its final labels in numpy (:class:`~detaug.plan.SamplePlan`);
    ``ds[i]`` paints that plan with OpenCV. With ``output="plan"`` items are
    :class:`PlannedItem` (the plan and its source images) instead, for a
    painter on the trainer's device (:mod:`detaug.batch_transforms`).

    Keys: a sample is named by its *position* in an epoch, ``ds[p]`` (the
    epoch set by :meth:`set_epoch`) or ``ds[(epoch, p)]``. Position ``p`` of
    epoch ``e`` shows dataset item ``ds.orders.index(e, p)``, a permutation
    of the items drawn from ``(seed, e)`` (:class:`~detaug.sampler.EpochOrder`;
    the identity with ``shuffle=False``), so reading positions 0..n-1 is one
    shuffled epoch. :meth:`key_of` gives the key of an item's sample, and the
    sample's meta carries both its ``index`` and its ``position``.

    Randomness: item ``i`` of epoch ``e`` draws every parameter (and its
    partners' place in its block) from ``np.random.SeedSequence([seed, e, i])``,
    one child stream per stage (so switching MixUp on does not change the
    Mosaic of the same item). Any sample of any epoch replays exactly,
    whatever the number of workers, their assignment or the distributed rank.

    Decodes: with ``partners="block"`` (the default) an item's
    Mosaic/MixUp/CutMix partners are drawn from its block of ``block``
    consecutive positions, and each process keeps its last ``buffer`` source
    Samples read (at most ``buffer_bytes`` of images; a pure cache, outputs
    do not change). Reading positions in order -- a loop, a DataLoader with
    :class:`~detaug.sampler.EpochSampler` or a sequential sampler, which give
    each worker whole batches -- therefore reads each source about once per
    epoch when ``block`` divides the batch size, as Ultralytics' buffer of
    recent images does, but replayable. A shuffling sampler is still
    correct, with fewer buffer hits. With ``partners="uniform"`` partners
    come from the whole dataset (about one read per tile of an uncached
    dataset; different samples). :attr:`stats` counts items served and
    dataset reads.

    Args:
        dataset: map-style dataset whose items are Samples.
        config: the hyperparameters; default ``AugmentConfig()``.
        seed: the run's seed.
        extra: single-sample transforms applied to the painted sample (they are
            opaque to a plan: their labels are only known with their pixels).
        output: ``"sample"`` (painted Samples) or ``"plan"`` (:class:`PlannedItem`;
            not with ``extra``).
        ship_sources: with ``output="plan"``, put the source pixels in each
            item (True) or leave ``images`` empty for a painter that reads them
            from a :class:`~detaug.batch_transforms.source_bank.SourceBank`
            (False; a dataset with ``labels_of``, e.g. YoloDataset, is then
            planned from its label table without decoding any image).
        shuffle: visit the items in a new random order every epoch (True) or
            in index order (False; then position = index).
        partners: ``"block"`` or ``"uniform"`` (see above).
        block: block size for ``partners="block"`` (a divisor of the batch size).
        buffer: how many decoded source Samples each process keeps (0: none;
            the default, 128, is Ultralytics' buffer for a batch of 16).
        buffer_bytes: bound on the images' bytes in that buffer.

    >>> import numpy as np
    >>> from detaug import Sample
    >>> data = [Sample.create(np.full((48, 64, 3), 40 * i, np.uint8), [[8, 8, 40, 30]], [i]) for i in range(4)]
    >>> ds = MixDataset(data, AugmentConfig(img_size=64, mixup=0.5), seed=7)
    >>> a, b = ds[2], ds[2]
    >>> a.image.shape, bool((a.image == b.image).all()), a.meta["position"], a.meta["index"] == ds.orders.index(0, 2)
    ((64, 64, 3), True, 2, True)
    >>> ds[ds.key_of(a.meta["index"])].image.tobytes() == a.image.tobytes()
    True
    """

    def __init__(
        self,
        dataset: Any,
        config: AugmentConfig | None = None,
        seed: int = 0,
        extra: Sequence[Transform[Any]] = (),
        output: str = "sample",
        ship_sources: bool = True,
        shuffle: bool = True,
        partners: str = "block",
        block: int = 16,
        buffer: int = 128,
        buffer_bytes: int = 256 << 20,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise ValueError("dataset: must be a map-style dataset (with __len__ and __getitem__)")
        if len(dataset) == 0:
            raise ValueError("dataset: is empty")
        if config is None:
            config = AugmentConfig()
        if not isinstance(config, AugmentConfig):
            raise ValueError(f"config: expected an AugmentConfig, got {type(config).__name__}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
        if output not in ("sample", "plan"):
            raise ValueError(f"output: expected 'sample' or 'plan', got {output!r}")
        if output == "plan" and extra:
            raise ValueError("output: 'plan' cannot carry extra transforms (a plan holds no opaque pixel ops)")
        if partners not in ("uniform", "block"):
            raise ValueError(f"partners: expected 'uniform' or 'block', got {partners!r}")
        for name, v, lo in (("block", block, 1), ("buffer", buffer, 0), ("buffer_bytes", buffer_bytes, 0)):
            check_int(name, v, lo)
        for name, flag in (("ship_sources", ship_sources), ("shuffle", shuffle)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name}: expected a bool, got {flag!r}")
        self.output = output
        self.ship_sources = ship_sources
        self.partners = partners
        self.orders = EpochOrder(int(seed), len(dataset), int(block), shuffle)
        self._buffer = _Buffer(int(buffer), int(buffer_bytes))
        # Per-process counters [items, reads] in shared memory: row 0 the main
        # process, row 1 + w DataLoader worker w (persistent ones included).
        self._counts = torch.zeros((_COUNT_ROWS, 2), dtype=torch.int64).share_memory_()
        self._counts_view: tuple[int, NDArray[np.int64]] | None = None
        self.dataset = dataset
        self.config = config
        self.seed = int(seed)
        # The epoch lives in shared memory: persistent DataLoader workers keep
        # the dataset copy they started with, and set_epoch must reach them.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.extra = tuple(extra)
        p = self.pipeline = config.pipeline()
        self.box_filter, self.affine, self.mosaic4, self.mosaic9 = p.box_filter, p.affine, p.mosaic4, p.mosaic9
        self.mixup, self.cutmix, self.hsv, self.fliplr, self.flipud = p.mixup, p.cutmix, p.hsv, p.fliplr, p.flipud
        self.fill = p.fill
        retain_freed_memory()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        retain_freed_memory()  # a spawned DataLoader worker is a new process

    @property
    def names(self) -> list[str] | None:
        """Class names of the wrapped dataset, when it has them."""
        return getattr(self.dataset, "names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_buffer"] = _Buffer(self._buffer.count, self._buffer.nbytes)  # a worker starts empty
        state["_counts_view"] = None
        return state

    def _row(self) -> NDArray[np.int64]:
        """This process's counter row (a numpy view of the shared tensor)."""
        pid = os.getpid()
        if self._counts_view is None or self._counts_view[0] != pid:
            info = torch.utils.data.get_worker_info()
            row = 0 if info is None else 1 + info.id % (_COUNT_ROWS - 1)
            self._counts_view = (pid, self._counts.numpy()[row])
        return self._counts_view[1]

    @property
    def stats(self) -> dict[str, float]:
        """Items served and source reads, summed over this process and its DataLoader workers.

        ``reads`` counts ``dataset[j]`` calls (a decode unless the wrapped
        dataset caches); ``reads_per_item`` is their ratio. Reset with
        :meth:`reset_stats`.

        >>> import numpy as np
        >>> from detaug import Sample
        >>> data = [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 6, 6]], [0]) for _ in range(3)]
        >>> ds = MixDataset(data, AugmentConfig(img_size=8, mosaic=0.0))
        >>> _ = [ds[i] for i in (0, 1, 0)]
        >>> ds.stats
        {'items': 3, 'reads': 2, 'reads_per_item': 0.6666666666666666}
        """
        items, reads = (int(v) for v in self._counts.sum(dim=0).tolist())
        return {"items": items, "reads": reads, "reads_per_item": reads / items if items else 0.0}

    def reset_stats(self) -> None:
        """Zero the counters of every process."""
        self._counts.zero_()

    def _fetch(self, index: int) -> Sample:
        """Source item ``index``: from this process's buffer, else read from the dataset (and counted)."""
        sample = self._buffer.get(index)
        if sample is None:
            sample = self.dataset[index]
            self._row()[1] += 1
            self._buffer.put(index, sample)
        return sample

    def _draw(self, rng: np.random.Generator, index: int, block: NDArray[np.int64] | None, k: int) -> list[int]:
        """``k`` partner indices of item ``index``: from ``block`` (never the item itself unless
        the block is just the item), or from the whole dataset when ``block`` is None."""
        if block is None:
            return [int(j) for j in rng.integers(0, len(self.dataset), size=k)]
        m = len(block)
        if m == 1:
            return [int(index)] * k
        own = int(np.flatnonzero(block == index)[0])
        return [int(block[(own + 1 + int(o)) % m]) for o in rng.integers(0, m - 1, size=k)]

    def key_of(self, index: int, epoch: int | None = None) -> tuple[int, int]:
        """The key ``(epoch, position)`` of dataset item ``index``'s sample in ``epoch`` (default: the current one).

        >>> import numpy as np
        >>> from detaug import Sample
        >>> data = [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 6, 6]], [0]) for _ in range(5)]
        >>> ds = MixDataset(data, AugmentConfig(img_size=8), seed=3)
        >>> e, p = ds.key_of(4, epoch=2)
        >>> e, ds.orders.index(e, p)
        (2, 4)
        """
        e = self.epoch if epoch is None else check_int("epoch", epoch)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index: expected an int, got {index!r}")
        n = len(self.dataset)
        if not 0 <= int(index) < n:
            raise IndexError(f"index {index} out of range for a dataset of {n}")
        return e, self.orders.position(e, int(index))

    @property
    def epoch(self) -> int:
        """The current epoch (shared with DataLoader workers, persistent ones included)."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s random stream (and the close_mosaic schedule).

        Call it before creating the epoch's DataLoader iterator; the value is
        kept in shared memory, so workers that already exist (forked or
        spawned, ``persistent_workers=True``) see it too.
        """
        self._epoch.fill_(check_int("epoch", epoch))

    def streams(self, index: int, epoch: int | None = None) -> list[np.random.Generator]:
        """The per-stage generators of item ``index``: [pre-transform, mixup, cutmix, colour/flip/extra]."""
        e = self.epoch if epoch is None else int(epoch)
        return [self._stream(int(index), e, stage) for stage in range(4)]

    def _stream(self, index: int, epoch: int, stage: int) -> np.random.Generator:
        """``streams(index, epoch)[stage]`` alone (the same generator: child ``stage`` of the item's SeedSequence)."""
        ss = np.random.SeedSequence([self.seed, epoch, index], spawn_key=(stage,))
        return np.random.Generator(np.random.PCG64(ss))

    def _pre(self, index: int, rng: np.random.Generator, mixing: bool, sources: _Sources,
             block: NDArray[np.int64] | None) -> tuple[Labels, CanvasPlan, tuple[int, ...]]:
        """Mosaic + affine (one warp per tile), or the affine alone: labels, canvas (warps read
        dataset indices) and the tile indices."""
        c = self.config
        sample = sources.get(index)
        if mixing and c.mosaic > 0 and rng.random() < c.mosaic:
            mosaic = self.mosaic9 if (c.mosaic9 > 0 and rng.random() < c.mosaic9) else self.mosaic4
            idx = self._draw(rng, index, block, mosaic.num_partners)
            inputs = [sample] + [sources.get(j) for j in idx]
            labels, canvas = mosaic.plan(inputs, mosaic.sample_params(rng, sample, inputs[1:]))
            tiles = (int(index), *idx)
            return labels, canvas.with_sources(tiles), tiles
        s = c.img_size
        h, w = sample.size
        params = self.affine.sample_params(rng, sample)
        m = letterbox_matrix((h, w), params, s)
        lab = warp_labels(sample, m, (s, s), self.box_filter)
        labels = Labels((s, s), lab.boxes, lab.classes, lab.weights, lab.polygons, sample.meta)
        return labels, CanvasPlan((TileWarp(int(index), (0, 0, w, h), m, whole=True),)), (int(index),)

    def _plan(self, key: Any, sources: _Sources) -> SamplePlan:
        epoch, position = as_key(key, self.epoch)
        n = len(self.dataset)
        if not -n <= position < n:
            raise IndexError(f"position {position} out of range for a dataset of {n}")
        position = int(position) % n
        index = self.orders.index(epoch, position)
        block = self.orders.members(epoch, position) if self.partners == "block" else None
        c = self.config
        mixing = c.mixing_active(epoch)
        labels, canvas, tiles = self._pre(index, self._stream(index, epoch, 0), mixing, sources, block)
        canvases = [canvas]
        blend = paste = None
        mixed_with: list[tuple[str, tuple[int, ...]]] = []
        r_mixup = self._stream(index, epoch, 1) if mixing and c.mixup > 0 else None
        if r_mixup is not None and r_mixup.random() < c.mixup:
            j = self._draw(r_mixup, index, block, 1)[0]
            partner, pcanvas, ptiles = self._pre(j, r_mixup, mixing, sources, block)
            lam = self.mixup.sample_params(r_mixup, labels, [partner]).lam
            labels = mixup_labels(labels, partner, lam)
            canvases.append(pcanvas)
            blend = Blend(len(canvases) - 1, lam)
            mixed_with.append(("mixup", ptiles))
        r_cutmix = self._stream(index, epoch, 2) if mixing and c.cutmix > 0 else None
        if r_cutmix is not None and r_cutmix.random() < c.cutmix:
            j = self._draw(r_cutmix, index, block, 1)[0]
            partner, pcanvas, ptiles = self._pre(j, r_cutmix, mixing, sources, block)
            rect = self.cutmix.sample_params(r_cutmix, labels, [partner]).rect
            if rect is not None:
                rect_i = (int(rect[0]), int(rect[1]), int(rect[2]), int(rect[3]))
                labels = cutmix_labels(labels, partner, rect_i, c.min_visible, c.weight_by_visibility)
                canvases.append(pcanvas)
                paste = Paste(len(canvases) - 1, rect_i)
            mixed_with.append(("cutmix", ptiles))
        r_post = self._stream(index, epoch, 3)
        gains = self.hsv.sample_params(r_post, labels).gains
        flip_lr = self.fliplr.sample_params(r_post, labels).flip
        flip_ud = self.flipud.sample_params(r_post, labels).flip
        if flip_lr:
            labels = flip_labels(labels, "horizontal")
        if flip_ud:
            labels = flip_labels(labels, "vertical")
        labels = labels.with_meta(index=index, position=position, epoch=epoch, seed=self.seed, tiles=tiles, mixed_with=tuple(mixed_with))
        # Sources: the dataset indices the canvases read, each once, in order of first use.
        used = list(dict.fromkeys(w.source for cv in canvases for w in cv.warps))
        slot = {j: k for k, j in enumerate(used)}
        canvases = [cv.with_sources(slot) for cv in canvases]
        return SamplePlan(
            size=c.img_size, fill=self.fill, sources=tuple(used),
            source_sizes=tuple(sources.get(j).size for j in used), canvases=tuple(canvases), labels=labels,
            blend=blend, paste=paste, hsv=None if all(g == 1.0 for g in gains) else gains,
            flip_lr=flip_lr, flip_ud=flip_ud,
        )

    def plan(self, key: int | tuple[int, int]) -> SamplePlan:
        """The :class:`~detaug.plan.SamplePlan` of sample ``key`` (a position or an ``(epoch, position)`` pair).

        Labels are final (``extra`` transforms, which are opaque to a plan,
        are not in it); the source images are read to learn their sizes and
        objects but not kept.
        """
        return self._plan(key, _Sources(self._fetch))

    def plan_with_images(self, key: int | tuple[int, int]) -> tuple[SamplePlan, list[NDArray[np.uint8]]]:
        """The plan of sample ``key`` and its source images (aligned with ``plan.sources``; read-only views)."""
        sources = _Sources(self._fetch)
        plan = self._plan(key, sources)
        return plan, [sources.get(j).image for j in plan.sources]

    def __getitem__(self, key: int | tuple[int, int]) -> Sample | PlannedItem:
        """Sample ``key``: a position (in the epoch set by :meth:`set_epoch`) or an ``(epoch, position)`` pair.

        The pair is what :class:`~detaug.sampler.EpochSampler` yields: the key
        itself says which epoch's sample is asked for, so no worker needs to be
        told. The sample is the plan of ``key`` painted with OpenCV
        (:func:`detaug.paint.paint`), then the ``extra`` transforms; with
        ``output="plan"``, the :class:`PlannedItem` unpainted.
        """
        if self.output == "plan" and not self.ship_sources:
            # labels and sizes only: a dataset that knows them without decoding (labels_of) is not decoded
            fetch = getattr(self.dataset, "labels_of", None) or self._fetch
            self._row()[0] += 1
            return PlannedItem(self._plan(key, _Sources(fetch)), ())
        plan, images = self.plan_with_images(key)
        self._row()[0] += 1
        if self.output == "plan":
            return PlannedItem(plan, tuple(images))
        sample = plan.labels.with_image(paint(plan, images))
        if self.extra:
            r_post = self._stream(int(sample.meta["index"]), int(sample.meta["epoch"]), 3)
            for step in (self.hsv, self.fliplr, self.flipud):  # the plan's draws from this stream, again
                step.sample_params(r_post, sample)
            for t in self.extra:
                sample = t(sample, r_post)
        return sample


class PlannedItem(NamedTuple):
    """An item planned but not painted: its plan and source images (aligned with ``plan.sources``)."""

    plan: SamplePlan
    images: tuple[NDArray[np.uint8], ...]


_COUNT_ROWS = 65  # the main process and up to 64 DataLoader workers (more share rows)


class _Sources:
    """The dataset items one plan reads, each fetched once (``fetch(index) -> Sample``)."""

    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch
        self.items: dict[int, Sample] = {}

    def get(self, index: int) -> Sample:
        s = self.items.get(index)
        if s is None:
            s = self.items[index] = self.fetch(index)
        return s


class _Buffer:
    """The last ``count`` source Samples read by this process, holding at most ``nbytes`` of images (LRU)."""

    def __init__(self, count: int, nbytes: int) -> None:
        self.count, self.nbytes = count, nbytes
        self.items: OrderedDict[int, Sample] = OrderedDict()
        self.held = 0

    def get(self, index: int) -> Sample | None:
        s = self.items.get(index)
        if s is not None:
            self.items.move_to_end(index)
        return s

    def put(self, index: int, sample: Sample) -> None:
        size = int(getattr(sample.image, "nbytes", 0))
        if self.count == 0 or size > self.nbytes:
            return
        self.items[index] = sample
        self.held += size
        while len(self.items) > self.count or self.held > self.nbytes:
            _, old = self.items.popitem(last=False)
            self.held -= int(getattr(old.image, "nbytes", 0))
