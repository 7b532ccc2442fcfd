# The authors' recipe with the NOSE-pruned DeiT-B (attention layers [0, 1, 3, 4, 6] removed):
# the pruned ImageNet-1k checkpoint (tools/prune.py or tools/convert/lambda_vit_to_nose.py)
# converted by tools/convert/deit_to_mae.py. A checkpoint pruned at other layers is
# refused, naming them.
_base_ = ['./upernet_deit-base_tinymim_8xb2-amp-160k_ade20k-512x512.py']
model = dict(backbone=dict(
    removed_layers=[0, 1, 3, 4, 6],
    init_cfg=dict(checkpoint='checkpoints/deit-base_nose-0-1-3-4-6-pruned_in1k_mae-512.pth')))
