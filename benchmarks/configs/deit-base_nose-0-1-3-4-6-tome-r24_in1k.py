# DeiT-B 40% (attention layers [0, 1, 3, 4, 6] removed) with token merging at test time,
# the reference's setting: r = 24 from the second layer that keeps attention on.
_base_ = ['./deit-base_nose-0-1-3-4-6_in1k.py']
model = dict(backbone=dict(token_merge=dict(r=24, start=1, prop_attn=True)))
