"""The open-files limit raised at start for GATEWAY_WORKER_CONNECTIONS."""

from __future__ import annotations

import resource

import pytest

from gateway.ops.fdlimit import SPARE, needed, raise_open_files


def test_a_worker_needs_two_descriptors_per_connection_plus_spare():
    assert needed(8192) == 2 * 8192 + SPARE


def test_the_soft_limit_is_raised_within_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft + 1 if hard == resource.RLIM_INFINITY or soft < hard else soft
    assert raise_open_files(wanted) is None
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted


def test_past_the_hard_limit_a_warning_names_the_setting():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    warning = raise_open_files(hard + 1)
    assert warning is not None
    assert "GATEWAY_WORKER_CONNECTIONS" in warning and "ulimit -n" in warning
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
