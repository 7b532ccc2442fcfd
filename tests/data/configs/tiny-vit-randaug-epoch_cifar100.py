# tiny-vit-randaug_cifar100.py with an epoch-based loop (5 iterations per epoch) and a
# checkpoint per epoch: the exact-resume test of epoch-based runs (RandomStateHook).
_base_ = ['./tiny-vit-randaug_cifar100.py']
param_scheduler = [dict(type='CosineAnnealingLR', T_max=3, by_epoch=True, eta_min=1e-5)]
train_cfg = dict(_delete_=True, by_epoch=True, max_epochs=3, val_interval=1)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1))
log_processor = dict(by_epoch=True, window_size=1)
