"""The checks only a GPU can make, in one offline run of a few minutes (``tools/gpu_check.sh``).

    python tools/gpu_check.py [--device cuda|cpu] [--out DIR] [--budget-gb GB]
        [--batch-size N] [--configs BASE PRUNED]

1. Throughput: BASE vs PRUNED (default DeiT-B vs DeiT-B 40%, removed [0, 1, 3, 4, 6]),
   inference under autocast (fp16 on CUDA, bf16 on CPU) at ``--batch-size`` (256),
   timed interleaved (``tools/benchmark.py``): ``DIR/throughput.json``.
2. Working load: the largest batch whose mixed-precision training step (forward,
   backward, AdamW state) fits ``--budget-gb`` (80 GiB, at most 90% of the GPU), by the
   CUDA allocator (real steps) next to the tracked estimate (fake tensors, fused and
   math attention; CPU: fused): ``DIR/working_load.json``.
3. A resumed AMP run: a tiny ViT with dropout and random augmentation trained 8
   iterations, then again from its iteration-6 checkpoint; the resumed losses and final
   weights must equal the uninterrupted run's (CUDA generator state restored by
   ``RandomStateHook``); a copy of that checkpoint without the CUDA state must not.

``--device cpu`` runs the same steps at test sizes (tiny configs, batch 4, 0.05 GiB):
the suite runs it so. The tools run in this process, their output in ``DIR/*.log``.
Everything is local (a tiny CIFAR-100 is written to DIR); the
summary is printed and written to ``DIR/summary.json``. Exit 1 when the resume check
fails. Installing offline from a folder of wheels: ``benchmarks/README.md``.
"""
import argparse
import contextlib
import gc
import glob
import importlib.util
import io
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GPU_CONFIGS = ('configs/imagenet/deit-base_8xb128-300e_in1k-224px.py',
               'configs/imagenet/deit-base_nose-0-1-3-4-6-pruned_in1k-224px.py')
CPU_CONFIGS = ('tests/data/configs/bench-tiny-vit_cifar100.py',
               'tests/data/configs/bench-tiny-vit-pruned_cifar100.py')
RESUME_CONFIG = 'tests/data/configs/tiny-vit-randaug_cifar100.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='GPU checks of nose_mm (offline)')
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda',
                        help='cuda (the real check) or cpu (test sizes)')
    parser.add_argument('--out', default='work_dirs/gpu_check', help='output folder')
    parser.add_argument('--budget-gb', type=float,
                        help='working-load budget in GiB (default 80; cpu 0.05)')
    parser.add_argument('--batch-size', type=int, help='throughput batch (default 256; cpu 4)')
    parser.add_argument('--configs', nargs=2, metavar=('BASE', 'PRUNED'),
                        help='the two models (default DeiT-B and DeiT-B 40%%; cpu tiny ViTs)')
    return parser.parse_args(argv)


def _run(name, argv, log_dir):
    """A tool of tools/ run in this process (imports once), its output in ``log_dir``."""
    import torch
    start = time.time()
    spec = importlib.util.spec_from_file_location(f'_gpu_check_{name}',
                                                  osp.join(REPO, 'tools', argv[0]))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = tool.main([str(a) for a in argv[1:]])
    with open(osp.join(log_dir, f'{name}.log'), 'w', encoding='utf-8') as f:
        f.write(buf.getvalue())
    gc.collect()  # the step's models off the GPU before the next
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print(f'[gpu_check] {name}: exit {code} in {time.time() - start:.0f} s')
    if code:
        sys.exit(f'nose_mm: error: {name} failed (exit {code}); see '
                 f'{osp.join(log_dir, name + ".log")}:\n{buf.getvalue()[-2000:]}')
    return buf.getvalue()


def _losses(work):
    """``{iteration: loss}`` of the latest run in ``work`` (its scalars.json)."""
    latest = sorted(glob.glob(osp.join(work, '2*', 'vis_data', 'scalars.json')))[-1]
    with open(latest) as f:
        rows = [json.loads(line) for line in f]
    return {r['iter']: r['loss'] for r in rows if 'loss' in r}


def _equal_weights(a, b):
    import torch

    from nose_mm.checkpoint import load_checkpoint_file  # never torch.load of a file
    wa, wb = (load_checkpoint_file(p)['state_dict'] for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def resume_check(out, device):
    """Step 3: the resumed AMP run repeats the uninterrupted one; returns its summary."""
    import numpy as np

    from nose_mm.checkpoint import load_checkpoint_file, save_checkpoint_file
    from nose_mm.datasets import write_cifar100
    rng = np.random.default_rng(0)
    root = osp.join(out, 'cifar100')
    write_cifar100(root, rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 100, 32).tolist(),
                   rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 100, 8).tolist())
    opts = ['--amp'] if device == 'cuda' else []  # tools/train.py refuses --amp on CPU
    opts += ['--cfg-options', *(f'{s}_dataloader.dataset.data_root={root}'
                                for s in ('train', 'val', 'test')),
             'default_hooks.checkpoint.max_keep_ckpts=3', 'randomness.deterministic=True']
    full, cut = osp.join(out, 'resume_full'), osp.join(out, 'resume_cut')
    _run('train_full', ['train.py', RESUME_CONFIG, '--work-dir', full, *opts], out)
    time.sleep(1.0)  # mmengine names a run's log folder by its start second
    _run('train_resumed', ['train.py', RESUME_CONFIG, '--work-dir', cut, '--resume',
                           osp.join(full, 'iter_6.pth'), *opts], out)
    expected, resumed = _losses(full), _losses(cut)
    same_losses = sorted(resumed) == [7, 8] and all(resumed[i] == expected[i] for i in resumed)
    same_weights = _equal_weights(osp.join(full, 'iter_8.pth'), osp.join(cut, 'iter_8.pth'))
    saved = load_checkpoint_file(osp.join(full, 'iter_6.pth'))
    result = {'losses_full': expected, 'losses_resumed': resumed,
              'same_losses': same_losses, 'same_weights': same_weights,
              'cuda_state_saved': 'cuda' in saved.get('random_states', {}),
              'amp': 'loss_scaler' in saved.get('optimizer', {})}  # AmpOptimWrapper's
    if result['cuda_state_saved']:  # the control: without the CUDA state dropout differs
        del saved['random_states']['cuda']
        stale = osp.join(out, 'resume_stale')
        os.makedirs(stale, exist_ok=True)
        save_checkpoint_file(saved, osp.join(stale, 'iter_6.pth'))
        time.sleep(1.0)
        _run('train_without_cuda_state', ['train.py', RESUME_CONFIG, '--work-dir', stale,
                                          '--resume', osp.join(stale, 'iter_6.pth'), *opts],
             out)
        result['differs_without_cuda_state'] = _losses(stale)[7] != expected[7]
    result['ok'] = same_losses and same_weights and (
        not result['cuda_state_saved'] or result['differs_without_cuda_state'])
    if device == 'cuda':
        result['ok'] = result['ok'] and result['cuda_state_saved'] and result['amp']
    return result


