"""Shared fixtures: tiny datasets written in their real on-disk formats, and one torch
thread for the tiny-model test modules."""
import os
import os.path as osp
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# Keep tests on the 2 cores we have and out of the user's caches.
os.environ.setdefault('OMP_NUM_THREADS', '2')


def _random_images(rng, n, size):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.fixture
def tiny_cifar100(tmp_path):
    """A 20-train / 10-test CIFAR-100 in ``cifar-100-python`` pickles; returns the root."""
    from nose_mm.datasets import write_cifar100
    rng = np.random.default_rng(0)
    root = str(tmp_path / 'cifar100')
    write_cifar100(root, _random_images(rng, 20, 32), rng.integers(0, 100, 20).tolist(),
                   _random_images(rng, 10, 32), rng.integers(0, 100, 10).tolist())
    return root


@pytest.fixture
def tiny_imagenet(tmp_path):
    """A 4-class ImageNet-layout folder set (train 16, val 8, 32 px); returns the root."""
    from nose_mm.datasets import write_image_folder
    rng = np.random.default_rng(1)
    root = str(tmp_path / 'imagenet')
    classes = ['n01440764', 'n01443537', 'n01484850', 'n01491361']
    write_image_folder(root, 'train', _random_images(rng, 16, 32), [i % 4 for i in range(16)],
                       classes)
    write_image_folder(root, 'val', _random_images(rng, 8, 32), [i % 4 for i in range(8)],
                       classes)
    return root


@pytest.fixture
def tiny_ade20k(tmp_path):
    """An ADE20k-layout set (training 4, validation 2, 64 px); returns the data root."""
    from nose_mm.datasets import write_ade20k
    rng = np.random.default_rng(2)
    root = str(tmp_path / 'ade')
    for split, n in (('training', 4), ('validation', 2)):
        images = _random_images(rng, n, 64)
        labels = np.zeros((n, 64, 64), np.uint8)
        labels[:, :32] = 1
        labels[:, 32:, :32] = 5
        labels[:, 32:, 32:] = 12
        write_ade20k(root, split, images, labels)
    return osp.join(root, 'ADEChallengeData2016')


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is much faster.

    Test modules of tiny models opt in with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def restore_default_scope():
    """A test that builds models under another scope (a Runner of an mmseg config, the
    mmseg registry's build) leaves mmengine's current ``DefaultScope`` switched; later
    tests that build through a registry without a scope would then look in that scope.
    Put the scopes back as they were before each test."""
    from mmengine.registry import DefaultScope
    before = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)
