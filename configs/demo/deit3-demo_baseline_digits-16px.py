# A demo-sized DeiT-III (NoseDeiT3, official block, layer scale) with DeiT-III-S's
# 12 layers on the demo's 16 px digits (patch 4: 16 tokens + CLS).
# configs/imagenet/README.md chose the DeiT-III-S budget from a NOSE selection on
# this model.
_base_ = ['./deit-demo_baseline_digits-16px.py']
model = dict(
    backbone=dict(_delete_=True, type='NoseDeiT3',
                  arch=dict(embed_dims=64, num_layers=12, num_heads=4,
                            feedforward_channels=128),
                  img_size=16, patch_size=4, drop_path_rate=0.0,
                  init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                            dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]))
