# Swin-T baseline: mmpretrain's swin-tiny_16xb64_in1k recipe (300 epochs, batch
# 16 x 64, AdamW lr 1e-3, 20 warm-up epochs, no decay on norms, biases and the
# relative position tables, clip 5) on NoseSwinTransformer. Evaluate the official
# checkpoint converted with tools/convert/deit_to_mmpretrain.py:
#   python tools/test.py configs/imagenet/swin-tiny_16xb64-300e_in1k-224px.py \
#       checkpoints/swin-tiny_in1k.pth
# The DeiT 300-epoch recipe (../_base_/deit_in1k_300e.py: AdamW lr 5e-4 x 1024 / 512,
# cosine to 1e-5, clip 5) at batch 64 per GPU, with Swin's no-decay keys and warm-up.
_base_ = ['../_base_/models/nose-swin-tiny.py', '../_base_/deit_in1k_300e.py']
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0, custom_keys={
    '.absolute_pos_embed': dict(decay_mult=0.0),
    '.relative_position_bias_table': dict(decay_mult=0.0)}))
param_scheduler = [dict(_base_.param_scheduler[0], end=20),  # 20 warm-up epochs
                   dict(_base_.param_scheduler[1], begin=20)]
