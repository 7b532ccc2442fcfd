# The pruned DeiT-Small (attention layers [0, 2, 4, 6] removed, 30%) with token merging at
# test time (ToMe, no training): r = 19 tokens merged in every layer that keeps attention
# from the second such layer on (start=1), proportional attention: the reference's S-30 setting
# (sihaoevery/lambda_vit README: 79.62 top-1, 79.89 without merging, torch 1.12.1):
#   python tools/test.py configs/imagenet/deit-small_nose-0-2-4-6-pruned-tome-r19_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-small_nose-0-2-4-6-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=19, start=1, prop_attn=True)))
