"""Who the caller is and what they may see: tokens, the server secret, tiers, visibility, signed links."""
