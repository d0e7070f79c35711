"""The webhook signature's clock limit, on a fixed clock: the edge is inclusive and whole seconds count."""

import pytest

from ctloop.contracts import signing

SECRET, BODY = b"a-secret-of-enough-length", b'{"reason": "drift"}'


@pytest.mark.parametrize("skew", [-300, 300, 0])
def test_a_signature_at_most_the_limit_away_is_accepted(skew):
    headers = signing.sign(SECRET, BODY, now=1_000_000 + skew)
    signing.verify(SECRET, BODY, headers, tolerance_s=300, now=1_000_000)


@pytest.mark.parametrize("skew", [-301, 301, -300.5])
def test_a_signature_beyond_the_limit_is_refused_as_stale(skew):
    # -300.5: the timestamp is truncated to 999_699, 301 s before the reader's clock.
    headers = signing.sign(SECRET, BODY, now=1_000_000 + skew)
    with pytest.raises(signing.SignatureError) as refused:
        signing.verify(SECRET, BODY, headers, tolerance_s=300, now=1_000_000)
    assert refused.value.reason == "stale"
