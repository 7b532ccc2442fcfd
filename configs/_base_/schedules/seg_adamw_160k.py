# mmseg's ViT/DeiT UperNet schedule: AdamW lr 6e-5, 1500 linear warm-up iters,
# then poly (power 1) decay over 160k iterations; checkpoint/val every 16k.
# Weight decay 0.01 on every parameter but pos_embed and cls_token, as mmseg's DeiT
# configs effectively train: their 'norm' key matches no parameter of a ViT (its
# LayerNorms are ln1 / ln2, the heads' BatchNorms bn), so LayerNorms, BatchNorms and
# biases are decayed; the key is kept for backbones whose norms are named norm*.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }))
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
