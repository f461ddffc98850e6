"""Dataset generation speed. Target: at least 150 photo-like 500x375 images/s per core, and
generation of a folder uses every core (images/s of the folder ~ cores x one core's rate)."""

import itertools

import numpy as np
import pytest

from feedbench.datasets import make_image_folder, make_text_corpus
from feedbench.datasets._parallel import available_cores
from feedbench.datasets._photo import ImageSpec, encode, paint

IMAGES = 1024
DOCUMENTS = 4000
_counter = itertools.count()



@pytest.mark.benchmark(group="datasets")
def test_paint_and_encode_one_image_one_core(benchmark):
    seeds = itertools.count()

    def one():
        rng = np.random.default_rng([0, next(seeds)])
        return encode(paint(rng, 500, 375), ImageSpec(500, 375), 90)

    data = benchmark(one)
    benchmark.extra_info.update(images_per_s=1 / benchmark.stats["median"], jpeg_bytes=len(data))


@pytest.mark.benchmark(group="datasets")
@pytest.mark.parametrize("workers", [1, None], ids=["one-worker", "all-cores"])
def test_image_folder(benchmark, tmp_path, workers):
    cores = 1 if workers == 1 else available_cores()
    result = benchmark.pedantic(
        make_image_folder,
        setup=lambda: ((tmp_path / f"img-{next(_counter)}", IMAGES), {"workers": workers}),
        rounds=3,
    )
    rate = IMAGES / benchmark.stats["median"]
    benchmark.extra_info.update(
        images_per_s=rate, cores=cores, images_per_s_per_core=rate / cores, mean_file_bytes=result.size_bytes / IMAGES
    )
    # The target (issue: at least 150 images/s per core at the default size).
    assert rate / cores >= 150, f"{rate / cores:.0f} images/s per core, target 150"


@pytest.mark.benchmark(group="datasets")
def test_text_corpus_all_cores(benchmark, tmp_path):
    cores = available_cores()
    benchmark.pedantic(make_text_corpus, setup=lambda: ((tmp_path / f"txt-{next(_counter)}", DOCUMENTS), {}), rounds=3)
    rate = DOCUMENTS / benchmark.stats["median"]
    benchmark.extra_info.update(documents_per_s=rate, cores=cores, documents_per_s_per_core=rate / cores)
