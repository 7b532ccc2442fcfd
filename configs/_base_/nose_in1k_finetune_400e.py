# The NOSE dilution fine-tune on ImageNet-1k, the reference recipe (docs/method.md
# §6 and the reference code's main_lambda.py defaults): from the official
# DeiT checkpoint, 400 epochs at batch 8 x 256, lam = max(0, 1 - epoch / 299) so
# the last ~100 epochs run at lam = 0, then tools/prune.py turns the last
# checkpoint into the pruned model. configs/imagenet/README.md lists what is kept
# different from the reference ("reference vs this config").
# Use it with a ./models/nose-deit-*.py model: the config itself sets the
# backbone's diluted_layers and load_from (two _base_ files cannot both set
# `model`). DeiT-B configs add drop_path_mode='constant' (the reference's DeiT-B
# model uses the same drop path rate in every block; DeiT-S/T the linear ramp).
_base_ = [
    './datasets/imagenet_bs256_deit_224.py',
    './schedules/deit_adamw_cosine.py',
    './default_runtime.py',
]
# Repeated augmentation (the reference's RASampler, on by default): 3 augmented
# copies of each image per epoch, spread over the ranks; the last incomplete batch
# is dropped, as main_lambda.py's training loader does (drop_last=True).
train_dataloader = dict(batch_size=256, drop_last=True,
                        sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True))
# Mixed precision where a GPU is (fp32 on CPU); no gradient clipping (the
# reference's --clip-grad defaults to None).
optim_wrapper = dict(type='AutoAmpOptimWrapper', optimizer=dict(lr=5e-4 * 2048 / 512),
                     clip_grad=None)
# Warm-up from the reference's warmup-lr 1e-6 to lr over 5 epochs, cosine to 1e-5.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / (5e-4 * 2048 / 512), by_epoch=True, begin=0,
         end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=2048)
train_cfg = dict(max_epochs=400)

custom_hooks = [dict(type='DilutionHook', schedule='linear', begin=0, end=299, by_epoch=True)]
# The reported model is the last checkpoint (lam = 0, what tools/prune.py prunes);
# no "best" checkpoint is chosen by validation accuracy.
default_hooks = dict(checkpoint=dict(type='DilutionCheckpointHook', interval=10,
                                     max_keep_ckpts=3, save_last=True))
# At lam = 0 the diluted attention is not computed, so its parameters get no
# gradient: DDP must allow unused parameters.
find_unused_parameters = True
