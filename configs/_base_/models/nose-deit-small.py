# DeiT-Small classifier on NoseVisionTransformer: with no diluted or removed
# layers it is exactly mmpretrain's VisionTransformer('deit-small'). The rest of the
# model (head loss, init, Mixup/CutMix) is DeiT-Base's.
_base_ = ['./nose-deit-base.py']
model = dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384))
