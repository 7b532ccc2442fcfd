# DeiT-III-Small classifier on NoseDeiT3 (mmpretrain's deit3-small-p16-224 model),
# computing the official DeiT-III block (FFN input normalised with ln2, as timm's
# deit3_small_patch16_224; mmpretrain 1.2.0's DeiT3 uses ln1 there).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NoseDeiT3', arch='s', img_size=224, patch_size=16,
                  drop_path_rate=0.05, diluted_layers=None, removed_layers=None,
                  compensate=True),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=384,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
              dict(type='Constant', layer='LayerNorm', val=1., bias=0.)],
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
