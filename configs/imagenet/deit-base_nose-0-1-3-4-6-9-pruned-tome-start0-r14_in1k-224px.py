# The pruned DeiT-Base (attention layers [0, 1, 3, 4, 6, 9] removed, 50%) with token merging at
# test time (ToMe, no training): r = 14 tokens merged in every layer that keeps attention
# from the first such layer on (start=0), proportional attention: the reference's B-50 setting
# (sihaoevery/lambda_vit README: 81.28 top-1, 81.46 without merging, torch 1.12.1):
#   python tools/test.py \
#       configs/imagenet/deit-base_nose-0-1-3-4-6-9-pruned-tome-start0-r14_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-base_nose-0-1-3-4-6-9-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=14, start=0, prop_attn=True)))
