# The pruned DeiT-Tiny (attention layers [0, 2, 4] removed, 25%) with token merging at
# test time (ToMe, no training): r = 19 tokens merged in every layer that keeps attention
# from the second such layer on (start=1), proportional attention: the reference's T-25 setting
# (sihaoevery/lambda_vit README: 72.35 top-1, 72.79 without merging, torch 1.12.1):
#   python tools/test.py configs/imagenet/deit-tiny_nose-0-2-4-pruned-tome-r19_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-tiny_nose-0-2-4-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=19, start=1, prop_attn=True)))
