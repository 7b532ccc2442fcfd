# The NOSE dilution fine-tune on ImageNet-1k, the reference recipe (METHOD.md
# section 6): from the official DeiT checkpoint, 400 epochs at batch 8 x 256,
# lam = max(0, 1 - epoch / 299) so the last ~100 epochs run at lam = 0, then
# tools/prune.py turns the last checkpoint into the pruned model.
# Use it with a ./models/nose-deit-*.py model: the config itself sets the
# backbone's diluted_layers and load_from (two _base_ files cannot both set
# `model`).
_base_ = [
    './datasets/imagenet_bs256_deit_224.py',
    './schedules/deit_adamw_cosine.py',
    './default_runtime.py',
]
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 2048 / 512))
auto_scale_lr = dict(base_batch_size=2048)
train_cfg = dict(max_epochs=400)

custom_hooks = [dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True)]
# Only checkpoints at lam = 0 (prunable ones) compete for "best".
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', interval=10,
                                     max_keep_ckpts=3, save_best='auto', save_last=True))
# At lam = 0 the diluted attention is not computed, so its parameters get no
# gradient: DDP must allow unused parameters.
find_unused_parameters = True
