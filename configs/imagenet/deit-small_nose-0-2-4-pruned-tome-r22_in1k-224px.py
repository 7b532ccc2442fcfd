# The pruned DeiT-Small (attention layers [0, 2, 4] removed) with token merging at test
# time: the reference's DeiT-S 25% setting (start=1, r = 22; sihaoevery/lambda_vit README:
# 79.86 top-1, 80.33 without merging). The last merging layer is limited to half of its
# 43 tokens (21), so 22 tokens reach layer 11's MLP. Test time only:
#   python tools/test.py configs/imagenet/deit-small_nose-0-2-4-pruned-tome-r22_in1k-224px.py \
#       PRUNED.pth
_base_ = ['./deit-small_nose-0-2-4-pruned_in1k-224px.py']
model = dict(backbone=dict(token_merge=dict(r=22, start=1, prop_attn=True)))
