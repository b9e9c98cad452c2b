import json

from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.signatures import verify_xero_signature, xero_signature
from tests.conftest import property_examples

KEY = "test-signing-key-ZmFrZQ=="
# Xero's ITR body shape, spaces after some colons
# (https://developer.xero.com/documentation/webhooks/configuring-your-server).
ITR_BODY = b'{"events":[],"firstEventSequence": 0,"lastEventSequence": 0, "entropy": "LUWDSUDGSWNZVALZXBEV"}'
# Computed independently: printf '%s' BODY | openssl dgst -sha256 -hmac KEY -binary | base64
ITR_SIGNATURE = "Z0vKJU8n0iWxzcfvZ+gGHHGOaFDbLbOQmWlEuj1WMIk="


def test_signature_matches_an_independently_computed_hmac_of_the_raw_bytes():
    assert xero_signature(ITR_BODY, KEY) == ITR_SIGNATURE
    assert verify_xero_signature(ITR_BODY, ITR_SIGNATURE, KEY)


def test_re_serialised_json_does_not_verify_against_the_original_signature():
    canonical = json.dumps(json.loads(ITR_BODY), separators=(",", ":")).encode()
    assert canonical != ITR_BODY
    assert not verify_xero_signature(canonical, ITR_SIGNATURE, KEY)


def test_missing_empty_wrong_and_non_ascii_headers_are_refused():
    assert not verify_xero_signature(ITR_BODY, None, KEY)
    assert not verify_xero_signature(ITR_BODY, "", KEY)
    assert not verify_xero_signature(ITR_BODY, ITR_SIGNATURE, "another-key")
    assert not verify_xero_signature(ITR_BODY, "Z0vKJU8n0iWxzcfvZ+gGHHGOaFDbLbOQmWlEuj1WMIé", KEY)


@settings(max_examples=property_examples(50), deadline=None)
@given(body=st.binary(max_size=256), key=st.text(min_size=1, max_size=40), flip=st.integers(min_value=0))
def test_any_body_verifies_with_its_own_signature_and_not_after_one_byte_changes(body, key, flip):
    signature = xero_signature(body, key)
    assert verify_xero_signature(body, signature, key)
    tampered = bytearray(body + b"x")
    position = flip % len(tampered)
    tampered[position] ^= 0x01
    assert not verify_xero_signature(bytes(tampered), signature, key)
