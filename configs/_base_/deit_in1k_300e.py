# The official DeiT ImageNet-1k recipe: 300 epochs, batch 8 x 128, lr 5e-4 x 1024 / 512.
_base_ = [
    './datasets/imagenet_bs256_deit_224.py',
    './schedules/deit_adamw_cosine.py',
    './default_runtime.py',
]
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 512))
auto_scale_lr = dict(base_batch_size=1024)
