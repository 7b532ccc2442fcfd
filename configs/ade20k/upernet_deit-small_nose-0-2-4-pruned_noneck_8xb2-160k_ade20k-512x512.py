# UperNet (no neck) with the NOSE-pruned DeiT-Small (attention layers [0, 2, 4]
# removed), the paper's transfer: the backbone is initialised from the pruned
# ImageNet-1k classification checkpoint (tools/prune.py or
# tools/convert/lambda_vit_to_nose.py output). A checkpoint whose removed layers
# differ from removed_layers is rejected with an error naming them.
_base_ = ['./upernet_deit-small_noneck_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(
    removed_layers=[0, 2, 4],
    init_cfg=dict(checkpoint='checkpoints/deit-small_nose-0-2-4-pruned_in1k.pth')))
