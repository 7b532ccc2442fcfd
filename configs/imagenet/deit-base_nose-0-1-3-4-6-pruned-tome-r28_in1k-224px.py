# As deit-base_nose-0-1-3-4-6-pruned-tome-r24_in1k-224px.py with r = 28 tokens merged per
# layer (reference: 81.42 top-1). Test time only:
#   python tools/test.py configs/imagenet/deit-base_nose-0-1-3-4-6-pruned-tome-r28_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-base_nose-0-1-3-4-6-pruned-tome-r24_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=28)))
