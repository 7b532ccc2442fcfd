# Runtime shared by the classification (mmpretrain) configs.
default_scope = 'mmpretrain'
# Registers nose_mm's backbones, hooks and datasets, and applies its torch>=2.6
# checkpoint-loading fix (see nose_mm/checkpoint/mmengine_loader.py).
custom_imports = dict(imports=['nose_mm'], allow_failed_imports=False)

# Every nose_mm run: NoseRunner fits checkpoints strictly (nose_mm/engine/runner.py).
runner_type = 'NoseRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # every run: results.json for the leaderboard, a stop at a non-finite loss,
    # random states in checkpoints for exact resume (set one to None to turn it off)
    results=dict(type='ResultsHook'),
    divergence=dict(type='DivergenceHook'),
    random_state=dict(type='RandomStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # On machines without CUDA, tools/train.py starts a gloo group instead.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
