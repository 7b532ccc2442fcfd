# DeiT-Tiny baseline: the official DeiT recipe (300 epochs, batch 8 x 128).
# Use it to train a baseline or to evaluate the official checkpoint converted
# with tools/convert/deit_to_mmpretrain.py:
#   python tools/test.py configs/imagenet/deit-tiny_8xb128-300e_in1k-224px.py \
#       checkpoints/deit-tiny_in1k.pth
_base_ = [
    '../_base_/models/nose-deit-tiny.py',
    '../_base_/datasets/imagenet_bs256_deit_224.py',
    '../_base_/schedules/deit_adamw_cosine.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 512))
auto_scale_lr = dict(base_batch_size=1024)