def _summary(throughput, load, budget):
    """The lines to print: img/s ratio, memory, working loads by method and their gains."""
    from nose_mm.benchmark import BenchmarkRecord
    t, w = BenchmarkRecord.load(throughput), BenchmarkRecord.load(load)
    lines, figures = [], {}
    for i, (tm, wm) in enumerate(zip(t.models, w.models)):
        tracked = {p: m.largest_batch.batch_size for p, m in (wm.tracked or {}).items()}
        lb = wm.largest_batch.batch_size if wm.largest_batch else None
        figures[tm.name] = {'img_per_s': t.img_per_s(tm), 'mem_mib': (tm.peak_memory_bytes or 0)
                            / 2**20, 'working_load': lb, 'tracked_working_load': tracked}
        lines.append(f'{tm.name.upper()} {tm.model.display} removed {tm.model.removed_layers}: '
                     f'{t.img_per_s(tm):.1f} img/s, peak {figures[tm.name]["mem_mib"]:.1f} MiB '
                     f'({t.settings.memory_method.split(" (")[0]}); working load @ '
                     f'{budget:g} GiB: {lb} ({w.settings.memory_method.split(" (")[0]}), '
                     f'tracked ' + ', '.join(f'{p} {b}' for p, b in tracked.items()))
        if i:
            base = figures['a']
            gains = {p: b / base['tracked_working_load'][p] - 1 for p, b in tracked.items()}
            if lb and base['working_load'] and w.settings.device.startswith('cuda'):
                gains['allocator'] = lb / base['working_load'] - 1
            figures[tm.name]['gain'] = gains
            lines.append(f'   vs A: throughput {t.ratios(tm).paired_ratio["median"]:.3f}x, '
                         'working load ' + ', '.join(f'{k} {v:+.1%}' for k, v in gains.items())
                         + ' (the paper: +20.5% for DeiT-B 40%)')
    return lines, figures


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')  # deterministic cuBLAS
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # before CUDA starts: train on the CPU
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('nose_mm: error: --device cuda, but CUDA is not available here; use '
              '--device cpu for the test-size run', file=sys.stderr)
        return 2
    gpu = args.device == 'cuda'
    base, pruned = args.configs or (GPU_CONFIGS if gpu else CPU_CONFIGS)
    batch = args.batch_size or (256 if gpu else 4)
    budget = args.budget_gb or (80.0 if gpu else 0.05)
    if gpu:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        budget = min(budget, round(0.9 * total, 1))
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    start = time.time()
    common = [base, '--compare', pruned, '--device', args.device, '--amp']
    if not gpu:
        common += ['--threads', '1']
    _run('throughput', ['benchmark.py', *common, '--batch-size', batch,
                        '--repeats', 10 if gpu else 2, '--warmup', 3 if gpu else 1,
                        '--attention', '--out', osp.join(out, 'throughput.json')], out)
    _run('working_load', ['benchmark.py', *common, '--batch-size', 8 if gpu else 2,
                          '--repeats', 1, '--warmup', 1, '--train-memory',
                          '--memory-optimizer', 'adamw', '--memory-budget-gb', budget,
                          '--attention', 'fused', *(['math'] if gpu else []), '--out',
                          osp.join(out, 'working_load.json')], out)
    lines, figures = _summary(osp.join(out, 'throughput.json'),
                              osp.join(out, 'working_load.json'), budget)
    resume = resume_check(out, args.device)
    lines.append(f'resumed AMP run: losses equal {resume["same_losses"]}, weights equal '
                 f'{resume["same_weights"]}, CUDA state saved {resume["cuda_state_saved"]}'
                 + (f', differs without it {resume["differs_without_cuda_state"]}'
                    if 'differs_without_cuda_state' in resume else '')
                 + f': {"ok" if resume["ok"] else "FAILED"}')
    from nose_mm.utils.fileio import atomic_write_json
    atomic_write_json(osp.join(out, 'summary.json'), {
        'device': args.device, 'gpu': torch.cuda.get_device_name(0) if gpu else None,
        'budget_gb': budget, 'batch_size': batch, 'configs': [base, pruned],
        'models': figures, 'resume': resume, 'seconds': round(time.time() - start, 1)})
    print('\n'.join(lines))
    print(f'[gpu_check] {time.time() - start:.0f} s; wrote {osp.join(out, "summary.json")}')
    return 0 if resume['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
