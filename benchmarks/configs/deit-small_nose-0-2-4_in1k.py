# DeiT-S with the attention layers NOSE removes at 25% (docs/method.md: [0, 2, 4]).
_base_ = ['./deit-small_in1k.py']
model = dict(backbone=dict(removed_layers=[0, 2, 4]))
