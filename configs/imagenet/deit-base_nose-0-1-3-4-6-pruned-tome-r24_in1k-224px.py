# The pruned DeiT-Base (attention layers [0, 1, 3, 4, 6] removed) with token merging at
# test time (ToMe, no training): r = 24 tokens merged in every layer that keeps attention
# from the second such layer on (start=1), proportional attention. The reference
# (sihaoevery/lambda_vit README) reports 81.58 top-1 (81.77 without merging):
#   python tools/test.py configs/imagenet/deit-base_nose-0-1-3-4-6-pruned-tome-r24_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-base_nose-0-1-3-4-6-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=24, start=1, prop_attn=True)))
