# NOSE on CIFAR-100: DeiT-Tiny from the ImageNet-1k checkpoint, attention
# layers [0, 2, 4, 6] (30%, the reference's ImageNet selection) diluted while fine-tuning.
# lam falls linearly to 0 at epoch 75 (3/4 of training, as the reference's 299 of
# 400), so the last 25 epochs run at lam = 0; then tools/prune.py gives the pruned
# model (deit-tiny_nose-0-2-4-6-pruned_cifar100-224px.py).
_base_ = ['./deit-tiny_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(diluted_layers=[0, 2, 4, 6], compensate=True))
custom_hooks = [dict(type='DilutionHook', schedule='linear', begin=0, end=75, by_epoch=True)]
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', interval=10,
                                     max_keep_ckpts=2, save_best='auto', save_last=True))
find_unused_parameters = True
