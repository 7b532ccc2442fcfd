# The CIFAR-100 fine-tuning recipe of configs/cifar100/ (the paper publishes
# none; see configs/cifar100/README.md): 100 epochs, batch 8 x 64, AdamW lr
# 5e-4 x 512/512, wd 0.05, 5 warm-up epochs, cosine to 1e-6, drop path 0.1,
# RandAugment m9, random erasing 0.25, Mixup 0.8, CutMix 1.0, label smoothing
# 0.1; the backbone starts from the converted official DeiT weights, the
# 100-class head from scratch.
# Use it with a ./models/nose-deit-*.py model: the config itself sets the
# 100-class head (in_channels of its arch), init_cfg=None and the backbone's
# Pretrained checkpoint (two _base_ files cannot both set `model`).
_base_ = [
    './datasets/cifar100_bs64_224.py',
    './schedules/deit_adamw_cosine.py',
    './default_runtime.py',
]
bgr_mean = [112.434, 124.070, 129.304]
train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[70.418, 65.392, 68.170]),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 512 / 512))
auto_scale_lr = dict(base_batch_size=512)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=100)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
