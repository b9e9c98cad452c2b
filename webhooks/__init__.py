"""The webhook receiver: verify the sender, enqueue the event, answer fast."""

from webhooks.app import create_app
from webhooks.receiver import ZohoChannelVerifier

__all__ = ["create_app", "ZohoChannelVerifier"]
