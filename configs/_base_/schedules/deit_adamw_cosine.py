# The DeiT / NOSE optimisation recipe (docs/method.md §6): AdamW, lr 5e-4 per
# 512 images, weight decay 0.05 (none on norms, biases, cls token, pos embed),
# 5 linear warm-up epochs, cosine to 1e-5, gradient clipping at 5.
# Configs set `lr` for their total batch and `max_epochs`; --auto-scale-lr
# rescales lr when the real batch differs from auto_scale_lr.base_batch_size.
max_epochs = 300
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'.cls_token': dict(decay_mult=0.0),
                                    '.pos_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
