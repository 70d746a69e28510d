"""Every built-in post-processor passes the post-processor contract kit."""

from cxrbench.testing import PostprocessorContractTests


class TestEqualize(PostprocessorContractTests):
    postprocessor_name = "equalize"
    size = 16


class TestCropBorder(PostprocessorContractTests):
    postprocessor_name = "crop-border"
    postprocessor_options = {"bottom": 0.1, "left": 0.05}
    size = 16
    bad_options = [({"bottom": 0.5}, 16), ({"left": -0.1}, 16)]


class TestCropBorderDefaults(PostprocessorContractTests):
    """No crop at all: the identity, still a valid step."""

    postprocessor_name = "crop-border"
    size = 24


class TestProxyFilter(PostprocessorContractTests):
    """A learned filter: the kit prepares it on its toy split first."""

    postprocessor_name = "proxy-filter"
    postprocessor_options = {"steps": 60, "width": 8}
    size = 16
    may_drop = True
    bad_options = [({"threshold": 1.0}, 16), ({"steps": 0}, 16), ({}, 4)]


class TestLungCrop(PostprocessorContractTests):
    postprocessor_name = "lung-crop"
    size = 32
    bad_options = [({"margin": -0.1}, 32), ({"min_area": 1.0}, 32)]
