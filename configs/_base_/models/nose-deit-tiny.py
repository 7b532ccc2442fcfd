# DeiT-Tiny classifier on NoseVisionTransformer: with no diluted or removed
# layers it is exactly mmpretrain's VisionTransformer('deit-tiny').
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NoseVisionTransformer', arch='deit-tiny', img_size=224, patch_size=16,
                  drop_path_rate=0.1, diluted_layers=None, removed_layers=None,
                  compensate=True),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=192,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
              dict(type='Constant', layer='LayerNorm', val=1., bias=0.)],
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
