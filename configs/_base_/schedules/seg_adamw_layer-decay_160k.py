# TinyMIM's (MAE/BEiT-derived) ADE20k schedule: AdamW lr 1e-4, wd 0.05, layer-wise lr
# decay 0.75 over the 12 blocks (mmseg's LayerDecayOptimizerConstructor: block i gets
# lr * 0.75 ** (12 - i), the embedding 0.75 ** 13, neck and heads the full lr; no weight
# decay on 1-d parameters and biases: norms, layer scales, q/v biases; mmseg's name test
# for cls_token / pos_embed misses their "backbone." prefix, so they are decayed, as in
# mmseg's MAE config), 1500 linear warm-up iterations then poly (power 1) over 160k, AMP
# where CUDA is (AutoAmpOptimWrapper: fp32 elsewhere); checkpoint/val every 16k.
optim_wrapper = dict(
    type='AutoAmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.75))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
    # every nose_mm run: results.json for the leaderboard, a stop at a non-finite
    # loss, random states in checkpoints for exact resume (None turns one off)
    results=dict(type='ResultsHook'),
    divergence=dict(type='DivergenceHook'),
    random_state=dict(type='RandomStateHook'))
