"""CIFAR-100 with an option to skip the MD5 check, for data written locally."""
from mmpretrain.datasets import CIFAR100
from mmpretrain.registry import DATASETS

__all__ = ['NoseCIFAR100']


@DATASETS.register_module()
class NoseCIFAR100(CIFAR100):
    """mmpretrain's :class:`~mmpretrain.datasets.CIFAR100`, plus ``verify_md5``.

    Args:
        verify_md5 (bool): Check the official MD5 sums (docs/design.md). Defaults to True.
        **kwargs: Passed to :class:`~mmpretrain.datasets.CIFAR100`.
    """

    def __init__(self, *args, verify_md5: bool = True, **kwargs) -> None:
        if not isinstance(verify_md5, bool):
            raise ValueError(f'verify_md5 must be True or False, got {verify_md5!r}')
        if not verify_md5:
            self.train_list = [[name, None] for name, _ in self.train_list]
            self.test_list = [[name, None] for name, _ in self.test_list]
            self.meta = {**self.meta, 'md5': None}
        super().__init__(*args, **kwargs)
