# DeiT-B (ImageNet-1k classifier, 224 px) for tools/benchmark.py: the model only
# (random weights; see deit-small_in1k.py). 86.57 M params, 17.58 GMACs.
_base_ = ['./deit-small_in1k.py']
model = dict(backbone=dict(arch='deit-base'), head=dict(in_channels=768))
