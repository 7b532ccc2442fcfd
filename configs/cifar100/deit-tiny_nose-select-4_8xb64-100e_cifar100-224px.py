# NOSE on CIFAR-100 with the selection made on CIFAR-100 itself: before training,
# NoseSelectionHook runs the transfer-entropy greedy search for 4 attention layers
# (30%, the budget of deit-tiny_nose-0-2-4-6_8xb64-100e_cifar100-224px.py) on N
# images of the CIFAR-100 *train* split (test pipeline) with the ImageNet weights,
# writes selection.json in the work dir, then the same dilution schedule.
# Note: the 100-class head is new (random), so the default features are the
# head input (the final-normed CLS token), not the logits.
_base_ = ['./deit-tiny_nose-0-2-4-6_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(diluted_layers=None))
# method, criterion, features and seed keep the SelectionSettings defaults.
custom_hooks = [dict(type='NoseSelectionHook', num_layers=4, num_samples=2048,
                     batch_size=64)] + _base_.custom_hooks
