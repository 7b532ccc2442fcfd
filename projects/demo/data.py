"""The built-in demo data: scikit-learn's handwritten digits (no download), ImageNet / ADE20k."""
import os.path as osp
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from nose_mm.datasets import write_ade20k, write_image_folder

__all__ = ['build_digits_classification', 'build_digits_segmentation']

DIGIT_CLASSES = tuple(f'digit_{i}' for i in range(10))
#: Segmentation classes after ``reduce_zero_label``: background, then the digits.
SEG_CLASSES = ('background', ) + DIGIT_CLASSES


def load_digit_images(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return the 1,797 digits as uint8 N x size x size x 3 images and their labels."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    grey = (digits.images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    images = np.stack([
        np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC)) for g in grey
    ])
    return np.repeat(images[..., None], 3, axis=-1), digits.target.astype(np.int64)


def _split(n: int, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def build_digits_classification(root: str, size: int = 32, val_fraction: float = 0.2,
                                seed: int = 0) -> Dict[str, int]:
    """Write the digits in the ImageNet layout: ``<root>/{train,val}/digit_<k>/*.JPEG``.

    Args:
        root (str): Output folder.
        size (int): Image side in pixels (bicubic up-sampling from 8). Defaults to 32.
        val_fraction (float): Share of images held out for ``val``. Defaults to 0.2.
        seed (int): Seed of the split. Defaults to 0.

    Returns:
        dict: Number of images per split.
    """
    images, labels = load_digit_images(size)
    train, val = _split(len(images), val_fraction, seed)
    for split, idx in (('train', train), ('val', val)):
        write_image_folder(root, split, images[idx], labels[idx].tolist(), DIGIT_CLASSES)
    return {'train': len(train), 'val': len(val)}


def _compose_canvases(images: np.ndarray, labels: np.ndarray, n: int, canvas: int,
                      digit_size: int, rng: np.random.Generator):
    grey = images[..., 0]
    out_img = np.zeros((n, canvas, canvas, 3), np.uint8)
    out_lab = np.ones((n, canvas, canvas), np.uint8)  # 1 = background (0 stays "ignore")
    cells = canvas // digit_size
    for i in range(n):
        slots = rng.choice(cells * cells, size=min(3, cells * cells), replace=False)
        noise = rng.integers(0, 40, size=(canvas, canvas), dtype=np.uint8)
        out_img[i] = noise[..., None]
        for slot in slots:
            k = rng.integers(len(images))
            y, x = divmod(int(slot), cells)
            ys, xs = slice(y * digit_size, (y + 1) * digit_size), \
                slice(x * digit_size, (x + 1) * digit_size)
            digit = grey[k]
            mask = digit > 48
            patch = out_img[i, ys, xs]
            patch[mask] = digit[mask, None]
            out_lab[i, ys, xs][mask] = labels[k] + 2
    return out_img, out_lab


def build_digits_segmentation(root: str, num_train: int = 200, num_val: int = 50,
                              canvas: int = 64, digit_size: int = 16, seed: int = 0) -> str:
    """Write digit canvases in the ADE20k layout (classes :data:`SEG_CLASSES`, docs/design.md).

    Args:
        root (str): Output folder (``ADEChallengeData2016`` is created in it).
        num_train (int): Training canvases. Defaults to 200.
        num_val (int): Validation canvases. Defaults to 50.
        canvas (int): Canvas side in pixels. Defaults to 64.
        digit_size (int): Digit side in pixels; must divide ``canvas``. Defaults to 16.
        seed (int): Seed of the layout. Defaults to 0.

    Returns:
        str: The ``ADEChallengeData2016`` folder (the configs' ``data_root``).
    """
    if canvas % digit_size:
        raise ValueError(f'digit_size {digit_size} must divide canvas {canvas}')
    images, labels = load_digit_images(digit_size)
    train, val = _split(len(images), 0.5, seed)
    rng = np.random.default_rng(seed)
    for split, idx, n in (('training', train, num_train), ('validation', val, num_val)):
        img, lab = _compose_canvases(images[idx], labels[idx], n, canvas, digit_size, rng)
        write_ade20k(root, split, img, lab)
    return osp.join(root, 'ADEChallengeData2016')
