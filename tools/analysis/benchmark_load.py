"""Time to load a DeiT-B Runner checkpoint: nose_mm's safe loader vs torch's loaders, one run.

    python tools/analysis/benchmark_load.py [--arch deit-base] [--rounds 7] [--no-optimizer]
        [--threads 1] [--keep FILE]

Writes a checkpoint as mmengine's Runner saves one (mmpretrain's DeiT
``ImageClassifier`` weights, AdamW state after one step, message hub with
``HistoryBuffer`` logs, meta), then loads it in interleaved rounds with:

* ``nose_mm``: :func:`nose_mm.checkpoint.reader.safe_torch_load` (nose_mm's unpickler);
* ``torch_weights_only``: ``torch.load(weights_only=True)`` with the globals a
  Runner checkpoint needs allowed (the loader nose_mm used before issue 20, which
  a crafted file could steer into running code: a speed reference only);
* ``torch_unsafe``: ``torch.load(weights_only=False)`` (the C unpickler, no checks).

Prints the median seconds per loader and each median ratio to ``nose_mm``'s.
The file is read from the page cache after the first round.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch


def write_runner_checkpoint(path: str, arch: str, optimizer: bool) -> int:
    """A Runner-style checkpoint of mmpretrain's DeiT ``arch`` at ``path``; returns its size."""
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmpretrain.models import build_classifier
    model = build_classifier(dict(
        type='ImageClassifier', backbone=dict(type='VisionTransformer', arch=arch, img_size=224,
                                              patch_size=16),
        neck=None, head=dict(type='VisionTransformerClsHead', num_classes=1000,
                             in_channels=768 if arch == 'deit-base' else 384)))
    ckpt = {'meta': {'epoch': 1, 'iter': 100, 'seed': 0, 'mmengine_version': '0.10.7',
                     'dataset_meta': {'classes': tuple(f'c{i}' for i in range(1000))}},
            'state_dict': model.state_dict()}
    if optimizer:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        ckpt['optimizer'] = opt.state_dict()
    buffers = {}
    for key in ('train/loss', 'train/lr', 'train/time', 'train/data_time', 'val/accuracy/top1'):
        buf = HistoryBuffer()
        for i in range(100):
            buf.update(float(np.float64(i) / 7.0))
        buffers[key] = buf
    ckpt['message_hub'] = {'log_scalars': buffers, 'runtime_info': {'epoch': 1, 'iter': 100},
                           'resumed_keys': {k: True for k in buffers}}
    torch.save(ckpt, path)
    return osp.getsize(path)


def _previous_allow_list():
    from mmengine.logging.history_buffer import HistoryBuffer
    from numpy.core import multiarray
    return [HistoryBuffer, (getattr, 'builtins.getattr'), argparse.Namespace, np.ndarray,
            np.dtype, multiarray._reconstruct, multiarray.scalar,
            *sorted({type(np.dtype(c)) for c in '?bhilqBHILQefdg'} - {np.dtype},
                    key=lambda t: t.__name__)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='deit-base', choices=('deit-base', 'deit-small'))
    parser.add_argument('--rounds', type=int, default=7, help='interleaved rounds (7)')
    parser.add_argument('--no-optimizer', action='store_true', help='weights and meta only')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (1)')
    parser.add_argument('--keep', help='write the checkpoint here and keep it')
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1, got {args.rounds}')
    torch.set_num_threads(args.threads)
    from nose_mm.checkpoint.reader import safe_torch_load

    folder = tempfile.mkdtemp(prefix='nose_mm_load_')
    path = args.keep or osp.join(folder, 'runner.pth')
    size = write_runner_checkpoint(path, args.arch, not args.no_optimizer)
    allowed = _previous_allow_list()

    def weights_only():
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location='cpu', weights_only=True)

    loaders = {
        'nose_mm': lambda: safe_torch_load(path, map_location='cpu', trust=False),
        'torch_weights_only': weights_only,
        'torch_unsafe': lambda: torch.load(path, map_location='cpu', weights_only=False),
    }
    times = {name: [] for name in loaders}
    for name, load in loaders.items():  # warm the page cache and each code path
        load()
    for _ in range(args.rounds):
        for name, load in loaders.items():
            start = time.perf_counter()
            load()
            times[name].append(time.perf_counter() - start)
    if not args.keep:
        os.remove(path)
        os.rmdir(folder)
    base = statistics.median(times['nose_mm'])
    print(f'{args.arch} Runner checkpoint, {size / 2**20:.0f} MiB, {args.rounds} rounds, '
          f'{args.threads} thread(s), {os.cpu_count()} CPUs:')
    for name, values in times.items():
        med = statistics.median(values)
        print(f'  {name:20s} median {med:.3f} s  (min {min(values):.3f})  '
              f'nose_mm time / this = {base / med:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
