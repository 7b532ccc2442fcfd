# Swin-T baseline: mmpretrain's swin-tiny_16xb64_in1k recipe (300 epochs, batch
# 16 x 64, AdamW lr 1e-3, 20 warm-up epochs, no decay on norms, biases and the
# relative position tables, clip 5) on NoseSwinTransformer. Evaluate the official
# checkpoint converted with tools/convert/deit_to_mmpretrain.py:
#   python tools/test.py configs/imagenet/swin-tiny_16xb64-300e_in1k-224px.py \
#       checkpoints/swin-tiny_in1k.pth
_base_ = [
    '../_base_/models/nose-swin-tiny.py',
    '../_base_/datasets/imagenet_bs256_deit_224.py',
    '../_base_/schedules/deit_adamw_cosine.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(lr=5e-4 * 1024 / 512),
    paramwise_cfg=dict(flat_decay_mult=0.0, custom_keys={
        '.absolute_pos_embed': dict(decay_mult=0.0),
        '.relative_position_bias_table': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=1024)
