"""AutoAmpOptimWrapper: AMP where CUDA is, fp32 OptimWrapper elsewhere; tools/train.py --amp."""
import warnings

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper

import nose_mm  # noqa: F401  (registers AutoAmpOptimWrapper)
from tests.test_selection.conftest import build_tiny_classifier


def _cfg(**extra):
    return dict(type='AutoAmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                clip_grad=dict(max_norm=1.0), **extra)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU branch')
def test_cpu_builds_the_fp32_wrapper_and_trains():
    model = build_tiny_classifier('NoseVisionTransformer', num_layers=2).train()
    wrapper = build_optim_wrapper(model, _cfg(loss_scale='dynamic', dtype='float16'))
    assert type(wrapper) is OptimWrapper and wrapper.clip_grad_kwargs == dict(max_norm=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(2, 3, 32, 32), mode='tensor').square().mean()
    wrapper.update_params(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cuda_builds_the_amp_wrapper(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    model = build_tiny_classifier('NoseVisionTransformer', num_layers=2)
    with warnings.catch_warnings():  # torch's GradScaler warns: no real GPU here
        warnings.simplefilter('ignore')
        wrapper = build_optim_wrapper(model, _cfg(dtype='float16'))
    assert isinstance(wrapper, AmpOptimWrapper) and wrapper.cast_dtype == torch.float16


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU error')
def test_amp_flag_still_refuses_without_gpu():
    from mmengine.config import Config

    from nose_mm.apis import setup_train_cfg
    from nose_mm.utils.cli import UserError
    cfg = Config(dict(optim_wrapper=_cfg(), work_dir='w'))
    with pytest.raises(UserError, match='--amp needs a CUDA GPU'):
        setup_train_cfg(cfg, 'x.py', amp=True)
