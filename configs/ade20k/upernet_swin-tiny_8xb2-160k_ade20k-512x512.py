# mmseg's UperNet + Swin-T on ADE20k (swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-
# 160k_ade20k-512x512): 512 x 512 crops, 160k iterations at batch 8 x 2, AdamW lr
# 6e-5, wd 0.01 (none on position tables and norms), 1.5k warm-up iterations,
# poly decay. The backbone starts from the ImageNet-1k Swin-T checkpoint
# (tools/convert/deit_to_mmpretrain.py on the official weights; backbone.* keys).
_base_ = [
    '../_base_/models/upernet_nose-swin.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={
    'absolute_pos_embed': dict(decay_mult=0.),
    'relative_position_bias_table': dict(decay_mult=0.),
    'norm': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
