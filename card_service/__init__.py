"""The card service: files loss reports and tracks a replacement card, over HTTP, in Redis."""
