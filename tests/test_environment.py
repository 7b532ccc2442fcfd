"""The installed stack imports, and version problems are reported clearly."""
import importlib

import pytest


def test_stack_imports():
    for name in ('mmpretrain.models', 'mmseg.models', 'timm', 'nose_mm', 'mmcv.ops'):
        importlib.import_module(name)
    import mmcv
    from mmcv.ops import nms  # a compiled op: mmcv-lite would fail here
    assert mmcv.__version__ == '2.1.0'
    assert callable(nms)


def test_nose_mm_modules_are_registered_in_both_scopes():
    import nose_mm  # noqa: F401
    from mmengine.registry import MODEL_WRAPPERS
    from mmpretrain.registry import DATASETS
    assert DATASETS.get('NoseCIFAR100') is not None
    assert MODEL_WRAPPERS.get('NoseDistributedDataParallel') is not None


@pytest.mark.parametrize('supported, expect', [
    ({'mmengine': ('9.0.0', '10.0.0')}, 'mmengine==0.10.7 is installed, but nose_mm needs '
     'mmengine>=9.0.0,<10.0.0'),
    ({'not-a-real-package-xyz': ('1.0', '2.0')}, 'not-a-real-package-xyz is not installed '
     '(nose_mm needs not-a-real-package-xyz>=1.0,<2.0)'),
])
def test_version_check_names_package_version_and_range(supported, expect):
    from nose_mm.utils import check_versions
    with pytest.raises(ImportError) as err:
        check_versions(supported)
    assert expect in str(err.value)


def test_supported_versions_accept_this_environment():
    from nose_mm.utils import check_versions
    check_versions()  # must not raise for the tested stack
