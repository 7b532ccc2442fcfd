# ImageNet-1k as ./imagenet_bs256_deit_224.py (training augmentation), evaluated as
# DeiT-III is (mmpretrain's imagenet_bs64_deit3_224): crop ratio 1.0, i.e. resize
# the short edge to 224, then centre-crop 224.
_base_ = ['./imagenet_bs256_deit_224.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
