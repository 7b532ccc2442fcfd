# UperNet (MultiLevelNeck) with the NOSE-pruned DeiT-Base (attention layers [0, 1, 3, 4, 6, 9]
# removed), the paper's transfer: the backbone is initialised from the pruned
# ImageNet-1k classification checkpoint (tools/prune.py or
# tools/convert/lambda_vit_to_nose.py output). A checkpoint whose removed layers
# differ from removed_layers is rejected with an error naming them.
_base_ = ['./upernet_deit-base_mln_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(
    removed_layers=[0, 1, 3, 4, 6, 9],
    init_cfg=dict(checkpoint='checkpoints/deit-base_nose-0-1-3-4-6-9-pruned_in1k.pth')))
