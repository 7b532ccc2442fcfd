# DeiT-Tiny classifier on NoseVisionTransformer: with no diluted or removed
# layers it is exactly mmpretrain's VisionTransformer('deit-tiny'). The rest of the
# model (head loss, init, Mixup/CutMix) is DeiT-Base's.
_base_ = ['./nose-deit-base.py']
model = dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192))
