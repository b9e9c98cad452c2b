"""The webhook receiver: verify the sender, enqueue the event, answer fast."""

from webhooks.app import ZohoChannelVerifier, create_app

__all__ = ["create_app", "ZohoChannelVerifier"]
