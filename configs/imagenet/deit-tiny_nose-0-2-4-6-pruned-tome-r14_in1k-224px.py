# The pruned DeiT-Tiny (attention layers [0, 2, 4, 6] removed, 30%) with token merging at
# test time (ToMe, no training): r = 14 tokens merged in every layer that keeps attention
# from the second such layer on (start=1), proportional attention: the reference's T-30 setting
# (sihaoevery/lambda_vit README: 71.7 top-1, 71.88 without merging, torch 1.12.1):
#   python tools/test.py configs/imagenet/deit-tiny_nose-0-2-4-6-pruned-tome-r14_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-tiny_nose-0-2-4-6-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=14, start=1, prop_attn=True)))
