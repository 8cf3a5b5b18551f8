"""``servers/core/segmenter.py``'s batch stages: one GPU call per batch, one outcome per request, a
request that fails (in pre, at post, or because its client left) failing alone."""

from __future__ import annotations

import numpy as np

from servers.core.backends.base import GpuOutOfMemory
from servers.core.backends.sim import BASE_MEMORY_BYTES, MEMORY_PER_IMAGE_BYTES, SimBackend
from servers.core.imaging import ImageError
from servers.core.ledger import ClientGone, Ledger, Stage
from servers.core.segmenter import LedgeredSegmenter, Prepared, Segmenter, always_wanted
from tests.helpers.servers import small_jpeg

FAILING_WIDTH = 50


class PostFailsForOneWidth(Segmenter):
    """A fault injected at post, where no real input makes compose or encode fail on demand."""

    def post(self, prepared: Prepared, mask: np.ndarray) -> bytes:
        if prepared.image.width == FAILING_WIDTH:
            raise OSError("no space left on device")
        return super().post(prepared, mask)


def ledgered(segmenter: Segmenter) -> LedgeredSegmenter:
    backend = segmenter.backend
    return LedgeredSegmenter(segmenter, Ledger(backend.peak_memory_bytes, backend.reset_peak_memory))


def test_a_batch_is_one_gpu_call_and_each_request_gets_its_own_outcome() -> None:
    service = ledgered(PostFailsForOneWidth(SimBackend(0)))
    images = [small_jpeg(40), b"not an image", small_jpeg(FAILING_WIDTH), small_jpeg(60), small_jpeg(70)]
    rows = [service.ledger.open(f"r{i}", "/segment") for i in range(len(images))]
    wanted = [always_wanted] * 4 + [lambda: False]  # the last one's client has left
    outcomes = service.run_batch(rows, [lambda data=data: data for data in images], wanted)

    reference = Segmenter(SimBackend(0))
    assert outcomes[0] == reference.segment(images[0]) and outcomes[3] == reference.segment(images[3])
    assert isinstance(outcomes[1], ImageError) and isinstance(outcomes[2], OSError)
    assert isinstance(outcomes[4], ClientGone)
    # the three prepared and wanted requests shared one GPU call, and only they
    called = [rows[0], rows[2], rows[3]]
    assert {(row.batch_id, row.batch_size, row.t_gpu_start, row.t_gpu_end) for row in called} == {
        (1, 3, rows[0].t_gpu_start, rows[0].t_gpu_end)
    }
    assert [row.stage for row in rows] == [Stage.POST, Stage.PRE, Stage.POST, Stage.POST, Stage.PRE]
    assert rows[1].t_gpu_start is None and rows[4].t_gpu_start is None and rows[4].pre_s is not None
    assert service.ledger.in_gpu == 0


def test_out_of_memory_fails_every_request_of_the_call_and_the_next_call_runs() -> None:
    capacity = BASE_MEMORY_BYTES + 2 * MEMORY_PER_IMAGE_BYTES
    service = ledgered(Segmenter(SimBackend(0, capacity_bytes=capacity)))
    image = small_jpeg(40)
    rows = [service.ledger.open(f"r{i}", "/segment") for i in range(3)]
    outcomes = service.run_batch(rows, [lambda: image] * 3, [always_wanted] * 3)
    assert all(isinstance(outcome, GpuOutOfMemory) for outcome in outcomes)
    assert {(row.stage, row.batch_size) for row in rows} == {(Stage.GPU, 3)}
    two = [service.ledger.open(f"s{i}", "/segment") for i in range(2)]
    outcomes = service.run_batch(two, [lambda: image] * 2, [always_wanted] * 2)
    assert all(isinstance(outcome, bytes) for outcome in outcomes)
