# The demo's second family: a DeiT-III-style model (NoseDeiT3: the official DeiT-III
# block with layer scale, as timm's deit3_*) the size of the demo ViT (6 layers, 64
# dims, 4 heads) on the demo's 16 px digits, trained from scratch for 20 epochs
# (the ViT's 30-epoch recipe otherwise; about 98% val top-1, ~50 CPU-s on one core).
# tools/demo.py runs it through the same pipeline as the ViT: seeds, NOSE selection,
# dilution, pruning, test, benchmark, leaderboard.
_base_ = ['./deit3-demo_baseline_digits-16px.py']
model = dict(backbone=dict(arch=dict(num_layers=6)))
max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs, eta_min=1e-5, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))
