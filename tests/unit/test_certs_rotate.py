"""CA rotation state machine: trust always covers every live signer; Secret data round-trips."""

from __future__ import annotations

import pytest

from webhook.certs.ca import CA
from webhook.certs.errors import CertError
from webhook.certs.issuer import Issuer
from webhook.certs.leaf import chains_to
from webhook.certs.pool import KeyPool
from webhook.certs.rotate import CAState, abort, begin, finish, switch


@pytest.fixture(scope="module")
def cas() -> tuple[CA, CA]:
    return CA.generate(), CA.generate()


def test_full_rotation_never_distrusts_a_live_leaf(cas: tuple[CA, CA]) -> None:
    a, b = cas
    pool = KeyPool(size=1)
    s0 = CAState(signing=a)
    issuer = Issuer(s0.signing, pool, bundle=s0.trust)
    leaf_a = issuer.issue_bootstrap("u1", "sa", "ns").cert
    s1 = begin(s0, b)
    assert s1.phase == "added" and s1.signing is a
    assert s1.trust.fingerprints == (a.fingerprint, b.fingerprint)
    s2 = switch(s1)
    assert s2.phase == "switched" and s2.signing is b
    issuer.set_ca(s2.signing, s2.trust)
    leaf_b = issuer.issue_bootstrap("u2", "sa", "ns").cert
    assert chains_to(leaf_b, b.cert)
    # at every step each leaf that may be live verifies against the trust bundle of that step
    for state, live in ((s0, [leaf_a]), (s1, [leaf_a]), (s2, [leaf_a, leaf_b])):
        for leaf in live:
            assert any(chains_to(leaf, ca) for ca in state.trust.certs)
    s3 = finish(s2)
    assert s3.phase == "steady" and s3.trust.fingerprints == (b.fingerprint,)


def test_secret_data_round_trip(cas: tuple[CA, CA]) -> None:
    a, b = cas
    for state in (CAState(signing=a), begin(CAState(signing=a), b), switch(begin(CAState(signing=a), b))):
        again = CAState.from_data(state.to_data(), source="Secret x/y")
        assert again.to_data() == state.to_data()
        assert again.phase == state.phase


def test_fsm_compatible_keys(cas: tuple[CA, CA]) -> None:
    assert set(CAState(signing=cas[0]).to_data()) == {"ca.crt", "private.key"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"key 'ca.crt' is missing"),
        ({"ca.crt": b"x", "private.key": b"y"}, r"not a PEM certificate"),
    ],
)
def test_bad_secret_data_names_the_key(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(CertError, match=message):
        CAState.from_data(data, source="Secret fsm-system/fsm-ca-bundle")


def test_steps_out_of_order_are_clear_errors(cas: tuple[CA, CA]) -> None:
    a, b = cas
    s = CAState(signing=a)
    with pytest.raises(
        CertError, match=r"rotate-ca switch: the CA is in phase 'steady'; 'switch' needs 'added'"
    ):
        switch(s)
    with pytest.raises(CertError, match="finish"):
        finish(s)
    with pytest.raises(CertError, match="the new CA is the current CA"):
        begin(s, a)
    assert abort(begin(s, b)).to_data() == s.to_data()
