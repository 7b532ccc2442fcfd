# DeiT-III-Small baseline: mmpretrain's deit3-small-p16_64xb64_in1k config (made for
# evaluating the official weights: batch 64 x 64, AdamW lr 1e-5, wd 0.1, 30 warm-up
# epochs, cosine over 300; DeiT-III's own 800-epoch LAMB / 3-Augment pre-training
# is not reproduced), on NoseDeiT3, which computes the official block. Evaluate
# the converted official checkpoint:
#   python tools/test.py configs/imagenet/deit3-small_64xb64_in1k-224px.py \
#       checkpoints/deit3-small_in1k.pth
_base_ = [
    '../_base_/models/nose-deit3-small.py',
    '../_base_/datasets/imagenet_deit3_224.py',
    '../_base_/schedules/deit_adamw_cosine.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-5, weight_decay=0.1), clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=30,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=270, by_epoch=True, begin=30, end=300),
]
auto_scale_lr = dict(base_batch_size=4096)
