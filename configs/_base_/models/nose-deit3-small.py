# DeiT-III-Small classifier on NoseDeiT3 (mmpretrain's deit3-small-p16-224 model:
# the head, init and Mixup / CutMix of ./nose-deit-small.py), computing the official
# DeiT-III block (FFN input normalised with ln2, as timm's deit3_small_patch16_224;
# mmpretrain 1.2.0's DeiT3 uses ln1 there).
_base_ = ['./nose-deit-small.py']
model = dict(backbone=dict(_delete_=True, type='NoseDeiT3', arch='s', img_size=224,
                           patch_size=16, drop_path_rate=0.05, diluted_layers=None,
                           removed_layers=None, compensate=True))
