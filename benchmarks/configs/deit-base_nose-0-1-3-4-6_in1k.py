# DeiT-B with the attention layers NOSE removes at 40% (docs/method.md: [0, 1, 3, 4, 6]).
_base_ = ['./deit-base_in1k.py']
model = dict(backbone=dict(removed_layers=[0, 1, 3, 4, 6]))
